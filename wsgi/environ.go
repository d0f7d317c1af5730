package wsgi

import (
	"encoding/binary"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/torsion-server/torsion/web"
	"github.com/torsion-server/torsion/workers"
)

// This file is the WSGI and ASGI adapter's R frame: a request's environ,
// in the marshal form PROTOCOL.md specifies.

// requestFrame appends the R frame of r (its id is set when it is sent):
// the body prefix and the environ.
func (p *Pool) requestFrame(b []byte, r *http.Request, body []byte, more bool) []byte {
	start := len(b)
	b = append(b, workers.KindRequest, 0, 0, 0, 0, 0, 0, 0, 0)
	if more {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	b = append(b, body...)
	b = p.appendEnviron(b, r)
	binary.LittleEndian.PutUint32(b[start+5:], uint32(len(b)-start-workers.HeaderLen))
	return b
}

// appendStr appends s, whose bytes are latin-1 code points, as a marshal
// string: 'a' for ASCII, else 'u' with the code points in UTF-8.
func appendStr[T string | []byte](b []byte, s T) []byte {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			n++
		}
	}
	if n == len(s) {
		b = append(b, 'a')
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
		return append(b, s...)
	}
	b = append(b, 'u')
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x80 {
			b = append(b, c)
		} else {
			b = append(b, 0xc0|c>>6, 0x80|c&0x3f)
		}
	}
	return b
}

// appendVar appends one variable of the environ.
func appendVar(b []byte, k, v string) []byte {
	return appendStr(appendStr(b, k), v)
}

// appendEnviron appends the CGI variables of PEP 3333 as the marshal dict
// PROTOCOL.md describes.
func (p *Pool) appendEnviron(b []byte, r *http.Request) []byte {
	b = append(b, '{')
	b = appendVar(b, "REQUEST_METHOD", r.Method)
	b = appendVar(b, "SCRIPT_NAME", web.ScriptName(r))
	b = appendVar(b, "PATH_INFO", r.URL.Path)
	b = appendVar(b, "QUERY_STRING", r.URL.RawQuery)
	b = appendVar(b, "SERVER_PROTOCOL", r.Proto)
	b = appendVar(b, "REQUEST_URI", r.RequestURI)
	scheme := web.Scheme(r)
	if scheme == "https" {
		b = appendVar(b, "HTTPS", "on")
	}
	b = appendVar(b, "wsgi.url_scheme", scheme)
	host, port := r.Host, ""
	if h, pt, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, pt
	}
	if host == "" {
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			host, port, _ = net.SplitHostPort(la.String())
		}
	}
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	if r.Host != "" {
		b = appendVar(b, "HTTP_HOST", r.Host) // net/http keeps it out of r.Header
	}
	b = appendVar(b, "SERVER_NAME", host)
	b = appendVar(b, "SERVER_PORT", port)
	if ra, rp, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		b = appendVar(b, "REMOTE_ADDR", ra)
		b = appendVar(b, "REMOTE_PORT", rp)
	} else {
		b = appendVar(b, "REMOTE_ADDR", r.RemoteAddr)
	}
	if r.ContentLength >= 0 && (r.ContentLength > 0 || r.Header.Get("Content-Length") != "") {
		b = appendVar(b, "CONTENT_LENGTH", strconv.FormatInt(r.ContentLength, 10))
	}
	var key [128]byte
	for name, vals := range r.Header {
		switch name {
		case "Content-Length", "Proxy": // Proxy: never let it become HTTP_PROXY (httpoxy)
			continue
		case "Content-Type":
			b = appendVar(b, "CONTENT_TYPE", vals[0])
			continue
		}
		k := append(key[:0], "HTTP_"...)
		for i := 0; i < len(name); i++ {
			c := name[i]
			switch {
			case c == '-':
				c = '_'
			case 'a' <= c && c <= 'z':
				c -= 'a' - 'A'
			}
			k = append(k, c)
		}
		v := vals[0]
		if len(vals) > 1 {
			sep := ", "
			if name == "Cookie" {
				sep = "; "
			}
			v = strings.Join(vals, sep)
		}
		b = appendStr(b, k)
		b = appendStr(b, v)
	}
	return append(b, '0')
}
