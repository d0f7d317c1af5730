package endpoint

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/torsion-server/torsion/internal/connwrap"
)

func init() {
	Register("haproxy", parseHAProxy)
}

// HAProxy wraps another endpoint, as Twisted's "haproxy:tcp:8000": each
// connection starts with a PROXY protocol header (version 1 or 2) from a
// load balancer, and RemoteAddr and LocalAddr report the addresses it
// gives, the real client's. A connection without a valid header is
// closed. Wrapping "ssl:" or "txsni:" reads the header before the TLS
// handshake, as HAProxy sends it. Only load balancers should be able to
// reach such a port: the header is believed.
type HAProxy struct {
	Inner Server
}

func parseHAProxy(a Args) (Server, error) {
	if a.Rest == "" {
		return nil, fmt.Errorf("want haproxy:ENDPOINT, such as haproxy:tcp:8000")
	}
	in, err := Parse(a.Rest)
	if err != nil {
		return nil, err
	}
	return HAProxy{Inner: in}, nil
}

// String returns the description in canonical form.
func (h HAProxy) String() string { return "haproxy:" + h.Inner.String() }

// Listen listens on the inner endpoint.
func (h HAProxy) Listen(ctx context.Context) (net.Listener, error) {
	ln, err := h.Inner.Listen(ctx)
	if err != nil {
		return nil, err
	}
	if tl, ok := ln.(*TLSListener); ok {
		// The header comes first, the handshake after it.
		return &TLSListener{Listener: proxyListener(tl.Listener), Config: tl.Config,
			HandshakeTimeout: tl.HandshakeTimeout, HandshakeError: tl.HandshakeError}, nil
	}
	return proxyListener(ln), nil
}

func proxyListener(ln net.Listener) net.Listener {
	return newPrepared(ln, 0, readProxyHeader, nil)
}

// proxyConn is a connection whose addresses came from a PROXY header.
type proxyConn struct {
	net.Conn
	r             *bufio.Reader // holds any bytes read past the header
	remote, local net.Addr
}

func (c *proxyConn) Read(b []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(b)
		}
		c.r = nil
	}
	return c.Conn.Read(b)
}

func (c *proxyConn) RemoteAddr() net.Addr { return c.remote }
func (c *proxyConn) LocalAddr() net.Addr  { return c.local }

// ReadFrom lets sendfile(2) reach the socket.
func (c *proxyConn) ReadFrom(r io.Reader) (int64, error) { return connwrap.ReadFrom(c.Conn, r) }

// CloseWrite half-closes the connection, when the one underneath can.
func (c *proxyConn) CloseWrite() error { return connwrap.CloseWrite(c.Conn) }

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// readProxyHeader reads a PROXY header, version 1 or 2.
func readProxyHeader(c net.Conn) (net.Conn, error) {
	br := bufio.NewReaderSize(c, 256)
	pc := &proxyConn{Conn: c, r: br, remote: c.RemoteAddr(), local: c.LocalAddr()}
	start, err := br.Peek(12) // the shortest header, "PROXY UNKNOWN\r\n", is longer
	if err != nil {
		return nil, fmt.Errorf("reading PROXY header: %w", err)
	}
	switch {
	case bytes.Equal(start, proxyV2Sig):
		return pc, pc.readV2(br)
	case bytes.HasPrefix(start, []byte("PROXY ")):
		return pc, pc.readV1(br)
	}
	return nil, fmt.Errorf("connection does not start with a PROXY header")
}

// readV1 reads "PROXY TCP4 SRC DST SPORT DPORT\r\n" (at most 107 bytes) or
// "PROXY UNKNOWN ...\r\n".
func (c *proxyConn) readV1(br *bufio.Reader) error {
	var line []byte
	for len(line) < 107 {
		b, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("reading PROXY header: %w", err)
		}
		line = append(line, b)
		if bytes.HasSuffix(line, []byte("\r\n")) {
			break
		}
	}
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return fmt.Errorf("PROXY header longer than 107 bytes")
	}
	f := strings.Split(string(line[:len(line)-2]), " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return fmt.Errorf("malformed PROXY header %q", line)
	}
	src, err1 := netip.ParseAddr(f[2])
	dst, err2 := netip.ParseAddr(f[3])
	sp, err3 := strconv.ParseUint(f[4], 10, 16)
	dp, err4 := strconv.ParseUint(f[5], 10, 16)
	// A zone ("fe80::1%eth0\x1b[31m") is no address a proxy reports: it
	// would reach REMOTE_ADDR and the logs as the client sent it.
	if err := errors.Join(err1, err2, err3, err4); err != nil || src.Is4() != (f[1] == "TCP4") || dst.Is4() != src.Is4() || src.Zone() != "" || dst.Zone() != "" {
		return fmt.Errorf("malformed PROXY header %q", line)
	}
	c.remote = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, uint16(sp)))
	c.local = net.TCPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(dp)))
	return nil
}

// readV2 reads the binary header: signature, version and command, family
// and protocol, length, addresses, then TLVs, which are skipped.
func (c *proxyConn) readV2(br *bufio.Reader) error {
	var h [16]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return fmt.Errorf("reading PROXY v2 header: %w", err)
	}
	if h[12]>>4 != 2 {
		return fmt.Errorf("PROXY v2 header with version %d", h[12]>>4)
	}
	body := make([]byte, binary.BigEndian.Uint16(h[14:]))
	if _, err := io.ReadFull(br, body); err != nil {
		return fmt.Errorf("reading PROXY v2 header: %w", err)
	}
	switch h[12] & 0xf {
	case 0: // LOCAL: a health check from the proxy itself
		return nil
	case 1: // PROXY
	default:
		return fmt.Errorf("PROXY v2 header with command %d", h[12]&0xf)
	}
	var n int
	switch h[13] >> 4 {
	case 1:
		n = 4
	case 2:
		n = 16
	default:
		return nil // UNSPEC or UNIX: keep the socket's addresses
	}
	if h[13]&0xf != 1 && h[13]&0xf != 2 {
		return nil // not TCP or UDP
	}
	if len(body) < 2*n+4 {
		return fmt.Errorf("PROXY v2 address block too short")
	}
	src, _ := netip.AddrFromSlice(body[:n])
	dst, _ := netip.AddrFromSlice(body[n : 2*n])
	sp := binary.BigEndian.Uint16(body[2*n:])
	dp := binary.BigEndian.Uint16(body[2*n+2:])
	c.remote = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, sp))
	c.local = net.TCPAddrFromAddrPort(netip.AddrPortFrom(dst, dp))
	return nil
}
