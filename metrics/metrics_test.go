package metrics

import (
	"net/http"
	"testing"
)

func TestLabels(t *testing.T) {
	for _, c := range []struct {
		method string
		status int
		want   [2]string
	}{
		{http.MethodGet, 200, [2]string{"GET", "2xx"}},
		{http.MethodPost, 302, [2]string{"POST", "3xx"}},
		{"PROPFIND", 404, [2]string{"other", "4xx"}},
		{http.MethodTrace, 101, [2]string{"TRACE", "1xx"}},
		{http.MethodDelete, 599, [2]string{"DELETE", "5xx"}},
		{http.MethodGet, 499, [2]string{"GET", "499"}},
		{http.MethodGet, 700, [2]string{"GET", "other"}},
		{http.MethodGet, 0, [2]string{"GET", "other"}},
	} {
		got := [2]string{methods[methodIndex(c.method)], classes[classIndex(c.status)]}
		if got != c.want {
			t.Errorf("%s %d: %v, want %v", c.method, c.status, got, c.want)
		}
	}
}
