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
