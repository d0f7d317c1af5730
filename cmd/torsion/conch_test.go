package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConch runs torsion conch and talks to it with Debian's OpenSSH
// client: an exec command with its output, error output and exit status,
// a shell on a terminal, SFTP both ways, and a key that is not authorized.
// The host key made on first start is kept for the next.
func TestConch(t *testing.T) {
	t.Parallel()
	sshPath, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatalf("ssh is missing (scripts/test installs openssh-client): %v", err)
	}
	dir := t.TempDir()
	home := t.TempDir()
	keygen := func(name string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		return path
	}
	good, bad := keygen("good"), keygen("bad")
	pub, _ := os.ReadFile(good + ".pub")
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	port := freePort(t)
	serve := func() *proc {
		cmd := exec.Command(binary, "conch", "-p", "tcp:"+port+":interface=127.0.0.1", "--authorized-keys", "authorized_keys")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+home)
		p := startCmd(t, cmd)
		p.waitLog(`SSH starting on`)
		return p
	}
	p := serve()
	p.waitLog(`made a new SSH host key`)
	opts := []string{"-p", port, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}
	ssh := func(key string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(sshPath, append(append(append([]string{"-i", key}, opts...), "127.0.0.1"), args...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	}
	if out, errOut, code := ssh(good, "echo hello; echo oops >&2; exit 3"); out != "hello\n" || !strings.Contains(errOut, "oops") || code != 3 {
		t.Errorf("exec: stdout %q, stderr %q, exit %d", out, errOut, code)
	}
	if out, _, code := ssh(good, "-tt", "tty; pwd"); !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, home) || code != 0 {
		t.Errorf("a shell on a terminal: %q, exit %d", out, code)
	}
	if _, errOut, code := ssh(bad, "echo no"); code != 255 || !strings.Contains(errOut, "Permission denied") {
		t.Errorf("an unauthorized key: exit %d: %s", code, errOut)
	}
	p.waitLog(`SSH login refused`)
	// SFTP: put a file, get it back.
	os.WriteFile(filepath.Join(dir, "local.txt"), []byte("sent over sftp\n"), 0o644)
	batch := "put local.txt remote.txt\nget remote.txt back.txt\n"
	cmd := exec.Command("sftp", append(append([]string{"-i", good, "-P", port}, opts[2:]...), "127.0.0.1")...)
	cmd.Dir, cmd.Stdin = dir, strings.NewReader(batch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(home, "remote.txt")); string(b) != "sent over sftp\n" {
		t.Errorf("uploaded into the home directory: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "back.txt")); string(b) != "sent over sftp\n" {
		t.Errorf("downloaded: %q", b)
	}
	// scp (over SFTP, as Debian's OpenSSH does), both ways.
	scp := exec.Command("scp", append(append([]string{"-i", good, "-P", port}, opts[2:]...), "local.txt", "127.0.0.1:scp.txt")...)
	scp.Dir = dir
	if out, err := scp.CombinedOutput(); err != nil {
		t.Fatalf("scp up: %v\n%s", err, out)
	}
	scp = exec.Command("scp", append(append([]string{"-i", good, "-P", port}, opts[2:]...), "127.0.0.1:scp.txt", "scp-back.txt")...)
	scp.Dir = dir
	if out, err := scp.CombinedOutput(); err != nil {
		t.Fatalf("scp down: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "scp-back.txt")); string(b) != "sent over sftp\n" {
		t.Errorf("scp both ways: %q", b)
	}
	// A key guessed over and over is refused slowly: 6 keys take 3s.
	start := time.Now()
	var keys []string
	for i := range 6 {
		keys = append(keys, "-i", keygen(fmt.Sprintf("guess%d", i)))
	}
	cmd = exec.Command(sshPath, append(append(append(keys, "-o", "IdentitiesOnly=yes"), opts...), "127.0.0.1", "true")...)
	cmd.Run()
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("6 refused keys took only %v", d)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d; log:\n%s", code, p.logText())
	}
	// The host key is kept: a second start makes none.
	p = serve()
	p.stop(syscall.SIGTERM)
	if strings.Contains(p.logText(), "made a new SSH host key") {
		t.Errorf("a second start made another host key:\n%s", p.logText())
	}
	if out, code := run(t, "conch", "-p", "tcp:0:interface=127.0.0.1"); code != 2 || !strings.Contains(out, "--authorized-keys is required") {
		t.Errorf("without --authorized-keys: exit %d: %s", code, out)
	}
}
