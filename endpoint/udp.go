package endpoint

import (
	"context"
	"net"
	"strconv"
	"strings"
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

// String returns the description in canonical form: tcp's, with udp
// for tcp.
func (u UDP) String() string {
	return "udp" + strings.TrimPrefix(TCP{Port: u.Port, Interface: u.Interface, ReusePort: u.ReusePort, IPv6: u.IPv6}.String(), "tcp")
}

// ListenPacket binds the port, or takes the socket a predecessor handed
// over for it.
func (u UDP) ListenPacket(ctx context.Context) (net.PacketConn, error) {
	return listenPacketTracked(u.String(), func() (net.PacketConn, error) {
		network := "udp"
		if u.IPv6 {
			network = "udp6"
		}
		lc := listenConfig(u.ReusePort)
		return lc.ListenPacket(ctx, network, net.JoinHostPort(u.Interface, strconv.Itoa(u.Port)))
	})
}
