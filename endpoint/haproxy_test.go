package endpoint

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// addrServer listens on desc and answers each connection with
// "REMOTE LOCAL FIRSTLINE\n".
func addrServer(t *testing.T, desc string) string {
	t.Helper()
	return serveEach(t, desc, func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "%s %s %s", c.RemoteAddr(), c.LocalAddr(), line)
	})
}

func v2Header(cmd, fam byte, addrs []byte) []byte {
	h := append([]byte(nil), proxyV2Sig...)
	h = append(h, 0x20|cmd, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(len(addrs)+3))
	h = append(h, addrs...)
	return append(h, 0x04, 0, 0) // a TLV, NOOP, to be skipped
}

func TestHAProxy(t *testing.T) {
	addr := addrServer(t, "haproxy:tcp:0:interface=127.0.0.1")
	v4 := append(append([]byte{192, 0, 2, 1}, 198, 51, 100, 7), 0x30, 0x39, 0x01, 0xbb)
	v6 := append(append(net.ParseIP("2001:db8::1").To16(), net.ParseIP("2001:db8::2").To16()...), 0, 80, 0, 81)
	tests := []struct {
		name, header, want string
	}{
		{"v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n", "192.0.2.1:12345 198.51.100.7:443 hello\n"},
		{"v1 TCP6", "PROXY TCP6 2001:db8::1 2001:db8::2 80 81\r\n", "[2001:db8::1]:80 [2001:db8::2]:81 hello\n"},
		{"v1 UNKNOWN", "PROXY UNKNOWN\r\n", "127.0.0.1:"},
		{"v2 TCP4", string(v2Header(1, 0x11, v4)), "192.0.2.1:12345 198.51.100.7:443 hello\n"},
		{"v2 TCP6", string(v2Header(1, 0x21, v6)), "[2001:db8::1]:80 [2001:db8::2]:81 hello\n"},
		{"v2 LOCAL", string(v2Header(0, 0, nil)), "127.0.0.1:"},
		{"no header", "GET / HTTP/1.1\r\n", ""},
		{"v1 bad address", "PROXY TCP4 192.0.2.1 2001:db8::2 1 2\r\n", ""},
		{"v1 too long", "PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n", ""},
		{"v1 bad port", "PROXY TCP4 192.0.2.1 198.51.100.7 99999 443\r\n", ""},
		{"v1 zone", "PROXY TCP6 fe80::1%\x1b[31m 2001:db8::2 80 81\r\n", ""},
		{"v2 short", string(v2Header(1, 0x11, v4[:6])), ""},
	}
	for _, tt := range tests {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, tt.header+"hello\n")
		got, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(got), tt.want) || (tt.want == "" && len(got) > 0) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	ep, _ := Parse("haproxy:tcp:8000:interface=127.0.0.1")
	if s := ep.String(); s != "haproxy:tcp:8000:interface=127.0.0.1" {
		t.Errorf("String() = %q", s)
	}
	if _, err := Parse("haproxy:"); err == nil || !strings.Contains(err.Error(), "want haproxy:ENDPOINT") {
		t.Errorf("Parse(haproxy:) = %v", err)
	}
}

// With TLS, the PROXY header comes before the handshake.
func TestHAProxyTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, "localhost")
	write(t, dir+"/both.pem", cert, key)
	addr := addrServer(t, "haproxy:ssl:0:"+Escape(dir+"/both.pem")+":interface=127.0.0.1")
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(raw, "PROXY TCP4 192.0.2.9 198.51.100.7 5555 443\r\n")
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello\n")
	got, _ := io.ReadAll(c)
	if want := "192.0.2.9:5555 198.51.100.7:443 hello\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
