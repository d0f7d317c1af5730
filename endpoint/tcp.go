package endpoint

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	Register("tcp", func(a Args) (Server, error) { return parseTCP(a, false) })
	Register("tcp6", func(a Args) (Server, error) { return parseTCP(a, true) })
	RegisterClient("tcp", func(a Args) (Client, error) { return parseTCPClient(a, false) })
	RegisterClient("tcp6", func(a Args) (Client, error) { return parseTCPClient(a, true) })
}

// TCP listens on a TCP port: "tcp:PORT[:interface=ADDR][:backlog=N][:reuseport=true]".
// "tcp6:" is the same with IPv6 only.
type TCP struct {
	Port int
	// Interface is the address to bind; empty means every address
	// (IPv4 and IPv6 for "tcp", IPv6 only for "tcp6").
	Interface string
	// Backlog is the listen queue length; 0 keeps the system default.
	Backlog int
	// ReusePort sets SO_REUSEPORT so several processes can share the port.
	ReusePort bool
	// IPv6 restricts the listener to IPv6 ("tcp6").
	IPv6 bool
}

func parseTCP(a Args, v6 bool) (Server, error) {
	t, p, err := parseInet(a, v6, "port", "interface", "backlog", "reuseport")
	if err != nil {
		return nil, err
	}
	if b, ok := p.get("backlog"); ok {
		if t.Backlog, err = strconv.Atoi(b); err != nil || t.Backlog < 1 {
			return nil, fmt.Errorf("backlog %q is not a positive number", b)
		}
	}
	return t, nil
}

// parseInet reads what the tcp and udp kinds share (a port, an interface
// and reuseport) from arguments bound to names, in positional order.
func parseInet(a Args, v6 bool, names ...string) (TCP, params, error) {
	p, err := bind(a, names...)
	if err != nil {
		return TCP{}, p, err
	}
	t := TCP{IPv6: v6}
	ps, ok := p.get("port")
	if !ok {
		return t, p, fmt.Errorf("missing port")
	}
	if t.Port, err = parsePort(ps); err != nil {
		return t, p, err
	}
	t.Interface, _ = p.get("interface")
	t.Interface = strings.TrimSuffix(strings.TrimPrefix(t.Interface, "["), "]")
	if t.Interface != "" && net.ParseIP(t.Interface) == nil {
		return t, p, fmt.Errorf("interface %q is not an IP address", t.Interface)
	}
	if v6 && t.Interface != "" && net.ParseIP(t.Interface).To4() != nil {
		return t, p, fmt.Errorf("interface %q is not an IPv6 address", t.Interface)
	}
	if r, ok := p.get("reuseport"); ok {
		if t.ReusePort, err = parseBool(r); err != nil {
			return t, p, fmt.Errorf("reuseport: %w", err)
		}
	}
	return t, p, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535", s)
	}
	return int(n), nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use true or false)", s)
}

// String returns the description in canonical form.
func (t TCP) String() string {
	var b strings.Builder
	b.WriteString("tcp")
	if t.IPv6 {
		b.WriteString("6")
	}
	fmt.Fprintf(&b, ":%d", t.Port)
	if t.Interface != "" {
		b.WriteString(":interface=" + Escape(t.Interface))
	}
	if t.Backlog > 0 {
		fmt.Fprintf(&b, ":backlog=%d", t.Backlog)
	}
	if t.ReusePort {
		b.WriteString(":reuseport=true")
	}
	return b.String()
}

// Listen binds the port.
func (t TCP) Listen(ctx context.Context) (net.Listener, error) {
	return listenTracked(t.String(), func() (net.Listener, error) { return t.bind(ctx) })
}

func (t TCP) bind(ctx context.Context) (net.Listener, error) {
	network := "tcp"
	if t.IPv6 {
		network = "tcp6"
	}
	lc := listenConfig(t.ReusePort)
	ln, err := lc.Listen(ctx, network, net.JoinHostPort(t.Interface, strconv.Itoa(t.Port)))
	if err != nil {
		return nil, err
	}
	if t.Backlog > 0 {
		if err := relisten(ln.(*net.TCPListener), t.Backlog); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return ln, nil
}

// listenConfig sets SO_REUSEPORT on the socket when reuse is set.
func listenConfig(reuse bool) net.ListenConfig {
	var lc net.ListenConfig
	if reuse {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			return setsockopt(c, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	}
	return lc
}

func setsockopt(c syscall.RawConn, level, opt, val int) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, val) }); err != nil {
		return err
	}
	return serr
}

// relisten sets the backlog of a listening socket: Linux lets listen(2) be
// called again on a listening socket to change it.
func relisten(ln syscall.Conn, backlog int) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), backlog) }); err != nil {
		return err
	}
	if lerr != nil {
		return fmt.Errorf("setting backlog %d: %w", backlog, lerr)
	}
	return nil
}

// TCPClient dials a TCP address: "tcp:host=H:port=P[:timeout=SECONDS][:bindAddress=ADDR]"
// or positionally "tcp:H:P".
type TCPClient struct {
	Host string
	Port int
	// Timeout bounds the connection attempt; 0 means Twisted's default of 30s.
	Timeout time.Duration
	// BindAddress is the local address to connect from, if set.
	BindAddress string
	IPv6        bool
}

func parseTCPClient(a Args, v6 bool) (Client, error) {
	p, err := bind(a, "host", "port", "timeout", "bindAddress")
	if err != nil {
		return nil, err
	}
	c := TCPClient{IPv6: v6}
	var ok bool
	if c.Host, ok = p.get("host"); !ok || c.Host == "" {
		return nil, fmt.Errorf("missing host")
	}
	ps, ok := p.get("port")
	if !ok {
		return nil, fmt.Errorf("missing port")
	}
	if c.Port, err = parsePort(ps); err != nil {
		return nil, err
	}
	if c.Timeout, err = parseTimeout(p); err != nil {
		return nil, err
	}
	c.BindAddress, _ = p.get("bindAddress")
	if c.BindAddress != "" && net.ParseIP(c.BindAddress) == nil {
		return nil, fmt.Errorf("bindAddress %q is not an IP address", c.BindAddress)
	}
	return c, nil
}

func parseTimeout(p params) (time.Duration, error) {
	s, ok := p.get("timeout")
	if !ok {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("timeout %q is not a positive number of seconds", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// String returns the description in canonical form.
func (c TCPClient) String() string {
	kind := "tcp"
	if c.IPv6 {
		kind = "tcp6"
	}
	s := fmt.Sprintf("%s:host=%s:port=%d", kind, Escape(c.Host), c.Port)
	if c.Timeout > 0 {
		s += ":timeout=" + strconv.FormatFloat(c.Timeout.Seconds(), 'f', -1, 64)
	}
	if c.BindAddress != "" {
		s += ":bindAddress=" + Escape(c.BindAddress)
	}
	return s
}

// Dial connects to the address.
func (c TCPClient) Dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: c.Timeout}
	if d.Timeout == 0 {
		d.Timeout = 30 * time.Second
	}
	if c.BindAddress != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.BindAddress)}
	}
	network := "tcp"
	if c.IPv6 {
		network = "tcp6"
	}
	return d.DialContext(ctx, network, net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
}
