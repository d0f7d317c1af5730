package endpoint

import (
	"errors"
	"net"
	"sync"
	"time"
)

// preparedListener runs a preparation step (a TLS handshake, a PROXY
// header) on each accepted connection in a goroutine of its own, under a
// deadline, and hands out the connections that pass it. A client that is
// slow to complete the step therefore never holds up Accept.
type preparedListener struct {
	net.Listener
	prepare func(net.Conn) (net.Conn, error)
	timeout time.Duration
	onError func(net.Conn, error) // may be nil

	once      sync.Once
	conns     chan net.Conn
	errs      chan error
	done      chan struct{}
	closeOnce sync.Once
}

func newPrepared(ln net.Listener, timeout time.Duration, prepare func(net.Conn) (net.Conn, error), onError func(net.Conn, error)) *preparedListener {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &preparedListener{Listener: ln, prepare: prepare, timeout: timeout, onError: onError,
		conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
}

// SetDeadline sets the underlying listener's accept deadline: Accept
// returns its timeout once it passes (a connection accepted before is
// still prepared and handed out).
func (l *preparedListener) SetDeadline(t time.Time) error { return setDeadline(l.Listener, t) }

// setDeadline sets ln's accept deadline, if it has one, as the
// *net.TCPListener and *net.UnixListener do (a stopping server drains
// its accept queue with it).
func setDeadline(ln net.Listener, t time.Time) error {
	if d, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
		return d.SetDeadline(t)
	}
	return errors.ErrUnsupported
}

func (l *preparedListener) Accept() (net.Conn, error) {
	l.once.Do(func() { go l.loop() })
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// loop accepts until the listener is closed. Errors go to Accept's caller,
// which decides whether to go on (net/http backs off on EMFILE, say).
func (l *preparedListener) loop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
				continue
			case <-l.done:
				return
			}
		}
		go l.prep(c)
	}
}

func (l *preparedListener) prep(c net.Conn) {
	c.SetDeadline(time.Now().Add(l.timeout))
	pc, err := l.prepare(c)
	if err != nil {
		c.Close()
		if l.onError != nil {
			l.onError(c, err)
		}
		return
	}
	c.SetDeadline(time.Time{})
	select {
	case l.conns <- pc:
	case <-l.done:
		pc.Close()
	}
}

func (l *preparedListener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}
