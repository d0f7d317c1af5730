package clientaddr

import (
	"net"
	"testing"
)

func TestKey(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		want string // "" for not an IP address
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 80}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 80}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 80}, "2001:db8:1:2::"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"}, "fe80::"},
		{&net.UDPAddr{IP: net.ParseIP("192.0.2.9"), Port: 53}, "192.0.2.9"},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, ""},
	} {
		got, ok := Key(tt.addr)
		if tt.want == "" && ok || tt.want != "" && (!ok || got.String() != tt.want) {
			t.Errorf("Key(%v) = %v, %v; want %q", tt.addr, got, ok, tt.want)
		}
	}
}
