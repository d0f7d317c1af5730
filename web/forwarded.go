package web

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/internal/clientaddr"
)

// ParseTrusted parses a comma-separated list of IP addresses and CIDR
// prefixes, such as "127.0.0.1,10.0.0.0/8,::1"; "*" trusts every address.
func ParseTrusted(list string) ([]netip.Prefix, error) {
	return clientaddr.ParsePrefixes(list)
}

// ForwardedFields says which of what a proxy forwards ProxyHeaders
// believes: the client's address (for), the scheme (proto), the host.
type ForwardedFields uint8

// The fields; ForwardedAll is the three.
const (
	ForwardedFor ForwardedFields = 1 << iota
	ForwardedProto
	ForwardedHost
	ForwardedAll = ForwardedFor | ForwardedProto | ForwardedHost
)

// ParseForwardedFields parses a comma-separated list of "for", "proto" and
// "host", such as "for,proto".
func ParseForwardedFields(list string) (ForwardedFields, error) {
	var f ForwardedFields
	for item := range strings.SplitSeq(list, ",") {
		switch strings.ToLower(strings.TrimSpace(item)) {
		case "for":
			f |= ForwardedFor
		case "proto":
			f |= ForwardedProto
		case "host":
			f |= ForwardedHost
		case "":
		default:
			return 0, fmt.Errorf("%q is not one of for, proto, host", strings.TrimSpace(item))
		}
	}
	return f, nil
}

// ProxyHeaders believes what trusted proxies say about the client. For a
// request from an address in trusted (or over a Unix socket, which only
// local processes reach), the Forwarded header (RFC 7239), or else
// X-Forwarded-For, -Proto and -Host, set r.RemoteAddr, the scheme that
// Scheme reports and r.Host, each only if fields holds it. The client is
// the last address in the chain that is not itself trusted, so a client
// cannot pose as another by sending the header itself. A forwarded host
// must be a valid Host (host[:port]) and a scheme http or https, or they
// are ignored. Requests from anyone else pass untouched, headers included.
func ProxyHeaders(h http.Handler, trusted []netip.Prefix, fields ForwardedFields) http.Handler {
	isTrusted := func(a netip.Addr) bool { // a is unmapped, from addrOf
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if peer, ok := addrOf(r.RemoteAddr); ok && !isTrusted(peer) {
			h.ServeHTTP(w, r)
			return
		}
		var hops []hop
		if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
			hops = parseForwarded(fwd)
		} else if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			hops = parseXForwarded(xff, r.Header.Values("X-Forwarded-Proto"), r.Header.Values("X-Forwarded-Host"))
		}
		if len(hops) == 0 {
			h.ServeHTTP(w, r)
			return
		}
		// Walk back from the nearest hop while the addresses are trusted.
		i := len(hops) - 1
		for i > 0 {
			a, ok := addrOf(hops[i].forAddr)
			if !ok || !isTrusted(a) {
				break
			}
			i--
		}
		c := hops[i]
		r2 := *r
		if fields&ForwardedFor != 0 {
			if ap, err := netip.ParseAddrPort(c.forAddr); err == nil {
				r2.RemoteAddr = ap.String()
			} else if a, ok := addrOf(c.forAddr); ok {
				r2.RemoteAddr = a.String() // no port: REMOTE_PORT is left out
			}
		}
		if fields&ForwardedHost != 0 && c.host != "" && httpserver.ValidHost(c.host) {
			r2.Host = c.host
		}
		ctx := context.WithValue(r.Context(), peerKey{}, r.RemoteAddr)
		if proto := strings.ToLower(c.proto); fields&ForwardedProto != 0 && (proto == "http" || proto == "https") {
			ctx = context.WithValue(ctx, schemeKey{}, proto)
		}
		h.ServeHTTP(w, r2.WithContext(ctx))
	})
}

// peerKey holds the address of the proxy that sent a request whose
// RemoteAddr ProxyHeaders replaced.
type peerKey struct{}

// hop is what one proxy reported about the connection it received.
type hop struct{ forAddr, proto, host string }

// addrOf parses "ip", "ip:port" or "[ipv6]:port".
func addrOf(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	return a.Unmap(), err == nil
}

// parseForwarded reads RFC 7239 elements: "for=1.2.3.4;proto=https, for=...".
func parseForwarded(values []string) []hop {
	var hops []hop
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			var h hop
			for pair := range strings.SplitSeq(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok {
					continue
				}
				val = strings.Trim(val, `"`)
				switch strings.ToLower(k) {
				case "for":
					h.forAddr = val
				case "proto":
					h.proto = val
				case "host":
					h.host = val
				}
			}
			hops = append(hops, h)
		}
	}
	return hops
}

// parseXForwarded pairs X-Forwarded-For addresses with the -Proto and
// -Host values at the same place when the lists have the same length; a
// single -Proto or -Host applies to the client.
func parseXForwarded(xff, protos, hosts []string) []hop {
	split := func(vs []string) []string {
		var out []string
		for _, v := range vs {
			for item := range strings.SplitSeq(v, ",") {
				out = append(out, strings.TrimSpace(item))
			}
		}
		return out
	}
	fors, ps, hs := split(xff), split(protos), split(hosts)
	hops := make([]hop, len(fors))
	for i, f := range fors {
		hops[i].forAddr = f
		if len(ps) == len(fors) {
			hops[i].proto = ps[i]
		} else if len(ps) == 1 {
			hops[i].proto = ps[0]
		}
		if len(hs) == len(fors) {
			hops[i].host = hs[i]
		} else if len(hs) == 1 {
			hops[i].host = hs[0]
		}
	}
	return hops
}
