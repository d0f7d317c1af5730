package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// TestKnownHosts: a private port answers its own names and any IP
// address, and refuses other names (DNS rebinding) with 421.
func TestKnownHosts(t *testing.T) {
	h := KnownHosts(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), "metrics.internal")
	hostname, _ := os.Hostname()
	for _, tt := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:9100", 200},
		{"[::1]:9100", 200},
		{"10.1.2.3", 200},
		{"localhost:9100", 200},
		{"LOCALHOST.", 200},
		{hostname + ":9100", 200},
		{"metrics.internal:9100", 200},
		{"attacker.example:9100", 421},
		{"localhost.attacker.example", 421},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Host = tt.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("Host %q: %d, want %d", tt.host, w.Code, tt.want)
		}
	}
}
