package web

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
)

// RequestIDHeader carries a request's id: from a trusted proxy to torsion,
// from torsion to the application (HTTP_X_REQUEST_ID in a WSGI environ)
// and to mounted upstreams, and back to the client.
const RequestIDHeader = "X-Request-Id"

// RequestID wraps h so that every request has an id in its
// X-Request-ID header, which the response carries too: the one a trusted
// peer sent (trusted reports whether r came from one; nil trusts none),
// if it is a sensible id (1 to 128 letters, digits and -_.:/+=@), or else
// one made here, unique within this process and unlikely to repeat across
// processes. The access log shows it (RequestIDOf).
func RequestID(h http.Handler, trusted func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header[RequestIDHeader]
		if len(v) != 1 || trusted == nil || !trusted(r) || !validID(v[0]) {
			v = []string{newID()}
			r.Header[RequestIDHeader] = v
		}
		w.Header()[RequestIDHeader] = v // shared: Add would append to a copy, cap being 1
		h.ServeHTTP(w, r)
	})
}

// RequestIDOf returns r's id, once RequestID has given it one, else "".
func RequestIDOf(r *http.Request) string { return headerValue(r, RequestIDHeader) }

// TrustedPeers returns a check for RequestID that r's sender (not the
// client a proxy reports) is in one of the prefixes, or a Unix socket's
// peer, which only local processes can be.
func TrustedPeers(prefixes []netip.Prefix) func(*http.Request) bool {
	return func(r *http.Request) bool {
		a, ok := addrOf(r.RemoteAddr)
		if !ok {
			return true
		}
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
}

// idPrefix makes this process's ids unlike another's; idCount, each unlike
// the one before.
var (
	idPrefix = func() string {
		b := make([]byte, 8)
		rand.Read(b)
		return hex.EncodeToString(b) + "-"
	}()
	idCount atomic.Uint64
)

func newID() string {
	var buf [40]byte
	b := append(buf[:0], idPrefix...)
	return string(strconv.AppendUint(b, idCount.Add(1), 16))
}

func validID(id string) bool {
	if len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '+' || c == '=' || c == '@') {
			return false
		}
	}
	return true
}
