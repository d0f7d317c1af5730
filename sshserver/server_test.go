package sshserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
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
