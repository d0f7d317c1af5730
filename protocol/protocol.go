// Package protocol runs stream protocols written as Twisted describes them:
// a Protocol is told when its connection is made, when data arrives and when
// the connection is lost, and it answers through a Transport.
//
// Each connection has its own goroutine, which reads and calls the Protocol's
// methods one at a time, so a Protocol needs no locking for its own state.
// Transport methods may be called from any goroutine.
package protocol

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/torsion-server/torsion/endpoint"
)

// Transport is a protocol's connection: Twisted's ITransport.
type Transport interface {
	// Write sends p. It returns when the data has been handed to the
	// kernel, or with an error if the connection is gone.
	Write(p []byte) (int, error)
	// WriteSequence sends the buffers in order with one system call where
	// the system allows (writev).
	WriteSequence(bufs [][]byte) error
	// LoseConnection closes the connection once any write in progress has
	// finished. The protocol's ConnectionLost is then called with nil.
	LoseConnection()
	// LocalAddr is the address of this end (Twisted's getHost).
	LocalAddr() net.Addr
	// RemoteAddr is the address of the peer (Twisted's getPeer).
	RemoteAddr() net.Addr
}

// Protocol handles the events of one connection.
type Protocol interface {
	// ConnectionMade is called first, once the transport is ready.
	ConnectionMade(t Transport)
	// DataReceived is called with each chunk that arrives. Chunk boundaries
	// mean nothing; data is only valid during the call.
	DataReceived(data []byte)
	// ConnectionLost is called last: with nil if the connection was closed
	// cleanly (by either side), or with the error that broke it.
	ConnectionLost(err error)
}

// Factory makes the Protocol for each new connection, given the peer's
// address: Twisted's Factory.buildProtocol. Returning nil refuses the
// connection.
type Factory func(remote net.Addr) Protocol

// readSize is the largest chunk passed to DataReceived.
const readSize = 64 << 10

// conn is the Transport of one connection.
type conn struct {
	c    net.Conn
	wmu  sync.Mutex // serialises writes and LoseConnection
	mu   sync.Mutex
	lost bool // LoseConnection was called
	done chan struct{}
}

func newConn(c net.Conn) *conn { return &conn{c: c, done: make(chan struct{})} }

func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.c.Write(p)
}

func (c *conn) WriteSequence(bufs [][]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := net.Buffers(bufs)
	_, err := b.WriteTo(c.c)
	return err
}

func (c *conn) LoseConnection() {
	c.mu.Lock()
	c.lost = true
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.c.Close()
}

// Disconnecting reports whether LoseConnection has been called, as
// Twisted's transport.disconnecting: a protocol stops handling what it
// already received.
func (c *conn) Disconnecting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

func (c *conn) LocalAddr() net.Addr  { return c.c.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr { return c.c.RemoteAddr() }

// loop delivers the connection's data to p until the connection ends.
// ConnectionMade has already been called.
func (c *conn) loop(p Protocol) {
	defer close(c.done)
	defer c.c.Close()
	buf := make([]byte, readSize)
	for {
		n, err := c.c.Read(buf)
		if n > 0 {
			p.DataReceived(buf[:n])
		}
		if err != nil {
			c.mu.Lock()
			lost := c.lost
			c.mu.Unlock()
			if errors.Is(err, io.EOF) || lost {
				err = nil
			}
			p.ConnectionLost(err)
			return
		}
	}
}

// Conn is a client connection made by Connect.
type Conn struct {
	Transport
	done <-chan struct{}
}

// Done is closed after the protocol's ConnectionLost has returned.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Connect dials the endpoint and runs p on the connection, as Twisted's
// connectProtocol does. It calls ConnectionMade before returning; the other
// events arrive on a goroutine of the connection's own. Use Done to wait for
// the connection to end.
func Connect(ctx context.Context, ep endpoint.Client, p Protocol) (*Conn, error) {
	nc, err := ep.Dial(ctx)
	if err != nil {
		return nil, err
	}
	c := newConn(nc)
	p.ConnectionMade(c)
	go c.loop(p)
	return &Conn{Transport: c, done: c.done}, nil
}
