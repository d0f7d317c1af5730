package protocol

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("protocol: server closed")

// Server accepts connections and runs a Protocol from Factory on each, or
// hands each to ServeConn. It satisfies service.Server, so
// service.Listener can bind it to an endpoint.
type Server struct {
	Factory Factory
	// ServeConn, if set, is used instead of Factory: it serves a
	// connection it reads itself (as amp.Conn does) and returns when the
	// connection has ended. Shutdown and Close close the connection.
	ServeConn func(net.Conn)

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup
}

// Serve accepts connections on l until Shutdown or Close, and always
// returns a non-nil error: ErrServerClosed after those.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners, s.conns = map[net.Listener]struct{}{}, map[*conn]struct{}{}
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			// Back off on errors such as EMFILE, as net/http does.
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.handle(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) handle(nc net.Conn) {
	var p Protocol
	if s.ServeConn == nil {
		if p = s.Factory(nc.RemoteAddr()); p == nil {
			nc.Close()
			return
		}
	}
	c := newConn(nc)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
		if s.ServeConn != nil {
			s.ServeConn(nc)
			nc.Close()
			return
		}
		p.ConnectionMade(c)
		c.loop(p)
	}()
}

// Shutdown stops accepting, loses every connection (as Twisted's reactor
// does on shutdown: pending writes finish, then the connection closes) and
// waits for the protocols' ConnectionLost to return or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.closeListeners()
	for _, c := range conns {
		go c.LoseConnection()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	for _, c := range s.closeListeners() {
		c.c.Close()
	}
	return nil
}

func (s *Server) closeListeners() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	var cs []*conn
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}
