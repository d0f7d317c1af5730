package endpoint

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Server is a parsed server description: something that can listen.
// String returns a description that parses back to an equivalent Server.
type Server interface {
	Listen(ctx context.Context) (net.Listener, error)
	String() string
}

// Client is a parsed client description: something that can dial.
// String returns a description that parses back to an equivalent Client.
type Client interface {
	Dial(ctx context.Context) (net.Conn, error)
	String() string
}

// PacketServer is a parsed description of a datagram endpoint (UDP, or a
// datagram socket systemd passed): something that can receive packets.
// String returns a description that parses back to an equivalent one.
type PacketServer interface {
	ListenPacket(ctx context.Context) (net.PacketConn, error)
	String() string
}

// ServerParser builds a Server from a split description.
type ServerParser func(Args) (Server, error)

// PacketParser builds a PacketServer from a split description.
type PacketParser func(Args) (PacketServer, error)

// ClientParser builds a Client from a split description.
type ClientParser func(Args) (Client, error)

var (
	mu      sync.RWMutex
	servers = map[string]ServerParser{}
	clients = map[string]ClientParser{}
	packets = map[string]PacketParser{}
)

// Register makes a server kind available to Parse. It is meant to be called
// from init functions and panics if the kind is empty or already registered.
func Register(kind string, p ServerParser) {
	register(servers, kind, p)
}

// RegisterClient makes a client kind available to ParseClient. It panics if
// the kind is empty or already registered.
func RegisterClient(kind string, p ClientParser) {
	register(clients, kind, p)
}

// RegisterPacket makes a datagram kind available to ParsePacket. It
// panics if the kind is empty or already registered.
func RegisterPacket(kind string, p PacketParser) {
	register(packets, kind, p)
}

func register[P any](m map[string]P, kind string, p P) {
	mu.Lock()
	defer mu.Unlock()
	if kind == "" {
		panic("endpoint: Register with empty kind")
	}
	if _, dup := m[kind]; dup {
		panic("endpoint: kind " + strconv.Quote(kind) + " registered twice")
	}
	m[kind] = p
}

// Kinds returns the registered server kinds, sorted.
func Kinds() []string { return sortedKeys(servers) }

// PacketKinds returns the registered datagram kinds, sorted.
func PacketKinds() []string { return sortedKeys(packets) }

// Error reports a description that could not be parsed.
type Error struct {
	Desc string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("endpoint %q: %v", e.Desc, e.Err) }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Parse parses a server description. A bare port number means "tcp:PORT".
// Errors are *Error values naming the description and the bad part.
func Parse(desc string) (Server, error) {
	s, err := parse(servers, desc)
	if err != nil {
		return nil, &Error{Desc: desc, Err: err}
	}
	return s, nil
}

// ParsePacket parses a datagram description such as "udp:53" or
// "systemd:domain=INET:index=1". A bare port number means "udp:PORT".
func ParsePacket(desc string) (PacketServer, error) {
	if digitsOnly(desc) {
		desc = "udp:" + desc
	}
	s, err := parse(packets, desc)
	if err != nil {
		return nil, &Error{Desc: desc, Err: err}
	}
	return s, nil
}

// ParseClient parses a client description such as "tcp:host=example.org:port=80".
func ParseClient(desc string) (Client, error) {
	c, err := parse(clients, desc)
	if err != nil {
		return nil, &Error{Desc: desc, Err: err}
	}
	return c, nil
}

func parse[T any, P ~func(Args) (T, error)](m map[string]P, desc string) (T, error) {
	var zero T
	if desc == "" {
		return zero, fmt.Errorf("empty description")
	}
	if digitsOnly(desc) {
		desc = "tcp:" + desc // a bare port; out of range, it says so as tcp: does
	}
	a, err := Split(desc)
	if err != nil {
		return zero, err
	}
	mu.RLock()
	p, ok := m[a.Kind]
	mu.RUnlock()
	if !ok {
		if bind, err := FromBind(desc); err == nil && strings.HasPrefix(bind, "tcp") {
			return zero, fmt.Errorf("host:port is not an endpoint description: for %s, write %s", desc, bind)
		}
		return zero, fmt.Errorf("unknown endpoint kind %q (known: %v)", a.Kind, sortedKeys(m))
	}
	return p(a)
}

// FromBind turns gunicorn's --bind forms into a description: HOST:PORT
// (":PORT" or "0.0.0.0:PORT" for every address, "[::1]:PORT" for IPv6,
// "localhost:PORT" for 127.0.0.1) becomes tcp:PORT:interface=HOST, and
// unix:PATH stays a Unix socket.
func FromBind(bind string) (string, error) {
	if path, ok := strings.CutPrefix(bind, "unix:"); ok && path != "" {
		return "unix:" + Escape(path), nil
	}
	host, port, err := net.SplitHostPort(bind)
	if err != nil || !digitsOnly(port) {
		return "", fmt.Errorf("bind %q: want HOST:PORT or unix:PATH", bind)
	}
	switch host {
	case "", "0.0.0.0", "*":
		return "tcp:" + port, nil
	case "localhost":
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", fmt.Errorf("bind %q: the host must be an IP address (or localhost)", bind)
	}
	if ip.To4() == nil {
		return "tcp6:" + port + ":interface=" + Escape(host), nil
	}
	return "tcp:" + port + ":interface=" + host, nil
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func sortedKeys[V any](m map[string]V) []string {
	mu.RLock()
	defer mu.RUnlock()
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Local reports whether s accepts connections from this machine only: a
// Unix socket, or TCP on a loopback interface (and TLS or PROXY-protocol
// wrappers of them). Inherited sockets and kinds it does not know count as
// reachable from elsewhere.
func Local(s Server) bool {
	switch s := s.(type) {
	case Unix:
		return true
	case TCP:
		ip := net.ParseIP(s.Interface)
		return ip != nil && ip.IsLoopback()
	case SSL:
		return Local(s.TCP)
	case SNI:
		return Local(s.Inner)
	case HAProxy:
		return Local(s.Inner)
	}
	return false
}
