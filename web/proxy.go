package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// ProxyOptions configures NewProxy.
type ProxyOptions struct {
	// Timeout bounds the wait for the backend's response headers
	// (default 60s); past it the client gets 504.
	Timeout time.Duration
	// Log receives one line per failed backend request (default: discarded).
	Log *slog.Logger
}

// NewProxy returns a reverse proxy to target, an http or https URL: Twisted's
// ReverseProxyResource. The request's URL path (what a resource tree left
// of it) is appended to target's path; X-Forwarded-For, -Host and -Proto
// tell the backend about the client. A backend that cannot be reached or
// breaks off gives the client 502, one that does not answer in time 504.
func NewProxy(target string, opts ProxyOptions) (http.Handler, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("proxy target: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("proxy target %q: want an http:// or https:// URL with a host", target)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = opts.Timeout
	tr.MaxIdleConnsPerHost = 64
	// The client's Accept-Encoding goes to the backend unchanged, as
	// nginx passes it, and the answer comes back as the backend encoded
	// it: Go's transport would otherwise ask for gzip on its own and
	// inflate what came (a 101,941-byte answer left as 100 MiB).
	tr.DisableCompression = true
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// torsion's own header survives a client's Connection
			// listing it, which would make it hop-by-hop.
			if id, ok := pr.In.Header[RequestIDHeader]; ok {
				pr.Out.Header[RequestIDHeader] = id
			}
			// Append to the chain the client sent, as nginx's
			// $proxy_add_x_forwarded_for does; the backend decides whom to
			// trust. The hop added is the connection's peer, which is the
			// proxy that sent the request when ProxyHeaders replaced
			// RemoteAddr with the client.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			if peer, ok := pr.In.Context().Value(peerKey{}).(string); ok {
				in := *pr.In
				in.RemoteAddr = peer
				(&httputil.ProxyRequest{In: &in, Out: pr.Out}).SetXForwarded()
			} else {
				pr.SetXForwarded()
			}
			pr.Out.Header.Set("X-Forwarded-Proto", Scheme(pr.In))
		},
		Transport: tr,
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			status := http.StatusBadGateway
			var ne net.Error
			if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
				status = http.StatusGatewayTimeout
			}
			log.Warn("proxy request failed", "method", r.Method, "uri", r.URL.RequestURI(), "backend", target, "err", err)
			Error(w, r, status, "The backend server did not answer properly.")
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if up := r.Header.Get("Upgrade"); up != "" && !HeaderHasToken(r.Header, "Upgrade", "websocket") {
			// Only WebSockets are tunnelled: any other upgrade (h2c,
			// say) would become a raw tunnel to the backend after its
			// 101. The request goes on as a plain one.
			r2 := *r
			r2.Header = r.Header.Clone()
			r2.Header.Del("Upgrade")
			r = &r2
		}
		rp.ServeHTTP(w, r)
	}), nil
}

// HeaderHasToken reports whether the comma-separated values of header
// name hold token, compared without regard to case ("Connection:
// keep-alive, Upgrade" holds "upgrade").
func HeaderHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		if HasToken(v, token) {
			return true
		}
	}
	return false
}

// HasToken reports whether the comma-separated value v holds token,
// compared without regard to case.
func HasToken(v, token string) bool {
	for t := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

type schemeKey struct{}

// Scheme returns the scheme the client used: "https" or "http". It is the
// connection's, unless ProxyHeaders took it from a trusted proxy.
func Scheme(r *http.Request) string {
	if s, ok := r.Context().Value(schemeKey{}).(string); ok {
		return s
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
