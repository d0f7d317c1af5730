// Package web is torsion's HTTP layer: static files, the demo page, error
// pages, the access log and the http.Server defaults that keep slow and
// hostile clients from hurting anyone else.
package web

import (
	"log/slog"
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
}

// NewServer returns an http.Server for h with torsion's defaults, logging
// each request to log in the combined format and its own errors to log
// with level WARN.
func NewServer(h http.Handler, log *slog.Logger, opts ServerOptions) *http.Server {
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = 30 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = 64 << 10
	}
	return &http.Server{
		Handler:           AccessLog(h, log),
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
