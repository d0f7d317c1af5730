package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSocketActivation: Debian's systemd-socket-activate owns the port and
// starts torsion on the first connection, handing it the socket; torsion
// serves that connection and the next.
func TestSocketActivation(t *testing.T) {
	t.Parallel()
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatalf("systemd-socket-activate is missing (scripts/test installs systemd): %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("activated\n"), 0o644)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // systemd-socket-activate binds it again
	cmd := exec.Command(activate, "-l", addr, binary, "web", "--port", "systemd:domain=INET:index=0", "--path", dir)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	// The port is there before torsion runs: wait for it, not for a log.
	waitUntil(10*time.Second, func() bool { return listening(addr) },
		func() { t.Fatalf("systemd-socket-activate did not listen:\n%s", out) })
	for i := 0; i < 2; i++ {
		if got := curl(t, "--max-time", "30", "http://"+addr+"/"); got != "activated\n" {
			t.Fatalf("request %d: %q\n%s", i, got, out)
		}
	}
}

// TestSdNotify: with $NOTIFY_SOCKET set, as systemd does for Type=notify,
// torsion says READY=1 once it serves, RELOADING=1 and READY=1 around a
// reload, WATCHDOG=1 within WatchdogSec, and STOPPING=1 when it stops.
func TestSdNotify(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	states := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			states <- string(buf[:n])
		}
	}()
	expect := func(prefix string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case s := <-states:
				if strings.HasPrefix(s, prefix) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q from torsion", prefix)
			}
		}
	}
	p := start(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}, "web", "--port", "tcp:0:interface=127.0.0.1", "--path", ".")
	expect("READY=1")
	expect("WATCHDOG=1")
	p.cmd.Process.Signal(syscall.SIGHUP)
	expect("RELOADING=1\nMONOTONIC_USEC=")
	expect("READY=1")
	p.cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1")
	if code := p.wait(); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestReusePort: the seed's recipe of several instances on one port —
// three torsion web processes with reuseport=true share it, and the
// kernel spreads new connections over all three.
func TestReusePort(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pidapp.py"), []byte(`import os
def application(environ, start_response):
    start_response("200 OK", [])
    return [str(os.getpid()).encode()]
`), 0o644)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	var ps []*proc
	for range 3 {
		p := start(t, nil, "web", "--port", "tcp:"+port+":interface=127.0.0.1:reuseport=true",
			"--wsgi", "pidapp:application", "--chdir", dir, "--python", debianPython, "--workers", "1")
		p.waitLog(`Site starting on`)
		ps = append(ps, p)
	}
	pids := map[string]int{}
	for range 100 {
		pids[curl(t, "http://127.0.0.1:"+port+"/")]++ // a new connection each time
	}
	// Each of 100 connections goes to one of three: that one instance gets
	// none has a chance of 3 x (2/3)^100, under 1e-17.
	if len(pids) != 3 {
		t.Errorf("100 connections were answered by %d workers, want 3: %v", len(pids), pids)
	}
	for _, p := range ps {
		if code := p.stop(syscall.SIGTERM); code != 0 {
			t.Errorf("exit %d", code)
		}
	}
}
