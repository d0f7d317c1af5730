// Package clientaddr says who a client is, for the limits and penalties
// kept per client: its IP address, an IPv6 address by its /64 (the block
// one subscriber usually gets, so one client cannot dodge a limit by
// changing the low bits).
package clientaddr

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ParsePrefixes parses a comma-separated list of IP addresses and CIDR
// prefixes, such as "127.0.0.1,10.0.0.0/8,::1"; "*" is every address.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			continue
		case item == "*":
			ps = append(ps, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
		case strings.Contains(item, "/"):
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address prefix such as 10.0.0.0/8", item)
			}
			ps = append(ps, p.Masked())
		default:
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP address", item)
			}
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return ps, nil
}

// Key returns the client at addr (a connection's RemoteAddr); ok is false
// for an address that is not an IP address, such as a Unix socket's peer.
func Key(addr net.Addr) (netip.Addr, bool) {
	ip, ok := IP(addr)
	return Of(ip), ok
}

// Of returns the client that ip is: ip, or its /64 for IPv6.
func Of(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip
}

// IP returns the IP address of addr, without a zone, IPv4-mapped IPv6
// addresses as IPv4; ok is false for one that is not an IP address.
func IP(addr net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	if a, ok := addr.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(a.IP)
	} else if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	return ip, ip.IsValid()
}
