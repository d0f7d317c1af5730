// Package clientaddr says who a client is, for the limits and penalties
// kept per client: its IP address, an IPv6 address by its /64 (the block
// one subscriber usually gets, so one client cannot dodge a limit by
// changing the low bits).
package clientaddr

import (
	"net"
	"net/netip"
)

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
