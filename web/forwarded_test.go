package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProxyHeaders(t *testing.T) {
	trusted, err := ParseTrusted("127.0.0.1, 10.0.0.0/8,::1")
	if err != nil {
		t.Fatal(err)
	}
	h := ProxyHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", r.RemoteAddr, Scheme(r), r.Host)
	}), trusted, ForwardedAll)
	tests := []struct {
		name, peer string
		headers    map[string]string
		want       string
	}{
		{"untrusted peer", "192.0.2.1:1000", map[string]string{"X-Forwarded-For": "1.1.1.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil"}, "192.0.2.1:1000 http site"},
		{"no headers", "127.0.0.1:1000", nil, "127.0.0.1:1000 http site"},
		{"xff", "127.0.0.1:1000", map[string]string{"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "www.example.org"}, "203.0.113.5 https www.example.org"},
		{"xff chain: client forged first entry", "127.0.0.1:1000", map[string]string{"X-Forwarded-For": "6.6.6.6, 203.0.113.5, 10.1.2.3"}, "203.0.113.5 http site"},
		{"xff all trusted", "::1", map[string]string{"X-Forwarded-For": "10.0.0.1, 10.0.0.2"}, "10.0.0.1 http site"},
		{"xff ipv6", "[::1]:5", map[string]string{"X-Forwarded-For": "2001:db8::7"}, "2001:db8::7 http site"},
		{"xfp per hop", "127.0.0.1:1000", map[string]string{"X-Forwarded-For": "203.0.113.5, 10.0.0.9", "X-Forwarded-Proto": "https, http"}, "203.0.113.5 https site"},
		{"bad proto ignored", "127.0.0.1:1000", map[string]string{"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "gopher"}, "203.0.113.5 http site"},
		{"bad host ignored", "127.0.0.1:1000", map[string]string{"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Host": "a/b"}, "203.0.113.5 http site"},
		{"script host ignored", "127.0.0.1:1000", map[string]string{"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Host": "<script>x"}, "203.0.113.5 http site"},
		{"quoted host ignored", "127.0.0.1:1000", map[string]string{"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Host": `a"b`}, "203.0.113.5 http site"},
		{"host with port", "127.0.0.1:1000", map[string]string{"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Host": "shop.example:8443"}, "203.0.113.5 http shop.example:8443"},
		{"forwarded", "10.9.9.9:1", map[string]string{"Forwarded": `for="[2001:db8:cafe::17]:4711";proto=https;host=example.com`}, "[2001:db8:cafe::17]:4711 https example.com"},
		{"forwarded chain", "127.0.0.1:1", map[string]string{"Forwarded": "for=192.0.2.60;proto=https, for=10.0.0.5;proto=http", "X-Forwarded-For": "6.6.6.6"}, "192.0.2.60 https site"},
		{"forwarded unknown", "127.0.0.1:1", map[string]string{"Forwarded": "for=unknown;proto=https"}, "127.0.0.1:1 https site"},
		{"unix socket peer", "@", map[string]string{"X-Forwarded-For": "203.0.113.5"}, "203.0.113.5 http site"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://site/", nil)
		r.RemoteAddr = tt.peer
		for k, v := range tt.headers {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if got := rec.Body.String(); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	// Believing some fields only.
	headers := map[string]string{"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example"}
	for _, tt := range []struct {
		fields string
		want   string
	}{
		{"for,proto,host", "203.0.113.5 https shop.example"},
		{"for", "203.0.113.5 http site"},
		{"proto", "127.0.0.1:1000 https site"},
		{"host, for", "203.0.113.5 http shop.example"},
	} {
		fields, err := ParseForwardedFields(tt.fields)
		if err != nil {
			t.Fatal(err)
		}
		h := ProxyHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s %s", r.RemoteAddr, Scheme(r), r.Host)
		}), trusted, fields)
		r := httptest.NewRequest("GET", "http://site/", nil)
		r.RemoteAddr = "127.0.0.1:1000"
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if got := rec.Body.String(); got != tt.want {
			t.Errorf("fields %s: got %q, want %q", tt.fields, got, tt.want)
		}
	}
	if _, err := ParseForwardedFields("for,port"); err == nil || !strings.Contains(err.Error(), `"port"`) {
		t.Errorf("ParseForwardedFields(for,port): %v", err)
	}
	for _, bad := range []string{"10.0.0.0/33", "localhost", "1.2.3"} {
		if _, err := ParseTrusted(bad); err == nil {
			t.Errorf("ParseTrusted(%q) succeeded", bad)
		}
	}
	if ps, _ := ParseTrusted("*"); len(ps) != 2 {
		t.Errorf("ParseTrusted(*) = %v", ps)
	}
}
