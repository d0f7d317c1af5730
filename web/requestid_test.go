package web

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

func TestRequestID(t *testing.T) {
	proxies := TrustedPeers([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	made := regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-f]+$`)
	for _, tc := range []struct {
		name, remote, sent string
		trusted            func(*http.Request) bool
		want               string // "" : one made here
	}{
		{"none sent", "192.0.2.1:5", "", proxies, ""},
		{"from a trusted proxy", "10.1.2.3:5", "abc-123", proxies, "abc-123"},
		{"from a client", "192.0.2.1:5", "abc-123", proxies, ""},
		{"nobody trusted", "10.1.2.3:5", "abc-123", nil, ""},
		{"a Unix socket's peer", "@", "from.unix:1", proxies, "from.unix:1"},
		{"not an id", "10.1.2.3:5", `a"b c`, proxies, ""},
		{"too long", "10.1.2.3:5", strings.Repeat("a", 129), proxies, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			var seen string
			h := RequestID(AccessLog(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = r.Header.Get("X-Request-ID")
			}), slog.New(slog.NewTextHandler(&log, nil))), tc.trusted)
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.sent != "" {
				r.Header.Set("X-Request-ID", tc.sent)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			got := w.Header().Get("X-Request-ID")
			if tc.want != "" && got != tc.want || tc.want == "" && !made.MatchString(got) {
				t.Errorf("id %q, want %q (or one made here)", got, tc.want)
			}
			if seen != got {
				t.Errorf("the handler saw %q, the client got %q", seen, got)
			}
			if !strings.Contains(log.String(), `\"`+got+`\"`) {
				t.Errorf("the access line lacks %q: %s", got, log.String())
			}
		})
	}
	a, b := newID(), newID()
	if a == b {
		t.Errorf("two ids alike: %s", a)
	}
}
