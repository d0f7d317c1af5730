package endpoint

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func init() {
	RegisterPacket("udp", func(a Args) (PacketServer, error) { return parseUDP(a, false) })
	RegisterPacket("udp6", func(a Args) (PacketServer, error) { return parseUDP(a, true) })
	RegisterPacket("systemd", func(a Args) (PacketServer, error) {
		s, err := parseSystemd(a)
		if err != nil {
			return nil, err
		}
		return s.(Systemd), nil
	})
}

// UDP receives datagrams on a UDP port:
// "udp:PORT[:interface=ADDR][:reuseport=true]"; "udp6:" is the same with
// IPv6 only.
type UDP struct {
	Port int
	// Interface is the address to bind; empty means every address
	// (IPv4 and IPv6 for "udp", IPv6 only for "udp6").
	Interface string
	// ReusePort sets SO_REUSEPORT so several processes can share the port.
	ReusePort bool
	// IPv6 restricts the socket to IPv6 ("udp6").
	IPv6 bool
}

func parseUDP(a Args, v6 bool) (PacketServer, error) {
	t, _, err := parseInet(a, v6, "port", "interface", "reuseport")
	if err != nil {
		return nil, err
	}
	return UDP{Port: t.Port, Interface: t.Interface, ReusePort: t.ReusePort, IPv6: v6}, nil
}

// String returns the description in canonical form.
func (u UDP) String() string {
	var b strings.Builder
	b.WriteString("udp")
	if u.IPv6 {
		b.WriteString("6")
	}
	fmt.Fprintf(&b, ":%d", u.Port)
	if u.Interface != "" {
		b.WriteString(":interface=" + Escape(u.Interface))
	}
	if u.ReusePort {
		b.WriteString(":reuseport=true")
	}
	return b.String()
}

// ListenPacket binds the port, or takes the socket a predecessor handed
// over for it.
func (u UDP) ListenPacket(ctx context.Context) (net.PacketConn, error) {
	return listenPacketTracked(u.String(), func() (net.PacketConn, error) {
		network := "udp"
		if u.IPv6 {
			network = "udp6"
		}
		lc := net.ListenConfig{}
		if u.ReusePort {
			lc.Control = func(_, _ string, c syscall.RawConn) error {
				return setsockopt(c, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		}
		return lc.ListenPacket(ctx, network, net.JoinHostPort(u.Interface, strconv.Itoa(u.Port)))
	})
}
