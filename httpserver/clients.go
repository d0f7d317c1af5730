package httpserver

import (
	"context"
	"net"
	"net/netip"
	"sync"

	"github.com/torsion-server/torsion/internal/clientaddr"
)

// clients counts what each client address holds of the server: its open
// connections, and its HTTP/2 streams in flight, so that one address
// cannot take every descriptor or handler goroutine (Options.MaxClientConns,
// Options.MaxClientStreams). An IPv6 address is counted by its /64, the
// block one subscriber usually gets.
type clients struct {
	maxConns, maxStreams int
	exempt               []netip.Prefix

	mu sync.Mutex
	m  map[netip.Addr]*client
}

// client is one address's count; nil stands for an exempt or unknown one.
type client struct {
	t              *clients
	key            netip.Addr
	conns, streams int
}

// clientKey is the key of the client at addr, a RemoteAddr; ok is false
// for one that is not an IP address (a Unix socket) or that is exempt.
func (t *clients) clientKey(addr net.Addr) (netip.Addr, bool) {
	ip, ok := clientaddr.IP(addr)
	if !ok {
		return ip, false
	}
	for _, p := range t.exempt {
		if p.Contains(ip) {
			return netip.Addr{}, false
		}
	}
	return clientaddr.Of(ip), true
}

// open counts a new connection from addr; it returns nil, false when the
// address holds its share already, and a nil client with true when the
// address is not counted.
func (t *clients) open(addr net.Addr) (*client, bool) {
	key, ok := t.clientKey(addr)
	if !ok {
		return nil, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.m[key]
	if c == nil {
		c = &client{t: t, key: key}
		t.m[key] = c
	}
	if c.conns >= t.maxConns {
		return nil, false
	}
	c.conns++
	return c, true
}

// close ends a connection counted by open.
func (c *client) close() {
	if c == nil {
		return
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	c.conns--
	c.t.forget(c)
}

// startStream counts an HTTP/2 stream in flight; false: the address has
// its share already.
func (c *client) startStream() bool {
	if c == nil {
		return true
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if c.streams >= c.t.maxStreams {
		return false
	}
	c.streams++
	return true
}

// endStream ends a stream counted by startStream.
func (c *client) endStream() {
	if c == nil {
		return
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	c.streams--
	c.t.forget(c)
}

// forget drops an address that holds nothing, so the table grows with
// the clients connected, not with every client seen.
func (t *clients) forget(c *client) {
	if c.conns == 0 && c.streams == 0 {
		delete(t.m, c.key)
	}
}

// clientCtxKey keys an HTTP/2 connection's *client in its context.
type clientCtxKey struct{}

func clientOf(ctx context.Context) *client {
	c, _ := ctx.Value(clientCtxKey{}).(*client)
	return c
}
