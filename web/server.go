// Package web is torsion's HTTP layer: static files, the demo page, error
// pages, the access log and the http.Server defaults that keep slow and
// hostile clients from hurting anyone else.
package web

import (
	"log/slog"
	"net"
	"net/http"
	"time"
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
}

// Server is an http.Server whose connections go through StrictListener.
type Server struct {
	*http.Server
	Limits Limits
}

// Serve serves the connections accepted from l, checked by StrictListener.
func (s *Server) Serve(l net.Listener) error {
	return s.Server.Serve(StrictListener(l, s.Limits))
}

// NewServer returns a Server for h with torsion's defaults: strict request
// framing, timeouts against slow clients, each request logged to log in
// the combined format and the server's own errors logged as WARN.
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
	return &Server{
		Server: &http.Server{
			Handler:           AccessLog(StrictHandler(h), log),
			ReadHeaderTimeout: opts.ReadHeaderTimeout,
			IdleTimeout:       opts.IdleTimeout,
			// StrictListener enforces the limit first, with a clearer answer.
			MaxHeaderBytes: opts.MaxHeaderBytes + 4096,
			ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		Limits: Limits{MaxHeaderBytes: opts.MaxHeaderBytes, MaxRequestLine: opts.MaxRequestLine, MaxHeaders: opts.MaxHeaders},
	}
}
