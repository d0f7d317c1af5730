package sshserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/torsion-server/torsion/echo"
	"github.com/torsion-server/torsion/protocol"
)

func TestHostKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	a, created, err := LoadOrCreateHostKey(path)
	if err != nil || !created {
		t.Fatalf("first: created %v, %v", created, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	b, created, err := LoadOrCreateHostKey(path)
	if err != nil || created || string(a.PublicKey().Marshal()) != string(b.PublicKey().Marshal()) {
		t.Errorf("second: created %v, same key %v, %v", created, string(a.PublicKey().Marshal()) == string(b.PublicKey().Marshal()), err)
	}
	os.WriteFile(path, []byte("not a key"), 0o600)
	if _, _, err := LoadOrCreateHostKey(path); err == nil {
		t.Error("a file that is no key was taken")
	}
}

func TestAuthorized(t *testing.T) {
	key := func() ssh.PublicKey {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		k, _ := ssh.NewPublicKey(pub)
		return k
	}
	in, out, restricted := key(), key(), key()
	file := filepath.Join(t.TempDir(), "authorized_keys")
	os.WriteFile(file, []byte("# a comment\n\n"+string(ssh.MarshalAuthorizedKey(key()))+string(ssh.MarshalAuthorizedKey(in))+
		`command="/usr/bin/true",no-pty `+string(ssh.MarshalAuthorizedKey(restricted))), 0o600)
	for _, c := range []struct {
		file string
		key  ssh.PublicKey
		want bool
	}{
		{file, in, true},
		{file, out, false},
		{file, restricted, false}, // options this server would not carry out
		{filepath.Join(t.TempDir(), "missing"), in, false},
	} {
		if got := authorized(c.file, c.key); got != c.want {
			t.Errorf("authorized(%s, %s) = %v, want %v", c.file, ssh.FingerprintSHA256(c.key), got, c.want)
		}
	}
}

// TestPasswordsAndForwarding: with a password file, a password logs in
// and a wrong one is refused; a direct-tcpip channel reaches its target
// only when forwarding is on, and is refused as prohibited when it is off.
func TestPasswordsAndForwarding(t *testing.T) {
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	pw := filepath.Join(dir, "passwords")
	os.WriteFile(pw, []byte("bob:$2y$04$notarealhashnotarealhashnotarealhashnotareal\nalice:"+string(hash)+"\n"), 0o600)
	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(hostKey)
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoes := &protocol.Server{Factory: echo.Factory} // torsion's own echo protocol
	go echoes.Serve(target)
	defer echoes.Close()
	for _, forwarding := range []bool{true, false} {
		srv, err := New(Config{HostKeys: []ssh.Signer{signer}, AuthorizedKeys: filepath.Join(dir, "none"), PasswordFile: pw, Forwarding: forwarding})
		if err != nil {
			t.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		go srv.Serve(ln)
		defer srv.Close()
		dial := func(password string) (*ssh.Client, error) {
			return ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.Password(password)},
				HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		}
		if _, err := dial("wrong"); err == nil {
			t.Fatal("a wrong password logged in")
		}
		c, err := dial("s3cret")
		if err != nil {
			t.Fatalf("the password: %v", err)
		}
		// A command ended by a signal: exit-signal, not a made-up status.
		if sess, err := c.NewSession(); err == nil {
			err := sess.Run("kill -TERM $$")
			var ee *ssh.ExitError
			if !errors.As(err, &ee) || ee.Signal() != "TERM" {
				t.Errorf("a command killed by SIGTERM: %v; want exit-signal TERM", err)
			}
		}
		fc, err := c.Dial("tcp", target.Addr().String())
		if !forwarding {
			var oc *ssh.OpenChannelError
			if !errors.As(err, &oc) || oc.Reason != ssh.Prohibited {
				t.Errorf("forwarding off: %v, want prohibited", err)
			}
			c.Close()
			continue
		}
		if err != nil {
			t.Fatalf("forwarding: %v", err)
		}
		io.WriteString(fc, "through the tunnel")
		fc.(interface{ CloseWrite() error }).CloseWrite()
		if b, _ := io.ReadAll(fc); string(b) != "through the tunnel" {
			t.Errorf("forwarded echo: %q", b)
		}
		c.Close()
	}
	for _, c := range []struct {
		user, password string
		want           bool
	}{{"alice", "s3cret", true}, {"alice", "S3cret", false}, {"bob", "anything", false}, {"carol", "s3cret", false}} {
		if got := passwordMatches(pw, c.user, []byte(c.password)); got != c.want {
			t.Errorf("passwordMatches(%s, %s) = %v", c.user, c.password, got)
		}
	}
}

// TestUnknownUserTiming: a wrong password takes as long for a user the
// password file lacks as for one it has (a hash of the file's cost is
// compared all the same, as OpenSSH does since CVE-2016-6210); once an
// unknown user was refused some 70 ms sooner, which told which users
// exist.
func TestUnknownUserTiming(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.DefaultCost)
	pw := filepath.Join(t.TempDir(), "passwords")
	os.WriteFile(pw, []byte("alice:"+string(hash)+"\n"), 0o600)
	fastest := func(user string) time.Duration {
		best := time.Hour
		for range 3 {
			began := time.Now()
			if passwordMatches(pw, user, []byte("wrong")) {
				t.Fatalf("%s logged in with a wrong password", user)
			}
			best = min(best, time.Since(began))
		}
		return best
	}
	fastest("nobody") // makes the dummy hash
	known, unknown := fastest("alice"), fastest("nobody")
	if unknown < known/2 {
		t.Errorf("a wrong password takes %v for an existing user, %v for an unknown one", known, unknown)
	}
}

// sshBanner connects to addr from the address local and reports whether
// the server sent its SSH banner (a dropped connection closes first).
func sshBanner(t *testing.T, addr, local string) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 4)
	_, err = io.ReadFull(c, b)
	return c, err == nil && string(b) == "SSH-"
}

// TestMaxStartups: past MaxStartups' Full connections that have not
// logged in, a new one is dropped before the SSH banner (OpenSSH's
// MaxStartups); once 5,000-8,000 idle connections were each held for the
// 30 s handshake timeout. One that ends gives its place back.
func TestMaxStartups(t *testing.T) {
	for _, tt := range []struct {
		m        Startups
		n, roll  int
		wantDrop bool
	}{
		{Startups{10, 30, 100}, 9, 0, false},
		{Startups{10, 30, 100}, 10, 29, true},
		{Startups{10, 30, 100}, 10, 30, false},
		{Startups{10, 30, 100}, 55, 64, true},
		{Startups{10, 30, 100}, 55, 65, false},
		{Startups{10, 30, 100}, 100, 99, true},
	} {
		if got := tt.m.drop(tt.n, tt.roll); got != tt.wantDrop {
			t.Errorf("%v with %d waiting, roll %d: drop %v, want %v", tt.m, tt.n, tt.roll, got, tt.wantDrop)
		}
	}
	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(hostKey)
	srv, err := New(Config{HostKeys: []ssh.Signer{signer}, AuthorizedKeys: filepath.Join(t.TempDir(), "none"), MaxStartups: Startups{Start: 2, Full: 2}, PerSourceMaxStartups: 2})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()
	banner := func() (net.Conn, bool) { return sshBanner(t, ln.Addr().String(), "127.0.0.1") }
	var held []net.Conn
	for i := range 2 {
		c, ok := banner()
		if !ok {
			t.Fatalf("connection %d had no banner", i+1)
		}
		held = append(held, c)
	}
	if c, ok := banner(); ok {
		c.Close()
		t.Fatal("a third connection not logged in got the banner")
	}
	held[0].Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, ok := banner()
		c.Close()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection did not give its place back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	held[1].Close()

	// One address may hold PerSourceMaxStartups of them; another address
	// still gets in.
	srv2, err := New(Config{HostKeys: []ssh.Signer{signer}, AuthorizedKeys: filepath.Join(t.TempDir(), "none"), PerSourceMaxStartups: 2})
	if err != nil {
		t.Fatal(err)
	}
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv2.Serve(ln2)
	defer srv2.Close()
	from := func(local string) (net.Conn, bool) { return sshBanner(t, ln2.Addr().String(), local) }
	for i := range 2 {
		c, ok := from("127.0.0.1")
		if !ok {
			t.Fatalf("per source: connection %d had no banner", i+1)
		}
		defer c.Close()
	}
	if c, ok := from("127.0.0.1"); ok {
		c.Close()
		t.Error("a third connection from one address got the banner")
	}
	c, ok := from("127.0.0.2")
	if !ok {
		t.Error("another address was dropped")
	}
	c.Close()
}

// TestPasswordGuessing: a password guesser's failures make its address's
// next attempt wait, whatever connection it comes on; once each
// connection had its own pace only, and 100 guessers in parallel got 100
// guesses per pace.
func TestPasswordGuessing(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	pw := filepath.Join(t.TempDir(), "passwords")
	os.WriteFile(pw, []byte("alice:"+string(hash)+"\n"), 0o600)
	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(hostKey)
	srv, err := New(Config{HostKeys: []ssh.Signer{signer}, AuthorizedKeys: filepath.Join(t.TempDir(), "none"), PasswordFile: pw})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()
	guess := func() time.Duration {
		began := time.Now()
		_, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.Password("wrong")},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
		if err == nil {
			t.Fatal("a wrong password logged in")
		}
		return time.Since(began)
	}
	guess()
	guess()
	// Two failures: 500 ms of penalty before the refusal's own 500 ms.
	if took := guess(); took < 900*time.Millisecond {
		t.Errorf("a third guess, on a new connection, took %v; want the address's penalty as well as the refusal", took)
	}
}
