package web

import (
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
)

// KnownHosts wraps the handler of a private port (metrics, a status page)
// so that it answers only requests whose Host is an IP address,
// "localhost", this machine's host name, or one of names; others get 421.
// A web page that an operator's browser loads from an attacker's domain
// can point that domain at 127.0.0.1 (DNS rebinding) and then read the
// private port as the same origin: the Host it sends is the attacker's
// name, which this refuses.
func KnownHosts(h http.Handler, names ...string) http.Handler {
	known := map[string]bool{"localhost": true}
	if host, err := os.Hostname(); err == nil {
		host = strings.ToLower(host)
		known[host] = true
		short, _, _ := strings.Cut(host, ".")
		known[short] = true
	}
	for _, n := range names {
		known[strings.ToLower(n)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
		if _, err := netip.ParseAddr(host); err != nil && !known[host] {
			Error(w, r, http.StatusMisdirectedRequest, "This port answers requests for this machine's own names and addresses only.")
			return
		}
		h.ServeHTTP(w, r)
	})
}
