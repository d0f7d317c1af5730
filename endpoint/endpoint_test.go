package endpoint

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/handover"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name  string
		desc  string
		kind  string
		pos   []string
		named map[string]string
	}{
		{"bare kind", "tcp", "tcp", nil, map[string]string{}},
		{"positional", "tcp:80", "tcp", []string{"80"}, map[string]string{}},
		{"named", "tcp:port=80:interface=127.0.0.1", "tcp", nil, map[string]string{"port": "80", "interface": "127.0.0.1"}},
		{"escaped colons", `tcp6:port=80:interface=\:\:1`, "tcp6", nil, map[string]string{"port": "80", "interface": "::1"}},
		{"equals inside value", "ssl:443:privateKey=a=b.pem", "ssl", []string{"443"}, map[string]string{"privateKey": "a=b.pem"}},
		{"escaped backslash", `unix:/tmp/a\\b`, "unix", []string{`/tmp/a\b`}, map[string]string{}},
		{"empty positional", "tcp:", "tcp", []string{""}, map[string]string{}},
		{"escaped equals in positional", `unix:/tmp/a\=b`, "unix", []string{"/tmp/a=b"}, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Split(tt.desc)
			if err != nil {
				t.Fatal(err)
			}
			if a.Kind != tt.kind || !reflect.DeepEqual(a.Positional, tt.pos) || !reflect.DeepEqual(a.Named, tt.named) {
				t.Errorf("Split(%q) = %q %q %v; want %q %q %v", tt.desc, a.Kind, a.Positional, a.Named, tt.kind, tt.pos, tt.named)
			}
		})
	}
}

// Golden cases are the examples in Twisted's endpoint documentation
// (docs/core/howto/endpoints.rst and serverFromString's docstring).
func TestParse(t *testing.T) {
	tests := []struct {
		desc string
		want Server
		str  string
	}{
		{"tcp:80", TCP{Port: 80}, "tcp:80"},
		{"80", TCP{Port: 80}, "tcp:80"},
		{"tcp:80:interface=127.0.0.1", TCP{Port: 80, Interface: "127.0.0.1"}, "tcp:80:interface=127.0.0.1"},
		{"tcp:port=80:interface=192.168.1.1", TCP{Port: 80, Interface: "192.168.1.1"}, "tcp:80:interface=192.168.1.1"},
		{"tcp:80:127.0.0.1:backlog=50", TCP{Port: 80, Interface: "127.0.0.1", Backlog: 50}, "tcp:80:interface=127.0.0.1:backlog=50"},
		{`tcp6:port=80:interface=\:\:1`, TCP{Port: 80, Interface: "::1", IPv6: true}, `tcp6:80:interface=\:\:1`},
		{"tcp6:8080", TCP{Port: 8080, IPv6: true}, "tcp6:8080"},
		{"tcp:8080:reuseport=true", TCP{Port: 8080, ReusePort: true}, "tcp:8080:reuseport=true"},
		{"unix:/var/run/finger", Unix{Path: "/var/run/finger"}, "unix:/var/run/finger"},
		{"unix:/var/run/finger:mode=660", Unix{Path: "/var/run/finger", Mode: 0o660}, "unix:/var/run/finger:mode=0660"},
		{"unix:address=/var/run/web.sock:lockfile=1", Unix{Path: "/var/run/web.sock", Lockfile: true}, "unix:/var/run/web.sock:lockfile=1"},
		{`unix:/tmp/with\:colon`, Unix{Path: "/tmp/with:colon"}, `unix:/tmp/with\:colon`},
		{"systemd:domain=INET:index=0", Systemd{Domain: "INET", Index: 0}, "systemd:domain=INET:index=0"},
		{"systemd:domain=INET6:index=1", Systemd{Domain: "INET6", Index: 1}, "systemd:domain=INET6:index=1"},
		{"systemd:domain=unix:name=web", Systemd{Domain: "UNIX", Index: -1, Name: "web"}, "systemd:domain=UNIX:name=web"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := Parse(tt.desc)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %#v, want %#v", tt.desc, got, tt.want)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
			again, err := Parse(got.String())
			if err != nil || again != got {
				t.Errorf("Parse(String()) = %#v, %v; want %#v", again, err, got)
			}
		})
	}
}

func TestParseClient(t *testing.T) {
	tests := []struct {
		desc string
		want Client
		str  string
	}{
		{"tcp:host=www.example.com:port=80", TCPClient{Host: "www.example.com", Port: 80}, "tcp:host=www.example.com:port=80"},
		{"tcp:www.example.com:80", TCPClient{Host: "www.example.com", Port: 80}, "tcp:host=www.example.com:port=80"},
		{"tcp:host=www.example.com:port=80:timeout=1.5", TCPClient{Host: "www.example.com", Port: 80, Timeout: 1500 * time.Millisecond}, "tcp:host=www.example.com:port=80:timeout=1.5"},
		{`tcp6:host=\:\:1:port=80`, TCPClient{Host: "::1", Port: 80, IPv6: true}, `tcp6:host=\:\:1:port=80`},
		{"tcp:host=localhost:port=80:bindAddress=127.0.0.1", TCPClient{Host: "localhost", Port: 80, BindAddress: "127.0.0.1"}, "tcp:host=localhost:port=80:bindAddress=127.0.0.1"},
		{"unix:path=/var/foo/bar:lockfile=1:timeout=9", UnixClient{Path: "/var/foo/bar", Timeout: 9 * time.Second, CheckPID: true}, "unix:path=/var/foo/bar:timeout=9:lockfile=1"},
		{"unix:/var/foo/bar", UnixClient{Path: "/var/foo/bar"}, "unix:path=/var/foo/bar"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := ParseClient(tt.desc)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseClient(%q) = %#v, want %#v", tt.desc, got, tt.want)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
			if again, err := ParseClient(got.String()); err != nil || again != got {
				t.Errorf("ParseClient(String()) = %#v, %v", again, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		desc string
		want string // the full message
	}{
		{"tcp:80:interfac=x", `endpoint "tcp:80:interfac=x": unknown parameter "interfac" (known: port, interface, backlog, reuseport)`},
		{"systemd:index=0", `endpoint "systemd:index=0": missing domain (INET, INET6 or UNIX)`},
		{"systemd:domain=IPX:index=0", `endpoint "systemd:domain=IPX:index=0": domain "IPX": want INET, INET6 or UNIX`},
		{"systemd:domain=INET", `endpoint "systemd:domain=INET": want one of index and name`},
		{"systemd:domain=INET:index=-1", `endpoint "systemd:domain=INET:index=-1": index "-1": want a number from 0`},
		{"", `endpoint "": empty description`},
		{"tpc:80", `endpoint "tpc:80": unknown endpoint kind "tpc"`},
		{"tcp", `endpoint "tcp": missing port`},
		{"tcp:http", `endpoint "tcp:http": port "http" is not a number from 0 to 65535`},
		{"tcp:70000", `endpoint "tcp:70000": port "70000" is not a number from 0 to 65535`},
		{"tcp:80:interface=localhost", `endpoint "tcp:80:interface=localhost": interface "localhost" is not an IP address`},
		{"tcp6:80:interface=127.0.0.1", `endpoint "tcp6:80:interface=127.0.0.1": interface "127.0.0.1" is not an IPv6 address`},
		{"tcp:80:backlog=-1", `endpoint "tcp:80:backlog=-1": backlog "-1" is not a positive number`},
		{"tcp:80:reuseport=maybe", `endpoint "tcp:80:reuseport=maybe": reuseport: "maybe" is not a boolean (use true or false)`},
		{"tcp:80:port=81", `endpoint "tcp:80:port=81": parameter "port" given twice`},
		{"tcp:80:1.2.3.4:5:true:x", `endpoint "tcp:80:1.2.3.4:5:true:x": too many arguments (5, at most 4: port, interface, backlog, reuseport)`},
		{"unix:", `endpoint "unix:": missing socket path`},
		{"unix:/x:mode=999", `endpoint "unix:/x:mode=999": mode "999" is not an octal permission such as 0660`},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, err := Parse(tt.desc)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) error = %v, want *Error", tt.desc, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error = %q, want prefix %q", tt.desc, err, tt.want)
			}
		})
	}
}

func TestTCPListenAndDial(t *testing.T) {
	for _, desc := range []string{"tcp:0:interface=127.0.0.1", `tcp6:0:interface=\:\:1`, "tcp:0:interface=127.0.0.1:backlog=3:reuseport=true"} {
		t.Run(desc, func(t *testing.T) {
			s, err := Parse(desc)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := s.Listen(context.Background())
			if err != nil {
				if strings.Contains(desc, "::1") {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			defer ln.Close()
			addr := ln.Addr().(*net.TCPAddr)
			kind := "tcp"
			if addr.IP.To4() == nil {
				kind = "tcp6"
			}
			c, err := ParseClient(kind + ":host=" + Escape(addr.IP.String()) + ":port=" + strconv.Itoa(addr.Port))
			if err != nil {
				t.Fatal(err)
			}
			echoOnce(t, ln, c)
		})
	}
}

func TestReusePortShares(t *testing.T) {
	s := TCP{Interface: "127.0.0.1", ReusePort: true}
	a, err := s.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s.Port = a.Addr().(*net.TCPAddr).Port
	b, err := s.Listen(context.Background())
	if err != nil {
		t.Fatalf("second listener with reuseport: %v", err)
	}
	b.Close()
	s.ReusePort = false
	if c, err := s.Listen(context.Background()); err == nil {
		c.Close()
		t.Fatal("listening without reuseport on a used port succeeded")
	}
}

func TestUnixListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	s, err := Parse("unix:" + Escape(path) + ":mode=0600:lockfile=1")
	if err != nil {
		t.Fatal(err)
	}
	// A stale socket file from a dead process is replaced when lockfile=1.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	ln, err := s.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want 0600", fi.Mode().Perm())
	}
	// A second server on the same socket is refused while the lock is held.
	if _, err := s.Listen(context.Background()); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second listen: %v, want in-use error", err)
	}
	c, err := ParseClient("unix:path=" + Escape(path) + ":lockfile=1")
	if err != nil {
		t.Fatal(err)
	}
	echoOnce(t, ln, c)
	ln.Close()
	for _, f := range []string{path, path + ".lock"} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after Close: %v", f, err)
		}
	}
	if _, err := c.Dial(context.Background()); err == nil {
		t.Error("dial with lockfile=1 succeeded without a live lock")
	}
}

func echoOnce(t *testing.T, ln net.Listener, c Client) {
	t.Helper()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 5)
		n, _ := conn.Read(buf)
		conn.Write(buf[:n])
	}()
	conn, err := c.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hello"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 5)
	if _, err := conn.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

func TestFromBind(t *testing.T) {
	for _, tt := range []struct{ bind, want string }{
		{"127.0.0.1:8000", "tcp:8000:interface=127.0.0.1"},
		{"localhost:8000", "tcp:8000:interface=127.0.0.1"},
		{":8000", "tcp:8000"},
		{"0.0.0.0:8000", "tcp:8000"},
		{"[::1]:8000", `tcp6:8000:interface=\:\:1`},
		{"unix:/run/web.sock", "unix:/run/web.sock"},
		{"example.org:80", ""},
		{"8000", ""},
		{"127.0.0.1:http", ""},
	} {
		got, err := FromBind(tt.bind)
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("FromBind(%q) = %q, %v; want %q", tt.bind, got, err, tt.want)
		}
		if got != "" {
			if _, err := Parse(got); err != nil {
				t.Errorf("FromBind(%q) = %q, which does not parse: %v", tt.bind, got, err)
			}
		}
	}
}

func TestLocal(t *testing.T) {
	for desc, want := range map[string]bool{
		"tcp:8000:interface=127.0.0.1":         true,
		"tcp:8000:interface=127.1.2.3":         true,
		"tcp6:8000:interface=\\:\\:1":          true,
		"unix:/tmp/x.sock":                     true,
		"haproxy:tcp:8000:interface=127.0.0.1": true,
		"tcp:8000":                             false,
		"tcp:8000:interface=0.0.0.0":           false,
		"tcp:8000:interface=192.168.1.5":       false,
		"haproxy:tcp:8000":                     false,
		"systemd:domain=INET:index=0":          false,
	} {
		s, err := Parse(desc)
		if err != nil {
			t.Fatalf("%s: %v", desc, err)
		}
		if got := Local(s); got != want {
			t.Errorf("Local(%s) = %v, want %v", desc, got, want)
		}
	}
	// TLS wrappers are as local as what they wrap (built directly: their
	// descriptions need certificates).
	local, public := TCP{Port: 8443, Interface: "127.0.0.1"}, TCP{Port: 8443}
	for _, c := range []struct {
		s    Server
		want bool
	}{
		{SSL{TCP: local}, true}, {SSL{TCP: public}, false},
		{SNI{Inner: local}, true}, {SNI{Inner: public}, false},
	} {
		if got := Local(c.s); got != c.want {
			t.Errorf("Local(%#v) = %v, want %v", c.s, got, c.want)
		}
	}
}

// TestParsePacket: datagram descriptions parse, print back in canonical
// form, and refuse what a datagram socket cannot have.
func TestParsePacket(t *testing.T) {
	for _, tt := range []struct {
		desc string
		want PacketServer
		str  string
	}{
		{"udp:53", UDP{Port: 53}, "udp:53"},
		{"53", UDP{Port: 53}, "udp:53"},
		{"udp:5353:interface=127.0.0.1", UDP{Port: 5353, Interface: "127.0.0.1"}, "udp:5353:interface=127.0.0.1"},
		{"udp:5353:127.0.0.1:reuseport=yes", UDP{Port: 5353, Interface: "127.0.0.1", ReusePort: true}, "udp:5353:interface=127.0.0.1:reuseport=true"},
		{`udp6:53:interface=\:\:1`, UDP{Port: 53, Interface: "::1", IPv6: true}, `udp6:53:interface=\:\:1`},
		{"systemd:domain=INET:name=dns-udp", Systemd{Domain: "INET", Index: -1, Name: "dns-udp"}, "systemd:domain=INET:name=dns-udp"},
	} {
		got, err := ParsePacket(tt.desc)
		if err != nil {
			t.Errorf("%s: %v", tt.desc, err)
			continue
		}
		if got != tt.want || got.String() != tt.str {
			t.Errorf("%s = %#v (%s), want %#v (%s)", tt.desc, got, got, tt.want, tt.str)
		}
	}
	for _, tt := range []struct{ desc, want string }{
		{"udp:53:backlog=5", `endpoint "udp:53:backlog=5": unknown parameter "backlog" (known: port, interface, reuseport)`},
		{"tcp:53", `endpoint "tcp:53": unknown endpoint kind "tcp" (known: [systemd udp udp6])`},
		{"udp6:53:interface=127.0.0.1", `endpoint "udp6:53:interface=127.0.0.1": interface "127.0.0.1" is not an IPv6 address`},
		{"udp:70000", `endpoint "udp:70000": port "70000" is not a number from 0 to 65535`},
	} {
		if _, err := ParsePacket(tt.desc); err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %s", tt.desc, err, tt.want)
		}
	}
}

// TestUDPListen: a udp endpoint receives datagrams on its interface, and
// with reuseport two sockets share the port.
func TestUDPListen(t *testing.T) {
	ep := UDP{Interface: "127.0.0.1", ReusePort: true}
	pc, err := ep.ListenPacket(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, ok := pc.(*net.UDPConn); !ok {
		t.Errorf("ListenPacket gave a %T, want the *net.UDPConn itself", pc)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	second, err := UDP{Port: port, Interface: "127.0.0.1", ReusePort: true}.ListenPacket(context.Background())
	if err != nil {
		t.Fatalf("a second socket on the port with reuseport: %v", err)
	}
	second.Close()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Errorf("read %q, %v", buf[:n], err)
	}
	// Closed, it is no longer handed over (nor does it fail the hand-over).
	pc.Close()
	files, err := handover.HandOver(&exec.Cmd{})
	if err != nil {
		t.Errorf("HandOver after a datagram socket was closed: %v", err)
	}
	for _, f := range files {
		if strings.Contains(f.Name(), "udp:") {
			t.Errorf("the closed socket %s was handed over", f.Name())
		}
		f.Close()
	}
}
