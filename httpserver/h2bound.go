package httpserver

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// HTTP/2 streams are bounded as HTTP/1 connections are: a client that
// takes nothing of a response (a zero flow-control window, say), or sends
// nothing of a request body a handler is reading, for ClientTimeout is
// cut off, its stream reset, and the handler's Write or Read fails. Over
// HTTP/1 the connection's deadlines do this, since a write waits only on
// the socket; over HTTP/2 a stream's deadline is a timer that fires
// whether or not anything waits on the client, so a handler thinking
// between writes would be cut off too. Each stream instead gets a watch:
// it notes when a Write (or Flush) or a body Read began and, at most once
// per ClientTimeout, resets the stream whose Write or Read has waited that
// long. A handler that sets deadlines of its own with
// http.ResponseController is left to them.

// h2stream is the http.ResponseWriter, and the request body, that serveH2
// hands a handler.
type h2stream struct {
	http.ResponseWriter
	rc      *http.ResponseController
	body    io.ReadCloser
	timeout time.Duration

	sending, receiving atomic.Int64 // when the Write or Read under way began (UnixNano), or 0
	ownWrite, ownRead  atomic.Bool  // the handler set a deadline of its own

	mu    sync.Mutex
	timer *time.Timer // the watch, started by the first wait
	done  bool
}

func (s *h2stream) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// begin notes that a wait on the client begins, and starts the watch.
func (s *h2stream) begin(at *atomic.Int64) {
	at.Store(time.Now().UnixNano())
	s.mu.Lock()
	if s.timer == nil && !s.done {
		s.timer = time.AfterFunc(s.timeout, s.check)
	}
	s.mu.Unlock()
}

func (s *h2stream) Write(p []byte) (int, error) {
	s.begin(&s.sending)
	defer s.sending.Store(0)
	return s.ResponseWriter.Write(p)
}

// Flush sends what is buffered; over HTTP/2 that waits on the client's
// flow-control window, so it is bounded as Write is.
func (s *h2stream) Flush() {
	s.FlushError()
}

// FlushError is Flush that says whether it failed (for
// http.ResponseController).
func (s *h2stream) FlushError() error {
	s.begin(&s.sending)
	defer s.sending.Store(0)
	return s.rc.Flush()
}

// SetWriteDeadline sets a deadline of the handler's own in place of the
// client timeout; the zero time gives the client timeout back.
func (s *h2stream) SetWriteDeadline(t time.Time) error {
	s.ownWrite.Store(!t.IsZero())
	return s.rc.SetWriteDeadline(t)
}

// SetReadDeadline is SetWriteDeadline's twin for the request body.
func (s *h2stream) SetReadDeadline(t time.Time) error {
	s.ownRead.Store(!t.IsZero())
	return s.rc.SetReadDeadline(t)
}

// Read reads the request body (the stream is the request's Body).
func (s *h2stream) Read(p []byte) (int, error) {
	s.begin(&s.receiving)
	defer s.receiving.Store(0)
	return s.body.Read(p)
}

// Close closes the request body.
func (s *h2stream) Close() error { return s.body.Close() }

// check is the watch: it resets the stream when a wait has lasted the
// timeout, and otherwise looks again when the oldest wait under way would
// reach it. It holds mu throughout, so that it never touches the
// ResponseWriter once end has run (net/http frees it when the handler
// returns).
func (s *h2stream) check() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	now := time.Now().UnixNano()
	next := s.timeout
	for _, w := range []struct {
		at    *atomic.Int64
		own   *atomic.Bool
		reset func(time.Time) error
	}{{&s.sending, &s.ownWrite, s.rc.SetWriteDeadline}, {&s.receiving, &s.ownRead, s.rc.SetReadDeadline}} {
		began := w.at.Load()
		if began == 0 || w.own.Load() {
			continue
		}
		waited := time.Duration(now - began)
		if waited >= s.timeout {
			w.reset(time.Unix(0, 1)) // a deadline in the past: reset at once
			continue
		}
		next = min(next, s.timeout-waited)
	}
	s.timer.Reset(next)
}

// end stops the watch as the handler returns. What the handler wrote and
// net/http still holds is sent after it returns, and may wait on the
// client too: a deadline of ClientTimeout from now bounds that (the
// stream's timer, which net/http stops when the stream ends).
func (s *h2stream) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	if s.timer == nil {
		return // nothing written, nothing read
	}
	s.timer.Stop()
	if !s.ownWrite.Load() {
		s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	}
}
