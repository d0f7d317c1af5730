package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRunAs (as root): without --uid, every plugin runs as root with a
// warning (--allow-root without it), as gunicorn and uvicorn do; --uid
// nobody binds a privileged port as root and then runs torsion itself and
// its workers as nobody; --umask reaches the workers; bad values exit 2
// naming the option.
func TestRunAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	needPython(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	t.Parallel()
	// A directory nobody may read, with an application that tells who
	// runs it.
	dir, err := os.MkdirTemp("", "torsion-runas-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	app := "import os\n\ndef application(environ, start_response):\n" +
		"    start_response('200 OK', [('Content-Type', 'text/plain')])\n" +
		"    mask = os.umask(0); os.umask(mask)\n" +
		"    return [('%d %d %03o' % (os.getuid(), os.getgid(), mask)).encode()]\n"
	if err := os.WriteFile(filepath.Join(dir, "whoami.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	// The environment without TestMain's TORSION_ALLOW_ROOT.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TORSION_ALLOW_ROOT=") {
			env = append(env, kv)
		}
	}
	command := func(port string, global ...string) *exec.Cmd {
		args := append(global, "web", "--port", port, "--wsgi", "whoami:application",
			"--chdir", dir, "--python", debianPython, "--workers", "1")
		cmd := exec.Command(binary, args...)
		cmd.Env = env
		return cmd
	}
	serve := func(port string, global ...string) (*proc, string) { // port "0": any
		t.Helper()
		p := startCmd(t, command("tcp:"+port+":interface=127.0.0.1", global...))
		port = p.waitLog(`Site starting on (\d+)`)[1]
		return p, curl(t, "http://127.0.0.1:"+port+"/")
	}

	p, got := serve("0", "--umask", "027")
	if got != "0 0 027" {
		t.Errorf("as root on a local port with --umask 027, the worker says %q, want \"0 0 027\"", got)
	}
	if !strings.Contains(p.logText(), "WARN: running as root") {
		t.Errorf("no warning that it runs as root:\n%s", p.logText())
	}
	p.stop(syscall.SIGTERM)

	// One policy for every plugin, as gunicorn's and containers': root
	// runs, on every port, with the warning (the README's own commands
	// were refused as root); --allow-root runs without it.
	for _, plugin := range [][]string{{"web", "--wsgi", "x:y"}, {"mail", "-d", "x.test=" + t.TempDir()}, {"dns", "--recursive", "--upstream", "127.0.0.1:9"}} {
		cmd := exec.Command(binary, append([]string{"--check-config"}, plugin...)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "valid") {
			t.Errorf("as root, %v: %v: %s", plugin, err, out)
		}
	}
	p, _ = serve("0", "--allow-root")
	if strings.Contains(p.logText(), "running as root") {
		t.Errorf("--allow-root still warns:\n%s", p.logText())
	}
	p.stop(syscall.SIGTERM)
	cmd := exec.Command(binary, "mail", "-d", "x.test="+t.TempDir(), "--smtp", "tcp:0", "--pop3", "tcp:0")
	cmd.Env = env
	mp := startCmd(t, cmd)
	mp.waitLog(`WARN: running as root.*plugin=mail`)
	mp.stopOK()

	port := privilegedPort(t)
	want := nobody.Uid + " " + nobody.Gid
	p, got = serve(port, "--uid", "nobody")
	if !strings.HasPrefix(got, want+" ") {
		t.Errorf("with --uid nobody, the worker runs as %q, want %s", got, want)
	}
	// torsion itself dropped root once it had bound the port.
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if !strings.Contains(string(status), "\nUid:\t"+nobody.Uid+"\t"+nobody.Uid+"\t"+nobody.Uid) {
		t.Errorf("torsion's own ids after --uid nobody:\n%s", status)
	}
	p.stopOK()

	for _, args := range [][]string{{"--uid", "no-such-user-here"}, {"--gid", "0"}, {"--uid", "0"}, {"--umask", "999"}} {
		cmd := exec.Command(binary, append(args, "web")...)
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), args[0]) {
			t.Errorf("%v: exit %d: %s", args, code, out)
		}
	}
}

// privilegedPort finds a free port below 1024 on 127.0.0.1.
func privilegedPort(t *testing.T) string {
	t.Helper()
	for port := 1000; port > 600; port-- {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return fmt.Sprint(port)
		}
	}
	t.Skip("no free port below 1024")
	return ""
}
