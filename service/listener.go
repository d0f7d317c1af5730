package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/torsion-server/torsion/endpoint"
)

// Server serves the connections accepted from a listener until it is shut
// down. *http.Server satisfies it, as does protocol.Server.
//
// If the Server also has a Close method (as *http.Server does), Listener
// calls it when a graceful Shutdown runs out of time.
type Server interface {
	Serve(l net.Listener) error
	Shutdown(ctx context.Context) error
}

// Listener binds an endpoint and serves it: Twisted's strports.service.
// Start binds the endpoint, so a port in use is a start-up error. Stop closes
// the listener at once and lets in-flight work finish until ctx ends, then
// closes what is left.
type Listener struct {
	Endpoint endpoint.Server
	Server   Server
	// Name is the server's name in log lines, such as "Site"; it defaults
	// to the endpoint description.
	Name string
	// Log receives the start and stop lines; nil means no log.
	Log *slog.Logger

	mu       sync.Mutex
	ln       net.Listener
	stopping bool
	served   chan struct{}
	failed   chan error
}

// String names the listener in messages.
func (l *Listener) String() string {
	if l.Name != "" {
		return fmt.Sprintf("%s on %s", l.Name, l.Endpoint)
	}
	return l.Endpoint.String()
}

func (l *Listener) log() *slog.Logger {
	if l.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Log
}

// Addr returns the bound address; it is nil before Start.
func (l *Listener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln == nil {
		return nil
	}
	return l.ln.Addr()
}

// Bind binds the endpoint, if Bind or Start has not yet: from then on
// connections wait in the listen backlog until Start serves them (a Multi
// binds its listeners before it starts anything).
func (l *Listener) Bind(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return nil
	}
	ln, err := l.Endpoint.Listen(ctx)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", l.Endpoint, err)
	}
	l.ln = ln
	return nil
}

// Unbind closes the listener if it was bound and never started.
func (l *Listener) Unbind() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil && l.served == nil {
		l.ln.Close()
		l.ln = nil
	}
}

// Start binds the endpoint, unless Bind has, and starts serving in the
// background.
func (l *Listener) Start(ctx context.Context) error {
	if err := l.Bind(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	ln := l.ln
	l.stopping = false
	l.served, l.failed = make(chan struct{}), make(chan error, 1)
	l.mu.Unlock()
	name := l.Name
	if name == "" {
		name = "Server"
	}
	l.log().Info(fmt.Sprintf("%s starting on %s", name, portString(ln.Addr())), "addr", ln.Addr().String(), "endpoint", l.Endpoint.String())
	go func() {
		defer close(l.served)
		err := l.Server.Serve(ln)
		l.mu.Lock()
		stopping := l.stopping
		l.mu.Unlock()
		if !stopping {
			if err == nil {
				err = errors.New("server stopped serving")
			}
			l.failed <- err
		}
	}()
	return nil
}

// Failed reports an accept loop that ended without Stop.
func (l *Listener) Failed() <-chan error { return l.failed }

// Stop stops accepting, waits for in-flight work until ctx ends, and then
// closes the remaining connections.
func (l *Listener) Stop(ctx context.Context) error {
	l.mu.Lock()
	l.stopping = true
	addr := l.ln.Addr()
	l.mu.Unlock()
	err := l.Server.Shutdown(ctx)
	l.ln.Close() // in case Shutdown did not close it (Serve may have failed)
	if err != nil {
		if c, ok := l.Server.(io.Closer); ok {
			c.Close()
		}
		err = fmt.Errorf("graceful stop cut short, remaining connections closed: %w", err)
	}
	<-l.served
	l.mu.Lock()
	l.ln, l.served = nil, nil // a later Start binds anew
	l.mu.Unlock()
	l.log().Info(fmt.Sprintf("(%s Closed)", kindString(addr)))
	return err
}

// portString names a bound address as twistd does: the port number for TCP,
// the path for a Unix socket.
func portString(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return fmt.Sprint(t.Port)
	}
	return a.String()
}

// kindString is portString with the kind, as in "TCP Port 8080".
func kindString(a net.Addr) string {
	if _, ok := a.(*net.TCPAddr); ok {
		return "TCP Port " + portString(a)
	}
	return "Unix Port " + portString(a)
}
