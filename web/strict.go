package web

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/torsion-server/torsion/internal/connwrap"
)

// Limits bounds what a client may send in a request head.
type Limits struct {
	// MaxRequestLine is the longest request line (default 8 KiB); longer
	// gets 414.
	MaxRequestLine int
	// MaxHeaderBytes bounds the whole head (default 64 KiB); MaxHeaders
	// the number of header fields (default 100). Either gets 431.
	MaxHeaderBytes, MaxHeaders int
}

func (l Limits) withDefaults() Limits {
	if l.MaxRequestLine <= 0 {
		l.MaxRequestLine = 8 << 10
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = 100
	}
	return l
}

// rejectHeader marks the synthetic request that stands in for a rejected
// one. Its name holds a random token, so no client can forge it.
var rejectHeader = func() string {
	b := make([]byte, 8)
	rand.Read(b)
	return http.CanonicalHeaderKey("X-Torsion-Reject-" + hex.EncodeToString(b))
}()

// StrictListener wraps ln so that every HTTP/1 request is checked byte by
// byte, per RFC 9112, before net/http parses it. net/http tolerates things
// that let requests be smuggled past a proxy or read differently by the
// application; here they are refused:
//
//   - line endings other than CRLF, obsolete line folding, control
//     characters in the request line or in header fields,
//   - header names that are not tokens or that hold an underscore (WSGI
//     maps "X_A" and "X-A" to the same variable), a repeated Host,
//   - Content-Length that is not plain digits, or repeated even with one
//     value; Transfer-Encoding other than exactly "chunked"; both at once;
//     Transfer-Encoding in HTTP/1.0,
//   - chunk sizes that are not plain hex, and chunk framing without CRLF,
//   - request lines, heads and header counts over the limits (414, 431).
//
// A bad head is replaced by a request that StrictHandler answers with the
// error, then the connection ends; pipelined responses stay in order. A
// bad chunked body makes the body's Read fail, and the handler reading it
// answers 400.
func StrictListener(ln net.Listener, limits Limits) net.Listener {
	return &strictListener{Listener: ln, limits: limits.withDefaults()}
}

type strictListener struct {
	net.Listener
	limits Limits
}

func (l *strictListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		return c, nil // HTTP/2 frames strictly already; net/http needs the *tls.Conn
	}
	return &strictConn{Conn: c, p: parser{limits: l.limits}}, nil
}

// StrictHandler answers the requests that StrictListener rejected and
// passes the others to h. HTTP/2 requests, which StrictListener does not
// see, are refused when a header name holds an underscore. Under a Server
// it also sets r.TLS for HTTP/1 requests over TLS.
func StrictHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			r.TLS, _ = r.Context().Value(tlsStateKey{}).(*tls.ConnectionState)
		}
		if r.ProtoMajor >= 2 {
			for name := range r.Header {
				if strings.IndexByte(name, '_') >= 0 {
					Error(w, r, http.StatusBadRequest, "Header names with underscores are refused: "+name)
					return
				}
			}
		}
		if v := r.Header.Get(rejectHeader); v != "" {
			code, msg, _ := bytes.Cut([]byte(v), []byte(" "))
			status, _ := strconv.Atoi(string(code))
			w.Header().Set("Connection", "close")
			Error(w, r, status, string(msg))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// errFraming is what a body read returns after malformed chunked framing.
var errFraming = errors.New("malformed chunked encoding")

type strictConn struct {
	net.Conn
	p    parser
	buf  []byte // read from the network
	out  []byte // checked, ready for net/http
	done bool   // a rejection was delivered: nothing more is read
	err  error  // a framing error, final
}

var errRejected = errors.New("request rejected")

// Read delivers checked bytes. Network errors are passed on as they come
// and not kept: net/http interrupts reads with deadlines and reads again.
func (c *strictConn) Read(b []byte) (int, error) {
	for len(c.out) == 0 {
		if c.done {
			return 0, errRejected
		}
		if c.err != nil {
			return 0, c.err
		}
		if c.buf == nil {
			c.buf = make([]byte, 32<<10)
		}
		n, err := c.Conn.Read(c.buf)
		c.out, c.err = c.p.feed(c.buf[:n])
		if c.p.rejected != nil {
			c.out, c.done = append(c.out, c.p.rejected...), true
		}
		if len(c.out) == 0 && err != nil {
			return 0, err
		}
	}
	n := copy(b, c.out)
	c.out = c.out[n:]
	return n, nil
}

// passThrough stops checking a connection that a handler hijacked: what
// follows (a WebSocket, a tunnel) is not HTTP. net/http has stopped
// reading it by then.
func passThrough(c net.Conn) {
	if sc, ok := c.(*strictConn); ok {
		sc.p.passthru = true
	}
}

// ReadFrom keeps sendfile(2) for responses: net/http uses it when the
// connection has it.
func (c *strictConn) ReadFrom(r io.Reader) (int64, error) { return connwrap.ReadFrom(c.Conn, r) }

// CloseWrite half-closes the connection, as net/http does before closing
// after an error.
func (c *strictConn) CloseWrite() error { return connwrap.CloseWrite(c.Conn) }

// parser follows the request framing of one connection.
type parser struct {
	limits   Limits
	state    int
	head     []byte // the head being gathered
	remain   int64  // body or chunk bytes left
	line     []byte // chunk-size or trailer line being gathered
	rejected []byte // the synthetic request replacing a bad one
	passthru bool   // not HTTP/1 (h2c preface): stop checking
}

const (
	stHead = iota
	stBody
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailer
)

// feed checks data and returns the part that may be delivered.
func (p *parser) feed(data []byte) ([]byte, error) {
	if p.passthru {
		return data, nil
	}
	var out []byte
	for len(data) > 0 {
		switch p.state {
		case stHead:
			// Search only the new bytes (and the three before them), so
			// a head sent a byte at a time costs linear time.
			from := max(len(p.head)-3, 0)
			p.head = append(p.head, data...)
			data = nil
			// RFC 9112 2.2: empty lines before a request line are
			// ignored; net/http does not, so they are dropped here.
			for len(p.head) >= 2 && p.head[0] == '\r' && p.head[1] == '\n' {
				p.head, from = p.head[2:], 0
			}
			end := bytes.Index(p.head[from:], []byte("\r\n\r\n"))
			if end < 0 {
				if i := bytes.IndexByte(p.head[from:], '\n'); i >= 0 && (from+i == 0 || p.head[from+i-1] != '\r') {
					return out, p.reject(400, "Lines must end with CRLF.")
				}
				if len(p.head) > p.limits.MaxHeaderBytes {
					return out, p.headTooBig()
				}
				return out, nil
			}
			end += from
			head := p.head[:end+4]
			if len(head) > p.limits.MaxHeaderBytes {
				return out, p.headTooBig()
			}
			body, chunked, code, msg := p.checkHead(head)
			if code != 0 {
				return out, p.reject(code, msg)
			}
			out = append(out, head...)
			data = append([]byte(nil), p.head[end+4:]...)
			p.head = p.head[:0]
			switch {
			case p.passthru:
				return append(out, data...), nil
			case chunked:
				p.state = stChunkSize
			case body > 0:
				p.state, p.remain = stBody, body
			}
		case stBody, stChunkData:
			n := int(min(int64(len(data)), p.remain))
			out = append(out, data[:n]...)
			data = data[n:]
			p.remain -= int64(n)
			if p.remain == 0 {
				if p.state == stBody {
					p.state = stHead
				} else {
					p.state = stChunkCRLF
				}
			}
		case stChunkCRLF:
			p.line = append(p.line, data[0])
			out = append(out, data[0])
			data = data[1:]
			if len(p.line) == 2 {
				if string(p.line) != "\r\n" {
					return out, errFraming
				}
				p.line, p.state = p.line[:0], stChunkSize
			}
		case stChunkSize, stTrailer:
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				p.line = append(p.line, data...)
				out = append(out, data...)
				if len(p.line) > 4096 {
					return out, errFraming
				}
				return out, nil
			}
			p.line = append(p.line, data[:i+1]...)
			out = append(out, data[:i+1]...)
			data = data[i+1:]
			line := p.line
			p.line = p.line[:0]
			if len(line) < 2 || line[len(line)-2] != '\r' {
				return out, errFraming
			}
			line = line[:len(line)-2]
			if p.state == stTrailer {
				if len(line) == 0 {
					p.state = stHead
				} else if _, _, ok := checkField(line); !ok {
					return out, errFraming
				}
				continue
			}
			size, ok := chunkSize(line)
			if !ok {
				return out, errFraming
			}
			if size == 0 {
				p.state = stTrailer
			} else {
				p.state, p.remain = stChunkData, size
			}
		}
	}
	return out, nil
}

func (p *parser) headTooBig() error {
	if i := bytes.IndexByte(p.head, '\n'); i < 0 || i > p.limits.MaxRequestLine {
		return p.reject(http.StatusRequestURITooLong, "The request line is too long.")
	}
	return p.reject(http.StatusRequestHeaderFieldsTooLarge, "The request headers are too large.")
}

// reject replaces the bad request with one that StrictHandler answers.
func (p *parser) reject(code int, msg string) error {
	p.rejected = fmt.Appendf(nil, "GET / HTTP/1.1\r\nHost: rejected\r\n%s: %d %s\r\nConnection: close\r\n\r\n", rejectHeader, code, msg)
	return nil
}

// checkHead validates a request head ending in CRLFCRLF and returns its
// body framing, or an error status and message.
func (p *parser) checkHead(head []byte) (length int64, chunked bool, code int, msg string) {
	lines := bytes.Split(head[:len(head)-4], []byte("\r\n"))
	for _, l := range lines {
		if bytes.IndexByte(l, '\n') >= 0 || bytes.IndexByte(l, '\r') >= 0 {
			return 0, false, 400, "Lines must end with CRLF."
		}
	}
	reqLine := lines[0]
	if len(reqLine) > p.limits.MaxRequestLine {
		return 0, false, http.StatusRequestURITooLong, "The request line is too long."
	}
	if bytes.Equal(reqLine, []byte("PRI * HTTP/2.0")) {
		p.passthru = true // the h2c preface: net/http decides
		return 0, false, 0, ""
	}
	method, rest, ok1 := bytes.Cut(reqLine, []byte(" "))
	target, version, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || !isToken(method) || len(target) == 0 || !visible(target) {
		return 0, false, 400, "Malformed request line."
	}
	var http10 bool
	switch string(version) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		http10 = true
	default:
		return 0, false, 505, "Only HTTP/1.0 and HTTP/1.1 are supported here."
	}
	if len(lines)-1 > p.limits.MaxHeaders {
		return 0, false, http.StatusRequestHeaderFieldsTooLarge, "Too many header fields."
	}
	length = -1
	var te, hosts int
	for _, line := range lines[1:] {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return 0, false, 400, "Obsolete line folding is not accepted."
		}
		name, value, ok := checkField(line)
		if !ok {
			return 0, false, 400, "Malformed header field."
		}
		if bytes.IndexByte(name, '_') >= 0 {
			return 0, false, 400, "Header names with underscores are not accepted."
		}
		switch {
		case asciiEqualFold(name, "content-length"):
			if length >= 0 {
				return 0, false, 400, "Content-Length is repeated."
			}
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || !digits(value) {
				return 0, false, 400, "Invalid Content-Length."
			}
			length = n
		case asciiEqualFold(name, "transfer-encoding"):
			te++
			if !asciiEqualFold(value, "chunked") {
				return 0, false, 400, "Only Transfer-Encoding: chunked is accepted."
			}
		case asciiEqualFold(name, "host"):
			hosts++
		}
	}
	switch {
	case te > 1:
		return 0, false, 400, "Transfer-Encoding is repeated."
	case te == 1 && length >= 0:
		return 0, false, 400, "Both Content-Length and Transfer-Encoding are set."
	case te == 1 && http10:
		return 0, false, 400, "Transfer-Encoding is not allowed in HTTP/1.0."
	case hosts > 1:
		return 0, false, 400, "Host is repeated."
	}
	return max(length, 0), te == 1, 0, ""
}

// checkField splits "name: value" and checks both parts.
func checkField(line []byte) (name, value []byte, ok bool) {
	name, value, found := bytes.Cut(line, []byte(":"))
	if !found || !isToken(name) {
		return nil, nil, false
	}
	value = bytes.Trim(value, " \t")
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, false
		}
	}
	return name, value, true
}

// chunkSize parses "HEX[;ext]" strictly: hex digits only, and nothing but
// an extension after them.
func chunkSize(line []byte) (int64, bool) {
	i := 0
	for i < len(line) && i < 16 && isHex(line[i]) {
		i++
	}
	if i == 0 || i < len(line) && isHex(line[i]) {
		return 0, false
	}
	size, err := strconv.ParseInt(string(line[:i]), 16, 64)
	if err != nil {
		return 0, false
	}
	// An extension starts right after the size: RFC 9112 allows
	// whitespace before ';', but net/http does not, so neither do we.
	ext := line[i:]
	if len(ext) > 0 && ext[0] != ';' {
		return 0, false
	}
	for _, c := range ext {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, false
		}
	}
	return size, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0) {
			return false
		}
	}
	return true
}

// visible reports whether b holds only visible ASCII, as a request target must.
func visible(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
