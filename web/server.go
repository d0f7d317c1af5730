// Package web is torsion's HTTP layer: static files, the demo page, error
// pages, the access log and the http.Server defaults that keep slow and
// hostile clients from hurting anyone else.
package web

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/torsion-server/torsion/endpoint"
)

// ServerOptions tunes NewServer; zero fields take the defaults shown.
type ServerOptions struct {
	// ReadHeaderTimeout bounds the time to receive a request's headers
	// (default 30s), so clients trickling headers are cut off.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long (default 120s).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (default 64 KiB).
	MaxHeaderBytes int
	// MaxRequestLine bounds the request line (default 8 KiB); MaxHeaders
	// the number of header fields (default 100).
	MaxRequestLine, MaxHeaders int
	// H2C serves cleartext HTTP/2 to clients that start with its preface
	// ("prior knowledge"). Over TLS, HTTP/2 is always offered by ALPN.
	H2C bool
	// TrustedProxies, when not nil, turns on ProxyHeaders for requests
	// from these addresses; the access log then shows the real client.
	TrustedProxies []netip.Prefix
	// ForwardedFields says what ProxyHeaders believes of what trusted
	// proxies forward; zero means ForwardedAll.
	ForwardedFields ForwardedFields
	// ClientTimeout drops an HTTP/1 client that owes the server something
	// and makes no progress for this long (default 60s): one that takes
	// nothing of a response (nginx's send_timeout: each write to the
	// connection must make progress within it), or sends nothing of a
	// request body being read (nginx's client_body_timeout: each read of
	// the body must get something within it). A handler's own deadlines,
	// set with http.ResponseController, take precedence while they are set.
	ClientTimeout time.Duration
	// LegacyCiphers also offers, on TLS endpoints, the ECDHE suites with
	// AES-CBC and SHA-1 for TLS 1.2 clients without AEAD suites (see
	// endpoint.AllowLegacyCiphers); by default only AEAD suites are.
	LegacyCiphers bool
	// ErrorLog receives the server's own errors: panics, failed accepts,
	// failed TLS handshakes (at DEBUG). Nil means the access log.
	ErrorLog *slog.Logger
}

// Server serves HTTP/1.x itself, with strict request framing (see
// parseHead), and HTTP/2 through the embedded http.Server: over TLS when
// ALPN chooses h2, and in cleartext with prior knowledge when H2C is set.
// Use Serve, Shutdown and Close on the Server, not on the http.Server.
type Server struct {
	*http.Server
	Limits Limits
	log    *slog.Logger
	h2c    bool // serve cleartext HTTP/2 to clients that start with its preface
	// clientTimeout bounds each write to an HTTP/1 connection and each
	// read of a request body (ClientTimeout).
	clientTimeout time.Duration
	// legacyCiphers: ServerOptions.LegacyCiphers.
	legacyCiphers bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*h1conn]struct{}
	h2        *handoff // connections for the http.Server
	shutting  atomic.Bool
}

// ListenAndServe listens on TCP address s.Addr (":http" if empty) and
// calls Serve.
func (s *Server) ListenAndServe() error {
	addr := s.Addr
	if addr == "" {
		addr = ":http"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
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
		if s.legacyCiphers {
			endpoint.AllowLegacyCiphers(cfg)
		}
		l = &endpoint.TLSListener{Listener: tl.Listener, Config: cfg, HandshakeTimeout: s.ReadHeaderTimeout,
			HandshakeError: func(c net.Conn, err error) {
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
		s.listeners, s.conns = map[net.Listener]struct{}{}, map[*h1conn]struct{}{}
	}
	s.listeners[l] = struct{}{}
	if s.h2 == nil {
		s.h2 = &handoff{addr: l.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
		go s.Server.Serve(s.h2)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		rwc, err := l.Accept()
		if err != nil {
			if s.shuttingDown() {
				return http.ErrServerClosed
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				// Out of file descriptors, say: wait, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		go s.serveConn(rwc)
	}
}

func (s *Server) serveConn(rwc net.Conn) {
	if tc, ok := rwc.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		s.handOff(rwc)
		return
	}
	c := s.newConn(rwc)
	s.mu.Lock()
	if s.shuttingDown() {
		s.mu.Unlock()
		rwc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.serve()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// handOff gives a connection to the http.Server, which speaks HTTP/2.
func (s *Server) handOff(c net.Conn) {
	select {
	case s.h2.conns <- c:
	case <-s.h2.done:
		c.Close()
	}
}

// Shutdown stops accepting, closes idle connections, and waits for the
// others to finish their requests, or for ctx to end (then it returns
// ctx's error and Close ends the rest).
func (s *Server) Shutdown(ctx context.Context) error {
	left := s.stop(false)
	h2 := make(chan error, 1)
	go func() { h2 <- s.Server.Shutdown(ctx) }()
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

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.stop(true)
	return s.Server.Close()
}

// stop stops accepting and closes the idle HTTP/1 connections, or all of
// them; it returns how many are left open.
func (s *Server) stop(all bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutting.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		if all || c.idle.Load() {
			c.rwc.Close()
		}
	}
	return len(s.conns)
}

// handoff is the listener through which the http.Server receives the
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

// NewServer returns a Server for h with torsion's defaults: strict request
// framing, timeouts against slow clients, each request logged to log in
// the combined format and the server's own errors logged to
// opts.ErrorLog.
func NewServer(h http.Handler, log *slog.Logger, opts ServerOptions) *Server {
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = 30 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = 64 << 10
	}
	if opts.ClientTimeout <= 0 {
		opts.ClientTimeout = 60 * time.Second
	}
	errLog := opts.ErrorLog
	if errLog == nil {
		errLog = log
	}
	handler := AccessLog(strictHandler(h), log)
	if opts.TrustedProxies != nil {
		fields := opts.ForwardedFields
		if fields == 0 {
			fields = ForwardedAll
		}
		handler = ProxyHeaders(handler, opts.TrustedProxies, fields)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(opts.H2C)
	return &Server{
		log:           errLog,
		h2c:           opts.H2C,
		clientTimeout: opts.ClientTimeout,
		legacyCiphers: opts.LegacyCiphers,
		Server: &http.Server{
			Protocols:         protocols,
			Handler:           handler,
			ReadHeaderTimeout: opts.ReadHeaderTimeout,
			IdleTimeout:       opts.IdleTimeout,
			MaxHeaderBytes:    opts.MaxHeaderBytes, // for HTTP/2; Limits for HTTP/1
			ErrorLog:          slog.NewLogLogger(errLog.Handler(), slog.LevelWarn),
		},
		Limits: Limits{MaxHeaderBytes: opts.MaxHeaderBytes, MaxRequestLine: opts.MaxRequestLine, MaxHeaders: opts.MaxHeaders},
	}
}
