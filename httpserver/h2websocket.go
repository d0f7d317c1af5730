package httpserver

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/torsion-server/torsion/internal/xconnect"
)

// net/http has read GODEBUG by now (see package xconnect).
func init() { xconnect.Restore() }

// WebSockets over HTTP/2 (RFC 8441). The HTTP/2 server advertises
// SETTINGS_ENABLE_CONNECT_PROTOCOL, so a browser that has an HTTP/2
// connection opens its WebSockets on it, as a CONNECT stream with
// :protocol "websocket"; the WebSocket frames then travel as the stream's
// data. Handlers know only the HTTP/1.1 Upgrade (RFC 6455): they answer
// 101 and hijack the connection, or hijack it and write the 101 head
// themselves. serveH2WebSocket hands them the stream in that form, so that
// every WebSocket handler in the tree, an ASGI application's or a Go
// library's, serves both without knowing which it has.

// wsKey stands in for the Sec-WebSocket-Key an HTTP/2 client does not send;
// the Sec-WebSocket-Accept computed from it is not sent either.
const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

// maxRawHead bounds the HTTP/1 response head a hijacking handler may
// write itself.
const maxRawHead = 64 << 10

// serveH2WebSocket serves an extended CONNECT for a WebSocket as an
// HTTP/1.1 Upgrade request: a GET with the Upgrade headers, no body, and
// Proto still HTTP/2.0, so an application can tell.
func (s *Server) serveH2WebSocket(w http.ResponseWriter, r *http.Request) {
	up := r.Clone(r.Context())
	up.Method = http.MethodGet
	delete(up.Header, ":protocol")
	up.Header.Set("Connection", "Upgrade")
	up.Header.Set("Upgrade", "websocket")
	up.Header.Set("Sec-WebSocket-Key", wsKey)
	up.Body, up.ContentLength = http.NoBody, 0
	ws := &h2ws{s: s, w: w, r: r, rc: http.NewResponseController(w)}
	s.handler.ServeHTTP(ws, up)
	c := ws.conn
	if c == nil {
		return
	}
	// The connection lives on after the handler returns, as a hijacked
	// one does, and the stream with it.
	select {
	case <-c.closed:
	case <-r.Context().Done(): // reset by the client, or the server stops
	}
	c.Close()
	c.mu.Lock()
	//lint:ignore SA2001 taking the lock waited for a write under way: none is once the stream ends
	c.mu.Unlock()
}

// h2ws is the http.ResponseWriter serveH2WebSocket gives the handler.
type h2ws struct {
	s  *Server
	w  http.ResponseWriter
	r  *http.Request
	rc *http.ResponseController

	wrote    bool // a final status has been sent
	upgraded bool // and it accepted the WebSocket
	refused  bool // the handler answered 2xx without accepting: body dropped
	conn     *h2wsConn
}

func (x *h2ws) Header() http.Header { return x.w.Header() }

// WriteHeader sends 101 as 200, the RFC 8441 answer that accepts, without
// the HTTP/1.1 handshake's fields. A 2xx other than 101 would tell the
// client its WebSocket was accepted when the handler did not accept it: it
// is sent as a 400 instead.
func (x *h2ws) WriteHeader(code int) {
	if x.wrote {
		return
	}
	switch {
	case code == http.StatusSwitchingProtocols:
		h := x.w.Header()
		for _, k := range []string{"Upgrade", "Connection", "Sec-Websocket-Accept", "Content-Length"} {
			delete(h, k)
		}
		x.upgraded = true
		x.w.WriteHeader(http.StatusOK)
		x.rc.Flush()
	case code >= 100 && code < 200:
		x.w.WriteHeader(code)
		return
	case code >= 200 && code < 300:
		x.refused = true
		clear(x.w.Header())
		x.wrote = true
		x.s.opts.Refuse(x.w, x.r, http.StatusBadRequest, "This resource does not accept WebSockets.")
	default:
		x.w.WriteHeader(code)
	}
	x.wrote = true
}

func (x *h2ws) Write(p []byte) (int, error) {
	if !x.wrote {
		x.WriteHeader(http.StatusOK)
	}
	if x.refused {
		return len(p), nil
	}
	return x.w.Write(p)
}

// Flush implements http.Flusher.
func (x *h2ws) Flush() { x.rc.Flush() }

// Unwrap lets http.ResponseController reach the stream's own writer (its
// deadlines, say).
func (x *h2ws) Unwrap() http.ResponseWriter { return x.w }

// Hijack implements http.Hijacker: the connection it returns reads the
// stream's data and writes data to it. A handler that hijacks before
// answering writes its answer's HTTP/1 head first, as on HTTP/1.1; that
// head is sent as the stream's HTTP/2 answer.
func (x *h2ws) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if x.conn != nil {
		return nil, nil, http.ErrHijacked
	}
	c := &h2wsConn{x: x, closed: make(chan struct{}), inHead: !x.wrote}
	x.conn = c
	return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
}

// h2wsConn is an HTTP/2 stream seen as a net.Conn.
type h2wsConn struct {
	x       *h2ws
	mu      sync.Mutex // held by Write
	inHead  bool       // the handler is writing its answer's head
	head    []byte
	writing atomic.Int32
	closing atomic.Bool
	closed  chan struct{}
	once    sync.Once
}

func (c *h2wsConn) Read(p []byte) (int, error) {
	if c.closing.Load() {
		return 0, net.ErrClosed
	}
	return c.x.r.Body.Read(p)
}

func (c *h2wsConn) Write(p []byte) (int, error) {
	c.writing.Add(1)
	defer c.writing.Add(-1)
	if c.closing.Load() {
		return 0, net.ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	if c.inHead {
		var err error
		if n, err = c.writeHead(p); err != nil || n == len(p) {
			return n, err
		}
	}
	m, err := c.x.Write(p[n:])
	if err == nil {
		err = c.x.rc.Flush()
	}
	return n + m, err
}

// writeHead takes the HTTP/1 response head a hijacking handler writes,
// and sends it as the stream's answer once it is whole. It returns how
// much of p the head took.
func (c *h2wsConn) writeHead(p []byte) (int, error) {
	before := len(c.head)
	c.head = append(c.head, p...)
	end := bytes.Index(c.head, []byte("\r\n\r\n"))
	if end < 0 {
		if len(c.head) > maxRawHead {
			return 0, errors.New("httpserver: WebSocket answer head too long")
		}
		return len(p), nil
	}
	head := c.head[:end+4]
	c.inHead, c.head = false, nil
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), c.x.r)
	if err != nil {
		return 0, err
	}
	h := c.x.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	c.x.WriteHeader(resp.StatusCode)
	c.x.rc.Flush()
	return len(head) - before, nil
}

// Close ends the connection: a Read or Write under way returns, and the
// stream ends once serveH2WebSocket sees it.
func (c *h2wsConn) Close() error {
	c.once.Do(func() {
		c.closing.Store(true)
		c.x.r.Body.Close()
		if c.writing.Load() > 0 {
			// A write waits for the client's flow-control window: the
			// deadline resets the stream, and the write returns.
			c.x.rc.SetWriteDeadline(time.Now())
		}
		close(c.closed)
	})
	return nil
}

func (c *h2wsConn) LocalAddr() net.Addr {
	if a, ok := c.x.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a
	}
	return addr(c.x.r.Host)
}

func (c *h2wsConn) RemoteAddr() net.Addr {
	if ap, err := netip.ParseAddrPort(c.x.r.RemoteAddr); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return addr(c.x.r.RemoteAddr)
}

func (c *h2wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *h2wsConn) SetReadDeadline(t time.Time) error { return c.x.rc.SetReadDeadline(t) }

func (c *h2wsConn) SetWriteDeadline(t time.Time) error { return c.x.rc.SetWriteDeadline(t) }

// addr is a net.Addr known only by its text.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }

// isExtendedConnect reports whether r is an HTTP/2 extended CONNECT
// (RFC 8441), and for which protocol.
func isExtendedConnect(r *http.Request) (protocol string, ok bool) {
	if r.Method != http.MethodConnect {
		return "", false
	}
	p := r.Header.Get(":protocol")
	return strings.ToLower(p), p != ""
}

var _ net.Conn = (*h2wsConn)(nil)
