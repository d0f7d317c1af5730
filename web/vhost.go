package web

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
)

// VHosts chooses a handler by the request's Host, Twisted's
// NameVirtualHost. Names match case-insensitively and without the port;
// "*.example.org" matches every name below example.org (not example.org
// itself), and the longest such pattern wins. Requests for other hosts go to
// Default, or get 404 when it is nil.
type VHosts struct {
	Default   http.Handler
	hosts     map[string]http.Handler
	wildcards []wildcard // longest suffix first
}

type wildcard struct {
	suffix string // ".example.org"
	h      http.Handler
}

// Add serves host, a name or a "*.domain" pattern, with h. It fails for a
// malformed or repeated pattern.
func (v *VHosts) Add(host string, h http.Handler) error {
	name := normalizeHost(host)
	if suffix, ok := strings.CutPrefix(name, "*"); ok {
		if !strings.HasPrefix(suffix, ".") || len(suffix) < 2 || strings.Contains(suffix, "*") {
			return fmt.Errorf("virtual host %q: a wildcard must be \"*.\" followed by a domain", host)
		}
		for _, w := range v.wildcards {
			if w.suffix == suffix {
				return fmt.Errorf("virtual host %q given twice", host)
			}
		}
		v.wildcards = append(v.wildcards, wildcard{suffix, h})
		sort.SliceStable(v.wildcards, func(i, j int) bool { return len(v.wildcards[i].suffix) > len(v.wildcards[j].suffix) })
		return nil
	}
	if name == "" || strings.ContainsAny(name, "*/ []") {
		return fmt.Errorf("virtual host %q: not a host name", host)
	}
	if v.hosts == nil {
		v.hosts = map[string]http.Handler{}
	}
	if _, dup := v.hosts[name]; dup {
		return fmt.Errorf("virtual host %q given twice", host)
	}
	v.hosts[name] = h
	return nil
}

// normalizeHost lowercases a Host value and drops its port and any final dot.
func normalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// Handler returns the handler for a Host value, or Default.
func (v *VHosts) Handler(host string) http.Handler {
	name := normalizeHost(host)
	if h, ok := v.hosts[name]; ok {
		return h
	}
	for _, w := range v.wildcards {
		if strings.HasSuffix(name, w.suffix) && len(name) > len(w.suffix) {
			return w.h
		}
	}
	return v.Default
}

// ServeHTTP implements http.Handler.
func (v *VHosts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := v.Handler(r.Host)
	if h == nil {
		Error(w, r, http.StatusNotFound, "No site is served for this host.")
		return
	}
	h.ServeHTTP(w, r)
}
