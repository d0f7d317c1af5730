package web

import (
	"net/http"
	"strings"
)

// StrictFraming wraps h so that requests with ambiguous framing or headers
// never reach it; they get 400 and the connection is closed. It covers what
// net/http lets through and a WSGI application could misread:
//
//   - both Content-Length and Transfer-Encoding (request smuggling),
//   - Transfer-Encoding on HTTP/1.0,
//   - more than one Content-Length, even with equal values,
//   - header names with an underscore, which WSGI would map to the same
//     HTTP_ variable as the name with a dash,
//   - NUL bytes in the decoded path.
func StrictFraming(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := framingError(r); msg != "" {
			w.Header().Set("Connection", "close")
			Error(w, r, http.StatusBadRequest, msg)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func framingError(r *http.Request) string {
	_, hasCL := r.Header["Content-Length"]
	if len(r.TransferEncoding) > 0 || r.Header.Get("Transfer-Encoding") != "" {
		if hasCL {
			return "Both Content-Length and Transfer-Encoding are set."
		}
		if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
			return "Transfer-Encoding is not allowed in HTTP/1.0."
		}
	}
	if len(r.Header["Content-Length"]) > 1 {
		return "Content-Length is repeated."
	}
	for name := range r.Header {
		if strings.IndexByte(name, '_') >= 0 {
			return "Header names with underscores are not accepted."
		}
	}
	if strings.IndexByte(r.URL.Path, 0) >= 0 {
		return "The path contains a NUL byte."
	}
	return ""
}
