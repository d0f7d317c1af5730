// Package web is torsion's HTTP layer: static files, the demo page, error
// pages, the access log and the http.Server defaults that keep slow and
// hostile clients from hurting anyone else.
package web

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
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
}

// Server is an http.Server whose connections go through StrictListener.
type Server struct {
	*http.Server
	Limits Limits
	log    *slog.Logger
}

// Serve serves the connections accepted from l, checked by StrictListener.
// When l is an *endpoint.TLSListener (ssl:, txsni:), HTTP/2 and HTTP/1.1
// are offered by ALPN, and handlers see the TLS state in r.TLS over both.
func (s *Server) Serve(l net.Listener) error {
	if tl, ok := l.(*endpoint.TLSListener); ok {
		cfg := tl.Config.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		l = &endpoint.TLSListener{Listener: tl.Listener, Config: cfg, HandshakeTimeout: s.ReadHeaderTimeout,
			HandshakeError: func(c net.Conn, err error) {
				s.log.Debug(fmt.Sprintf("TLS handshake with %s: %v", c.RemoteAddr(), err))
			}}
	}
	return s.Server.Serve(StrictListener(l, s.Limits))
}

type tlsStateKey struct{}

// connContext remembers the TLS state of an HTTP/1 connection, which
// net/http cannot see under the strict checker; StrictHandler puts it in
// r.TLS.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if sc, ok := c.(*strictConn); ok {
		if tc, ok := sc.Conn.(*tls.Conn); ok {
			st := tc.ConnectionState()
			return context.WithValue(ctx, tlsStateKey{}, &st)
		}
	}
	return ctx
}

// NewServer returns a Server for h with torsion's defaults: strict request
// framing, timeouts against slow clients, each request logged to log in
// the combined format and the server's own errors logged as WARN (failed
// TLS handshakes as DEBUG).
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
	handler := AccessLog(StrictHandler(h), log)
	if opts.TrustedProxies != nil {
		handler = ProxyHeaders(handler, opts.TrustedProxies)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(opts.H2C)
	return &Server{
		log: log,
		Server: &http.Server{
			Protocols:         protocols,
			ConnContext:       connContext,
			Handler:           handler,
			ReadHeaderTimeout: opts.ReadHeaderTimeout,
			IdleTimeout:       opts.IdleTimeout,
			// StrictListener enforces the limit first, with a clearer answer.
			MaxHeaderBytes: opts.MaxHeaderBytes + 4096,
			ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		Limits: Limits{MaxHeaderBytes: opts.MaxHeaderBytes, MaxRequestLine: opts.MaxRequestLine, MaxHeaders: opts.MaxHeaders},
	}
}
