package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/torsion-server/torsion/echo"
	"github.com/torsion-server/torsion/protocol"
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
	var port string // each start's, with the ssh options that reach it
	opts := []string{"-p", "", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}
	serve := func() *proc {
		cmd := exec.Command(binary, "conch", "-p", "tcp:0:interface=127.0.0.1", "--authorized-keys", "authorized_keys")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+home)
		p := startCmd(t, cmd)
		port = p.waitLog(`SSH starting on (\d+)`)[1]
		opts[1] = port
		return p
	}
	p := serve()
	p.waitLog(`made a new SSH host key`)
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
	p.stopOK()
	// The host key is kept: a second start makes none.
	p = serve()
	p.stop(syscall.SIGTERM)
	if strings.Contains(p.logText(), "made a new SSH host key") {
		t.Errorf("a second start made another host key:\n%s", p.logText())
	}
	if os.Geteuid() != 0 { // as root, logins are per system user (TestConchUsers)
		if out, code := run(t, "conch", "-p", "tcp:0:interface=127.0.0.1"); code != 2 || !strings.Contains(out, "--authorized-keys is required") {
			t.Errorf("without --authorized-keys: exit %d: %s", code, out)
		}
	}
}

// TestConchPasswordForward: with --password-file, Debian's OpenSSH client
// logs in with a password (given by SSH_ASKPASS) and a wrong one is
// refused; with --allow-tcp-forwarding, ssh -L carries a connection to a
// service on this machine.
func TestConchPasswordForward(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("open sesame"), bcrypt.MinCost)
	os.WriteFile(filepath.Join(dir, "passwords"), []byte("alice:"+string(hash)+"\n"), 0o600)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "key")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "key.pub"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	cmd := exec.Command(binary, "conch", "-p", "tcp:0:interface=127.0.0.1", "--authorized-keys", "authorized_keys",
		"--password-file", "passwords", "--allow-tcp-forwarding",
		"--metrics", "tcp:0:interface=127.0.0.1", "--health", "tcp:0:interface=127.0.0.1")
	cmd.Dir = dir
	p := startCmd(t, cmd)
	port := p.waitLog(`SSH starting on (\d+)`)[1]
	mport, hport := p.waitLog(`Metrics starting on (\d+)`)[1], p.waitLog(`Health starting on (\d+)`)[1]
	opts := []string{"-p", port, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"}
	withPassword := func(password string) (string, int) {
		t.Helper()
		askpass := filepath.Join(dir, "askpass")
		os.WriteFile(askpass, []byte("#!/bin/sh\necho '"+password+"'\n"), 0o700)
		cmd := exec.Command("ssh", append(opts, "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
			"-o", "NumberOfPasswordPrompts=1", "alice@127.0.0.1", "echo logged in as $USER")...)
		cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := withPassword("open sesame"); code != 0 || !strings.Contains(out, "logged in as") {
		t.Errorf("the password: exit %d: %s", code, out)
	}
	if out, code := withPassword("open barley"); code != 255 || !strings.Contains(out, "Permission denied") {
		t.Errorf("a wrong password: exit %d: %s", code, out)
	}
	p.waitLog(`SSH login refused.*method=password`)
	// --metrics and --health, offered to every plugin: logins counted.
	if got := curl(t, "-s", "http://127.0.0.1:"+hport+"/"); got != "ready\n" {
		t.Errorf("the health check: %q", got)
	}
	if got, want := counters(scrapeMetrics(t, mport), "torsion_ssh_logins_total"), map[string]float64{"password true": 1, "password false": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("torsion_ssh_logins_total %v, want %v", got, want)
	}

	// ssh -L to an echo service.
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoes := &protocol.Server{Factory: echo.Factory} // torsion's own echo protocol
	go echoes.Serve(target)
	defer echoes.Close()
	local := freePort(t)
	tunnel := exec.Command("ssh", append(opts, "-i", filepath.Join(dir, "key"), "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
		"-N", "-L", local+":"+target.Addr().String(), "127.0.0.1")...)
	var tunnelOut strings.Builder
	tunnel.Stderr = &tunnelOut
	if err := tunnel.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { tunnel.Process.Kill(); tunnel.Wait() }()
	waitUntil(20*time.Second, func() bool { return listening("127.0.0.1:" + local) },
		func() { t.Fatalf("ssh -L did not listen: %s", tunnelOut.String()) })
	c, err := net.Dial("tcp", "127.0.0.1:"+local)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "through the tunnel")
	c.(*net.TCPConn).CloseWrite()
	if b, _ := io.ReadAll(c); string(b) != "through the tunnel" {
		t.Errorf("ssh -L: %q; ssh: %s", b, tunnelOut.String())
	}
	p.waitLog(`SSH forwarding user=\S+ to=` + regexp.QuoteMeta(target.Addr().String()))
	tunnel.Process.Kill()
	p.stopOK()
}

// TestConchUsers: run as root without --authorized-keys, torsion conch
// takes logins per system user, against each one's ~/.ssh/authorized_keys,
// and runs each session as its user, in its home directory: a command, a
// terminal and SFTP (a file uploaded is the user's). A key in one user's
// file does not open another account. It makes a user for the test
// (useradd) and removes it after.
func TestConchUsers(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("per-user logins are for a server run as root")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("no useradd")
	}
	name := fmt.Sprintf("tconch%d", os.Getpid()%100000)
	base, err := os.MkdirTemp("", "tconch") // the user must reach its home: not under t.TempDir's 0700 directory
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	home := filepath.Join(base, name)
	if out, err := exec.Command("useradd", "-m", "-d", home, "-s", "/bin/bash", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", "-r", name).Run() })
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "authorized_keys"), pub, 0o600)
	if out, err := exec.Command("chown", "-R", name+":", home).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	cmd := exec.Command(binary, "conch", "-p", "tcp:0:interface=127.0.0.1")
	cmd.Dir = dir
	p := startCmd(t, cmd)
	p.waitLog(`logins are per system user`)
	port := p.waitLog(`SSH starting on (\d+)`)[1]
	opts := []string{"-p", port, "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}
	ssh := func(user string, args ...string) (string, int) {
		t.Helper()
		c := exec.Command("ssh", append(append(opts, user+"@127.0.0.1"), args...)...)
		out, _ := c.CombinedOutput()
		return string(out), c.ProcessState.ExitCode()
	}
	if out, code := ssh(name, "id -un; pwd; echo $HOME; id -u"); code != 0 || !strings.HasPrefix(out, name+"\n"+home+"\n"+home+"\n") || strings.HasSuffix(out, "\n0\n") {
		t.Errorf("a command as %s: exit %d: %q", name, code, out)
	}
	// The user's login shell runs the session (it was /bin/sh).
	if out, code := ssh(name, `echo "shell=${BASH_VERSION:+bash} $SHELL"`); code != 0 || out != "shell=bash /bin/bash\n" {
		t.Errorf("the login shell of %s: exit %d: %q", name, code, out)
	}
	if out, code := ssh(name, "-tt", "tty; id -un"); code != 0 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, name) {
		t.Errorf("a terminal as %s: exit %d: %q", name, code, out)
	}
	if out, code := ssh("root", "id -un"); code != 255 || !strings.Contains(out, "Permission denied") {
		t.Errorf("the key of %s for root: exit %d: %q", name, code, out)
	}
	os.WriteFile(filepath.Join(dir, "up.txt"), []byte("mine\n"), 0o644)
	sftp := exec.Command("sftp", append(append([]string{"-P", port}, opts[2:]...), name+"@127.0.0.1")...)
	sftp.Dir, sftp.Stdin = dir, strings.NewReader("put up.txt\n")
	if out, err := sftp.CombinedOutput(); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(home, "up.txt"))
	if err != nil {
		t.Fatalf("the upload: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid == 0 {
		t.Errorf("the uploaded file belongs to root, not %s", name)
	}
	p.stopOK()
}
