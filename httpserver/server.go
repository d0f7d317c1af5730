// Package httpserver serves HTTP: HTTP/1.x with torsion's own server loop
// and request parser, which check every request head strictly (RFC 9112)
// and bound every wait on a client, and HTTP/2 through net/http, over TLS
// by ALPN and in cleartext with prior knowledge. Any http.Handler mounts
// unchanged: the loop keeps http.ResponseWriter's contract (Flusher,
// Hijacker, io.ReaderFrom with sendfile, http.ResponseController's
// deadlines), checked against net/http by a conformance test. HTTP/2
// offers extended CONNECT (RFC 8441), and a WebSocket opened that way
// reaches a handler as an HTTP/1.1 Upgrade whose hijacked connection is
// the stream, so WebSocket handlers written for HTTP/1.1 serve both.
//
// Process-wide state: net/http reads its extended CONNECT switch only
// from GODEBUG ("http2xconnect=1"), once, as it initializes. A program
// that imports this package has it on for every net/http server and
// client it runs, not only this package's: the package internal/xconnect,
// initialized before net/http (Go initializes packages in the order of
// their import paths, each after what it imports), sets the variable,
// and this package puts GODEBUG back as it was once net/http has read it,
// so processes the program starts see its own environment. A
// "http2xconnect=0" in GODEBUG turns it off for all, WebSockets over
// HTTP/2 included.
package httpserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/torsion-server/torsion/endpoint"
)

// Options configures a Server; zero fields take DefaultOptions' values.
// It is the only place the server's limits are set.
type Options struct {
	// ReadHeaderTimeout bounds the time to receive a request's head
	// (default 30s), so clients trickling headers are cut off; it bounds
	// TLS handshakes too.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long (default 120s).
	IdleTimeout time.Duration
	// ClientTimeout drops an HTTP/1 client that owes the server something
	// and makes no progress for this long (default 60s): one that takes
	// nothing of a response (nginx's send_timeout: each write to the
	// connection must make progress within it), or sends nothing of a
	// request body being read (nginx's client_body_timeout: each read of
	// the body must get something within it). A handler's own deadlines,
	// set with http.ResponseController, take precedence while they are set.
	ClientTimeout time.Duration
	// MaxHeaderBytes bounds a request's head, request line and headers
	// (default 64 KiB; over HTTP/2, the header block); more gets 431.
	MaxHeaderBytes int
	// MaxRequestLine bounds the request line (default 8 KiB; more gets
	// 414); MaxHeaders the number of header fields (default 100; more
	// gets 431).
	MaxRequestLine, MaxHeaders int
	// RefuseUnderscores answers 400 to a request with a header name that
	// holds an underscore; by default such a field is dropped (logged at
	// DEBUG), as nginx and gunicorn drop it: WSGI reads X_A and X-A as one
	// variable, so one could pass for the other.
	RefuseUnderscores bool
	// MaxConcurrentStreams bounds the streams one HTTP/2 connection may
	// have open at once (default 128, as nginx's
	// http2_max_concurrent_streams; net/http's is 250).
	MaxConcurrentStreams int
	// MaxClientConns bounds the connections one client address may hold
	// open at once (default 256; an IPv6 address counts by its /64); a
	// connection beyond it is closed as it is accepted. MaxClientStreams
	// bounds the HTTP/2 requests one address may have in flight, over all
	// its connections (default 512); one beyond it is answered 429.
	// Addresses in ClientLimitExempt (a proxy in front, say) are not
	// counted.
	MaxClientConns, MaxClientStreams int
	ClientLimitExempt                []netip.Prefix
	// H2C serves cleartext HTTP/2 to clients that start a connection with
	// its preface ("prior knowledge"). Over TLS, HTTP/2 is always offered
	// by ALPN.
	H2C bool
	// LegacyCiphers also offers, on TLS endpoints, the ECDHE suites with
	// AES-CBC and SHA-1 for TLS 1.2 clients without AEAD suites (see
	// endpoint.AllowLegacyCiphers); by default only AEAD suites are.
	LegacyCiphers bool
	// ErrorLog receives the server's own errors: panics, failed accepts,
	// failed TLS handshakes (at DEBUG). Nil discards them.
	ErrorLog *slog.Logger
	// Refuse answers a request the server refused (a malformed head, a
	// header HTTP/2 lets through that HTTP/1 would refuse): code is the
	// status and msg says why. The connection ends after the answer over
	// HTTP/1. Nil answers with the status line and msg as plain text; a
	// caller that logs requests sets it to answer, and log, as it does
	// for the requests its handler serves.
	Refuse func(w http.ResponseWriter, r *http.Request, code int, msg string)
	// TLSHandshake, if set, is told of each TLS handshake on a TLS
	// endpoint: err is nil for one that completed (for metrics).
	TLSHandshake func(err error)
	// BaseContext, if set, returns the context the requests of
	// connections accepted from l start from, as net/http's does: values
	// an embedder's handlers read, or a cancellation of them all. It must
	// not return nil. Nil means context.Background().
	BaseContext func(l net.Listener) context.Context
	// ConnContext, if set, returns the context for a new connection's
	// requests, made from ctx, as net/http's does; over HTTP/2 it is
	// called once for the connection, whatever its streams. It must not
	// return nil.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
}

// DefaultOptions returns the limits a zero Options field takes, stated
// here once: New applies them, and torsion web's options show them.
func DefaultOptions() Options {
	return Options{
		ReadHeaderTimeout:    30 * time.Second,
		IdleTimeout:          120 * time.Second,
		ClientTimeout:        60 * time.Second,
		MaxHeaderBytes:       64 << 10,
		MaxRequestLine:       8 << 10,
		MaxHeaders:           100,
		MaxConcurrentStreams: 128,
		MaxClientConns:       256,
		MaxClientStreams:     512,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	or := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	orDuration := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	orDuration(&o.ReadHeaderTimeout, d.ReadHeaderTimeout)
	orDuration(&o.IdleTimeout, d.IdleTimeout)
	orDuration(&o.ClientTimeout, d.ClientTimeout)
	or(&o.MaxHeaderBytes, d.MaxHeaderBytes)
	or(&o.MaxRequestLine, d.MaxRequestLine)
	or(&o.MaxHeaders, d.MaxHeaders)
	or(&o.MaxConcurrentStreams, d.MaxConcurrentStreams)
	or(&o.MaxClientConns, d.MaxClientConns)
	or(&o.MaxClientStreams, d.MaxClientStreams)
	if o.ErrorLog == nil {
		o.ErrorLog = slog.New(slog.DiscardHandler)
	}
	if o.Refuse == nil {
		o.Refuse = plainRefusal
	}
	return o
}

// plainRefusal is the default Options.Refuse.
func plainRefusal(w http.ResponseWriter, r *http.Request, code int, msg string) {
	body := strconv.Itoa(code) + " " + http.StatusText(code) + ": " + msg + "\n"
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		fmt.Fprint(w, body)
	}
}

// Server serves one handler over HTTP/1.x, with its own loop, and HTTP/2,
// through net/http: over TLS when ALPN chooses h2, and in cleartext with
// prior knowledge when Options.H2C is set. Serve may be called for several
// listeners; Shutdown and Close end them all.
type Server struct {
	handler http.Handler
	opts    Options
	lim     limits // opts' limits on a request head
	clients clients
	log     *slog.Logger
	h2      *http.Server // serves the connections that speak HTTP/2

	mu sync.Mutex
	// listeners: true once a listener drains (see drainWindow).
	listeners map[net.Listener]bool
	conns     map[*h1conn]struct{}
	h2conns   map[net.Conn]h2conn // handed to h2, with the client that holds them
	starting  int                 // connections accepted, not yet in conns
	// onShutdown are called, each in a goroutine of its own, when
	// Shutdown begins.
	onShutdown []func()
	handoff    *handoff // connections for h2
	shutting   atomic.Bool
	stopped    time.Time // when shutting began
}

// New returns a Server that serves h as opts says.
func New(h http.Handler, opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{handler: h, opts: opts, log: opts.ErrorLog,
		lim:     limits{MaxRequestLine: opts.MaxRequestLine, MaxHeaderBytes: opts.MaxHeaderBytes, MaxHeaders: opts.MaxHeaders, RefuseUnderscores: opts.RefuseUnderscores},
		clients: clients{maxConns: opts.MaxClientConns, maxStreams: opts.MaxClientStreams, exempt: opts.ClientLimitExempt, m: map[netip.Addr]*client{}},
		h2conns: map[net.Conn]h2conn{}}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true) // as net/http must, though it is handed only HTTP/2
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(opts.H2C)
	s.h2 = &http.Server{
		Protocols:         protocols,
		Handler:           http.HandlerFunc(s.serveH2),
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(opts.ErrorLog.Handler(), slog.LevelWarn),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: opts.MaxConcurrentStreams,
			// A connection that takes none of what is ready for it.
			WriteByteTimeout: opts.ClientTimeout,
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			s.mu.Lock()
			hc := s.h2conns[c]
			s.mu.Unlock()
			if hc.ctx != nil { // the context it was accepted with
				ctx = hc.ctx
			}
			return context.WithValue(ctx, clientCtxKey{}, hc.cl)
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				s.releaseH2(c)
			}
		},
	}
	return s
}

func (s *Server) shuttingDown() bool { return s.shutting.Load() }

// Serve serves the connections accepted from l until Shutdown or Close,
// and then returns http.ErrServerClosed. When l is an
// *endpoint.TLSListener (ssl:, txsni:), HTTP/2 and HTTP/1.1 are offered by
// ALPN, and handlers see the TLS state in r.TLS over both.
func (s *Server) Serve(l net.Listener) error {
	if tl, ok := l.(*endpoint.TLSListener); ok {
		cfg := tl.Config.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		if s.opts.LegacyCiphers {
			endpoint.AllowLegacyCiphers(cfg)
		}
		l = &endpoint.TLSListener{Listener: tl.Listener, Config: cfg, HandshakeTimeout: s.opts.ReadHeaderTimeout,
			HandshakeError: func(c net.Conn, err error) {
				if s.opts.TLSHandshake != nil {
					s.opts.TLSHandshake(err)
				}
				s.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			}}
	}
	s.mu.Lock()
	if s.shuttingDown() {
		s.mu.Unlock()
		l.Close()
		return http.ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners, s.conns = map[net.Listener]bool{}, map[*h1conn]struct{}{}
	}
	s.listeners[l] = false
	if s.handoff == nil {
		s.handoff = &handoff{addr: l.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
		go s.h2.Serve(s.handoff)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	base := context.Background()
	if s.opts.BaseContext != nil {
		if base = s.opts.BaseContext(l); base == nil {
			panic("httpserver: BaseContext returned a nil context")
		}
	}
	var delay time.Duration
	for {
		rwc, err := l.Accept()
		if err != nil {
			if s.shuttingDown() {
				l.Close() // drained: the window has passed
				return http.ErrServerClosed
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				// Out of file descriptors, say: wait, as net/http does,
				// but at most a tenth of a second, so that the
				// listener serves again soon after one frees.
				delay = min(max(2*delay, 5*time.Millisecond), 100*time.Millisecond)
				s.log.Warn("accept failed; retrying", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		s.starting++ // Shutdown waits for it from now on
		s.mu.Unlock()
		go s.serveConn(base, rwc)
	}
}

// connContext is the context of a connection accepted with base: what
// net/http's requests carry (the server, the local address), and what
// ConnContext adds.
func (s *Server) connContext(base context.Context, rwc net.Conn) context.Context {
	ctx := context.WithValue(base, http.ServerContextKey, s.h2)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, rwc.LocalAddr())
	if s.opts.ConnContext != nil {
		if ctx = s.opts.ConnContext(ctx, rwc); ctx == nil {
			panic("httpserver: ConnContext returned a nil context")
		}
	}
	return ctx
}

func (s *Server) serveConn(base context.Context, rwc net.Conn) {
	if _, ok := rwc.(*tls.Conn); ok && s.opts.TLSHandshake != nil {
		s.opts.TLSHandshake(nil) // the TLSListener hands out completed handshakes only
	}
	cl, ok := s.clients.open(rwc.RemoteAddr())
	if !ok {
		s.notStarting()
		s.log.Debug("connection refused: the client holds its share of connections", "remote", rwc.RemoteAddr().String(), "max", s.opts.MaxClientConns)
		rwc.Close()
		return
	}
	ctx := s.connContext(base, rwc)
	if tc, ok := rwc.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		s.notStarting()
		s.handOff(rwc, h2conn{cl, ctx})
		return
	}
	c := s.newConn(ctx, rwc)
	c.client = cl // released here, or by the HTTP/2 server it is handed to
	s.mu.Lock()
	// Accepted as Shutdown began, it is served all the same (its
	// request is answered with Connection: close), and waited for.
	s.conns[c] = struct{}{}
	s.starting--
	s.mu.Unlock()
	c.serve()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.client.close()
}

// notStarting takes back the count Serve made of a connection it accepted
// that serveConn does not keep in conns.
func (s *Server) notStarting() {
	s.mu.Lock()
	s.starting--
	s.mu.Unlock()
}

// h2conn is what a connection handed to the HTTP/2 server keeps: its
// client's count, released when it closes, and its context.
type h2conn struct {
	cl  *client
	ctx context.Context
}

// handOff gives a connection to net/http's server, which speaks HTTP/2.
func (s *Server) handOff(c net.Conn, hc h2conn) {
	s.mu.Lock()
	s.h2conns[c] = hc
	s.mu.Unlock()
	select {
	case s.handoff.conns <- c:
	case <-s.handoff.done:
		s.releaseH2(c)
		c.Close()
	}
}

// releaseH2 gives back the client's count of a connection handed to the
// HTTP/2 server, once it is closed (or never taken).
func (s *Server) releaseH2(c net.Conn) {
	s.mu.Lock()
	hc, ok := s.h2conns[c]
	delete(s.h2conns, c)
	s.mu.Unlock()
	if ok {
		hc.cl.close()
	}
}

// serveH2 serves an HTTP/2 request, treating what net/http lets through as
// parseHead does over HTTP/1: a header name with an underscore is dropped
// (or refused, with RefuseUnderscores); a repeated Content-Type, an
// :authority that is not a valid Host, and a host field that differs from
// :authority (RFC 9113 8.3.1) are refused. An equal host field is
// dropped, so r.Host is the one source of the host for routing and
// applications alike.
func (s *Server) serveH2(w http.ResponseWriter, r *http.Request) {
	cl := clientOf(r.Context())
	if !cl.startStream() {
		s.opts.Refuse(w, r, http.StatusTooManyRequests, "This client has too many requests in flight.")
		return
	}
	defer cl.endStream()
	for name, vals := range r.Header {
		if strings.IndexByte(name, '_') >= 0 {
			if s.opts.RefuseUnderscores {
				s.opts.Refuse(w, r, http.StatusBadRequest, "Header names with underscores are refused: "+name)
				return
			}
			delete(r.Header, name) // deleting while ranging is allowed
			s.log.Debug("dropped a header field with an underscore", "remote", r.RemoteAddr, "name", name)
			continue
		}
		if name == "Content-Type" && len(vals) > 1 {
			s.opts.Refuse(w, r, http.StatusBadRequest, "Content-Type is repeated.")
			return
		}
	}
	if hv, ok := r.Header["Host"]; ok {
		if len(hv) != 1 || !strings.EqualFold(hv[0], r.Host) {
			s.opts.Refuse(w, r, http.StatusBadRequest, "The host field differs from :authority.")
			return
		}
		delete(r.Header, "Host")
	}
	if !ValidHost(r.Host) {
		s.opts.Refuse(w, r, http.StatusBadRequest, "Invalid :authority.")
		return
	}
	if p, ok := isExtendedConnect(r); ok {
		if p != "websocket" {
			s.opts.Refuse(w, r, http.StatusNotImplemented, "Extended CONNECT is served for WebSockets only.")
			return
		}
		s.serveH2WebSocket(w, r)
		return
	}
	st := &h2stream{ResponseWriter: w, rc: http.NewResponseController(w), body: r.Body, timeout: s.opts.ClientTimeout}
	defer st.end()
	r.Body = st
	s.handler.ServeHTTP(st, r)
}

// freshGrace is how long Shutdown lets a connection accepted just before it
// bring its first request.
const freshGrace = 250 * time.Millisecond

// Shutdown stops accepting, closes idle connections, and waits for the
// others to finish their requests, or for ctx to end (then it returns
// ctx's error and Close ends the rest).
func (s *Server) Shutdown(ctx context.Context) error {
	left := s.stop(false)
	h2 := make(chan error, 1)
	go func() { h2 <- s.h2.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for left > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		left = s.stop(false)
	}
	return <-h2
}

// RegisterOnShutdown registers f to be called, in a goroutine of its own,
// when Shutdown (or Close) begins, over HTTP/1 and HTTP/2 alike, as
// net/http's does: a handler that streams without end (server-sent
// events) learns that it should end.
func (s *Server) RegisterOnShutdown(f func()) {
	s.mu.Lock()
	s.onShutdown = append(s.onShutdown, f)
	s.mu.Unlock()
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.stop(true)
	return s.h2.Close()
}

// drainWindow is how long a listener goes on accepting once Shutdown
// begins: the connections waiting in its accept queue are served, where
// closing it at once would reset them (clients see "connection reset" for
// a request they sent to a server that was up).
var drainWindow = 100 * time.Millisecond // a variable for tests

// stop stops accepting (a listener with SetDeadline drains for
// drainWindow, then its Serve closes it; Close closes all at once) and
// closes the idle HTTP/1 connections, or all of them; it returns how many
// connections and listeners are left open.
func (s *Server) stop(all bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shutting.Swap(true) {
		s.stopped = time.Now()
		for _, f := range s.onShutdown {
			go f()
		}
	}
	for l, draining := range s.listeners {
		if all {
			l.Close()
		} else if !draining {
			s.listeners[l] = true
			d, ok := l.(interface{ SetDeadline(time.Time) error })
			if !ok || d.SetDeadline(time.Now().Add(drainWindow)) != nil {
				l.Close()
			}
		}
	}
	for c := range s.conns {
		switch {
		case all:
			c.rwc.Close()
		case c.idle.Load() && (c.asked.Load() || time.Since(s.stopped) > freshGrace):
			// Interrupt the wait for a request; the connection then
			// closes gently. A connection that has not yet brought its
			// first request gets freshGrace to do so: it was accepted
			// to be served.
			c.interruptIdle()
		}
	}
	return len(s.conns) + s.starting + len(s.listeners)
}

// handoff is the listener through which net/http's server receives the
// connections that speak HTTP/2.
type handoff struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }
