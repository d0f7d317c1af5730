package endpoint

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/testutil"
)

// selfSigned returns a certificate and key in PEM for the names; the first
// is the common name.
func selfSigned(t *testing.T, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func write(t *testing.T, path string, data ...[]byte) string {
	t.Helper()
	if err := os.WriteFile(path, append([]byte(nil), bytesJoin(data)...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func bytesJoin(parts [][]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// serveEach listens on desc and runs handle on each connection, which it
// then closes.
func serveEach(t *testing.T, desc string, handle func(net.Conn)) string {
	t.Helper()
	ep, err := Parse(desc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ep.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// tlsEcho listens on desc and echoes what each connection sends.
func tlsEcho(t *testing.T, desc string) string {
	return serveEach(t, desc, func(c net.Conn) { io.Copy(c, c) })
}

// peerName handshakes with serverName and returns the certificate's name.
func peerName(t *testing.T, addr, serverName string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake for %q: %v", serverName, err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo over TLS: %q %v", buf, err)
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestSSL(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, "localhost")
	other, otherKey := selfSigned(t, "other")
	write(t, dir+"/cert.pem", cert)
	write(t, dir+"/key.pem", key)
	write(t, dir+"/both.pem", key, cert)
	write(t, dir+"/chain.pem", other)
	write(t, dir+"/otherkey.pem", otherKey)

	addr := tlsEcho(t, "ssl:0:privateKey="+dir+"/key.pem:certKey="+dir+"/cert.pem:interface=127.0.0.1:extraCertChain="+dir+"/chain.pem")
	if got := peerName(t, addr, "localhost"); got != "localhost" {
		t.Errorf("certificate %q", got)
	}
	// The chain is sent after the certificate.
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.ConnectionState().PeerCertificates); n != 2 {
		t.Errorf("%d certificates sent, want 2", n)
	}
	c.Close()
	addr = tlsEcho(t, "ssl:0:"+dir+"/both.pem:interface=127.0.0.1")
	if got := peerName(t, addr, "localhost"); got != "localhost" {
		t.Errorf("single PEM: certificate %q", got)
	}
	// Only AEAD suites are offered for TLS 1.2: a client with CBC suites
	// alone is refused, unless AllowLegacyCiphers added them.
	cbcOnly := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}
	if c, err := tls.Dial("tcp", addr, cbcOnly); err == nil {
		c.Close()
		t.Error("a handshake with CBC suites only succeeded")
	}
	for _, id := range serverConfig().CipherSuites {
		for _, cs := range tls.CipherSuites() {
			if cs.ID == id && (cs.Insecure || !strings.Contains(cs.Name, "ECDHE") || !strings.Contains(cs.Name, "GCM") && !strings.Contains(cs.Name, "CHACHA20")) {
				t.Errorf("offered by default: %s", cs.Name)
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := Parse("ssl:0:" + dir + "/both.pem")
	cfg := serverConfig()
	cfg.Certificates = []tls.Certificate{ep.(SSL).cert}
	AllowLegacyCiphers(cfg)
	legacy := &TLSListener{Listener: ln, Config: cfg}
	defer legacy.Close()
	go func() {
		if c, err := legacy.Accept(); err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	if c, err := tls.Dial("tcp", ln.Addr().String(), cbcOnly); err != nil {
		t.Errorf("with AllowLegacyCiphers, a CBC handshake: %v", err)
	} else {
		c.Close()
	}
	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}

	ep, err = Parse("ssl:443:privateKey=" + Escape(dir+"/key.pem") + ":certKey=" + Escape(dir+"/cert.pem") + `:interface=\:\:1`)
	if err != nil {
		t.Fatal(err)
	}
	if s := ep.String(); s != "ssl:443:interface=\\:\\:1:privateKey="+Escape(dir+"/key.pem")+":certKey="+Escape(dir+"/cert.pem") {
		t.Errorf("String() = %q", s)
	} else if again, err := Parse(s); err != nil || again.String() != s {
		t.Errorf("String() does not parse back: %v", err)
	}

	for desc, msg := range map[string]string{
		"ssl:443:privateKey=" + dir + "/missing.pem":                               "open " + dir + "/missing.pem: no such file or directory",
		"ssl:443:privateKey=" + dir + "/otherkey.pem:certKey=" + dir + "/cert.pem": "certificate " + dir + "/cert.pem with key " + dir + "/otherkey.pem: tls: private key does not match public key",
		"ssl:443:privateKey=" + dir + "/cert.pem":                                  dir + "/cert.pem: tls: found a certificate rather than a key",
		"ssl:443:" + dir + "/both.pem:extraCertChain=" + dir + "/key.pem":          dir + "/key.pem: no certificate found",
		"ssl:443:" + dir + "/both.pem:sslmethod=TLSv1_METHOD":                      `unknown parameter "sslmethod"`,
	} {
		if _, err := Parse(desc); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Parse(%q) = %v, want %q", desc, err, msg)
		}
	}
}

// A client that connects and sends nothing does not hold up the others.
func TestTLSSlowHandshake(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, "localhost")
	write(t, dir+"/both.pem", cert, key)
	addr := tlsEcho(t, "ssl:0:"+dir+"/both.pem:interface=127.0.0.1")
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	done := make(chan string)
	go func() { done <- peerName(t, addr, "localhost") }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("a handshake waited behind idle connections")
	}
}

func TestTxSNI(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.example", "*.wild.example", "DEFAULT"} {
		cert, key := selfSigned(t, n)
		write(t, filepath.Join(dir, n+".pem"), cert, key)
	}
	addr := tlsEcho(t, "txsni:"+dir+":tcp:0:interface=127.0.0.1")
	for sni, want := range map[string]string{
		"a.example":      "a.example",
		"A.Example":      "a.example",
		"x.wild.example": "*.wild.example",
		"b.example":      "DEFAULT",
		"":               "DEFAULT",
		"../DEFAULT":     "DEFAULT",
	} {
		if got := peerName(t, addr, sni); got != want {
			t.Errorf("SNI %q: certificate %q, want %q", sni, got, want)
		}
	}
	// A new file is used at once; a replaced one too.
	cert, key := selfSigned(t, "b.example")
	write(t, filepath.Join(dir, "b.example.pem"), cert, key)
	if got := peerName(t, addr, "b.example"); got != "b.example" {
		t.Errorf("added b.example.pem: certificate %q", got)
	}
	cert, key = selfSigned(t, "a.example", "renewed.example")
	write(t, filepath.Join(dir, "a.example.pem"), cert, key, []byte("\n")) // a different size
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if names := c.ConnectionState().PeerCertificates[0].DNSNames; len(names) != 2 {
		t.Errorf("replaced a.example.pem: still the old certificate %v", names)
	}
	c.Close()

	ep, err := Parse("txsni:" + dir + ":tcp:443")
	if err != nil {
		t.Fatal(err)
	}
	if s := ep.String(); s != "txsni:"+Escape(dir)+":tcp:443" {
		t.Errorf("String() = %q", s)
	}
	empty := t.TempDir()
	broken := t.TempDir()
	write(t, broken+"/x.example.pem", []byte("not a pem"))
	for desc, msg := range map[string]string{
		"txsni:" + empty + ":tcp:443":    "no HOST.pem files in " + empty,
		"txsni:" + broken + ":tcp:443":   broken + "/x.example.pem: tls: failed to find any PEM data",
		"txsni:/no/such/dir:tcp:443":     "no such file or directory",
		"txsni:" + dir:                   "want txsni:DIR:ENDPOINT",
		"txsni:" + dir + ":tcp:port=abc": `port "abc" is not a number`,
	} {
		if _, err := Parse(desc); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Parse(%q) = %v, want %q", desc, err, msg)
		}
	}

	// A file that stops loading keeps its last good certificate; one that
	// never loaded is passed over for DEFAULT. Each is logged once.
	var logged testutil.SyncBuffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	write(t, filepath.Join(dir, "a.example.pem"), cert[:len(cert)/2]) // caught half-written
	write(t, filepath.Join(dir, "c.example.pem"), []byte("not a pem"))
	for i := 0; i < 2; i++ {
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("a.example.pem half-written: %v", err)
		}
		if names := c.ConnectionState().PeerCertificates[0].DNSNames; len(names) != 2 {
			t.Errorf("a.example.pem half-written: certificate %v, want the renewed one", names)
		}
		c.Close()
		if got := peerName(t, addr, "c.example"); got != "DEFAULT" {
			t.Errorf("broken c.example.pem: certificate %q, want DEFAULT", got)
		}
	}
	for _, want := range []string{
		"no longer loads; serving its previous certificate until it is fixed\" file=" + filepath.Join(dir, "a.example.pem"),
		"does not load; clients that ask for its host get the next match\" file=" + filepath.Join(dir, "c.example.pem"),
	} {
		if n := strings.Count(logged.String(), want); n != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", want, n, logged.String())
		}
	}
}

// TestListenerDeadline: every kind of listener takes an accept deadline
// through its wrappers (a stopping server drains its accept queue with
// it): a connection waiting is accepted before the deadline, and Accept
// then returns a timeout.
func TestListenerDeadline(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, "localhost")
	pem := Escape(write(t, dir+"/both.pem", cert, key))
	for _, tc := range []struct {
		desc string
		tls  bool
	}{
		{"tcp:0:interface=127.0.0.1", false},
		{"unix:" + Escape(dir+"/s.sock") + ":lockfile=1", false},
		{"ssl:0:" + pem + ":interface=127.0.0.1", true},
		{"haproxy:tcp:0:interface=127.0.0.1", false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ep, err := Parse(tc.desc)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := ep.Listen(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			d, ok := ln.(interface{ SetDeadline(time.Time) error })
			if !ok {
				t.Fatalf("%T has no SetDeadline", ln)
			}
			c, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if strings.HasPrefix(tc.desc, "haproxy:") {
				io.WriteString(c, "PROXY TCP4 192.0.2.9 198.51.100.7 5555 80\r\n")
			}
			if tc.tls {
				go tls.Client(c, &tls.Config{InsecureSkipVerify: true}).Handshake()
			}
			if err := d.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			a, err := ln.Accept()
			if err != nil {
				t.Fatalf("the waiting connection: %v", err)
			}
			a.Close()
			d.SetDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := ln.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Accept after the deadline: %v, want a timeout", err)
			}
		})
	}
}
