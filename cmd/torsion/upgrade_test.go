package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestUpgrade upgrades a server in place (SIGUSR2) five times while four
// clients keep requesting a Flask application: no request fails, each new
// process serves the code as it is at its start, takes over the pid file
// and the Unix control socket, and its predecessor exits. A SIGUSR2 during
// an upgrade is refused; a successor that cannot start is stopped and the
// running server serves on.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	needPython(t, "flask")
	dir := t.TempDir()
	app := filepath.Join(dir, "upgradeapp.py")
	slow := filepath.Join(dir, "slow")
	write := func(version string) {
		t.Helper()
		// The import waits for as many seconds as the file "slow" says,
		// so that a second SIGUSR2 can land during an upgrade.
		src := fmt.Sprintf("import time\ntime.sleep(float(open(%q).read()))\n"+
			"from flask import Flask\napplication = Flask(__name__)\n\n@application.route('/')\ndef index():\n    return %q\n", slow, version)
		if err := os.WriteFile(app, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(slow, []byte("0"), 0o644)
	write("version 0")
	logfile, pidfile := filepath.Join(dir, "torsion.log"), filepath.Join(dir, "torsion.pid")
	control := filepath.Join(dir, "control.sock")
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// The successors inherit standard error, so the log is read from the
	// file, not from a pipe that would stay open after the first exits.
	cmd := exec.Command(binary, "--logfile", logfile, "--pidfile", pidfile, "web",
		"--port", "tcp:0:interface=127.0.0.1", "--control", "unix:"+control,
		"--wsgi", "upgradeapp:application", "--chdir", dir, "--python", debianPython, "--workers", "2")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	var pidsMu sync.Mutex
	pids := []int{cmd.Process.Pid}
	t.Cleanup(func() {
		pidsMu.Lock()
		defer pidsMu.Unlock()
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	logText := func() string {
		b, _ := os.ReadFile(logfile)
		o, _ := os.ReadFile(out.Name())
		return string(b) + string(o)
	}
	waitLogs := func(re string, n int) []string {
		t.Helper()
		return waitFileLogs(t, logfile, re, n, logText)
	}
	waitGone := func(pid int) {
		t.Helper()
		waitUntil(60*time.Second, func() bool { return gone(pid) }, func() { t.Fatalf("pid %d did not exit; log:\n%s", pid, logText()) })
	}
	readPid := func() int {
		b, _ := os.ReadFile(pidfile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	port := waitLogs(`Site starting on (\d+)`, 1)[1]
	site := "http://127.0.0.1:" + port + "/"
	get := func() string {
		t.Helper()
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(site)
		if err != nil {
			t.Fatalf("GET: %v; log:\n%s", err, logText())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "version 0" {
		t.Fatalf("before the upgrades: %q", got)
	}

	load := startLoad(site, 4)
	for i := 1; i <= 5; i++ {
		version := fmt.Sprintf("version %d", i)
		write(version)
		old := readPid()
		if i == 3 {
			os.WriteFile(slow, []byte("2"), 0o644)
		}
		syscall.Kill(old, syscall.SIGUSR2)
		if i == 3 {
			waitLogs(`Received SIGUSR2, upgrading`, i)
			syscall.Kill(old, syscall.SIGUSR2)
			waitLogs(`Received SIGUSR2 during an upgrade; refusing it\.`, 1)
		}
		m := waitLogs(`Upgrade complete: .* pid=(\d+)`, i)
		os.WriteFile(slow, []byte("0"), 0o644)
		pid, _ := strconv.Atoi(m[1])
		pidsMu.Lock()
		pids = append(pids, pid)
		pidsMu.Unlock()
		waitGone(old)
		if got := readPid(); got != pid {
			t.Errorf("upgrade %d: the pid file says %d, want the new process's %d", i, got, pid)
		}
		if got := get(); got != version {
			t.Fatalf("after upgrade %d: %q", i, got)
		}
		// The control socket, a Unix socket, was handed over too: the
		// predecessor's exit did not remove it.
		c, err := net.DialTimeout("unix", control, 5*time.Second)
		if err != nil {
			t.Fatalf("after upgrade %d, the control socket: %v", i, err)
		}
		c.Close()
	}
	// A successor that cannot start: it is stopped, and the server
	// serves on.
	os.WriteFile(app, []byte("def broken(:\n"), 0o644)
	last := readPid()
	syscall.Kill(last, syscall.SIGUSR2)
	waitLogs(`The upgrade failed; this process serves on\.`, 1)
	if got := get(); got != "version 5" || gone(last) {
		t.Errorf("after a failed upgrade: %q (pid %d gone: %v)", got, last, gone(last))
	}
	load.check(t, "5 upgrades")
	// A stop during an upgrade stops the successor too: it must not
	// outlive a stop it was not asked for.
	write("version 6")
	os.WriteFile(slow, []byte("3"), 0o644)
	syscall.Kill(last, syscall.SIGUSR2)
	waitLogs(`Received SIGUSR2, upgrading`, 7)
	started := waitLogs(`torsion web starting up \(pid (\d+)`, 8)
	successor, _ := strconv.Atoi(started[1])
	pidsMu.Lock()
	pids = append(pids, successor)
	pidsMu.Unlock()
	syscall.Kill(last, syscall.SIGTERM)
	waitGone(last)
	waitGone(successor)
	if _, err := os.Stat(pidfile); err == nil {
		t.Errorf("the pid file outlived the last server")
	}
	if _, err := os.Stat(control); err == nil {
		t.Errorf("the control socket outlived the last server")
	}
}
