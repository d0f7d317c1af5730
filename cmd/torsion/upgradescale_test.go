package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestUpgradeKeepsWorkers: a pool that has grown with its load (--workers
// 1:3) keeps its size through an upgrade in place (SIGUSR2): the new
// process starts as many workers as the old one had.
func TestUpgradeKeepsWorkers(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slow.py"), []byte(`import time


def app(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [])
    return [b"ok"]
`), 0o644)
	logfile := filepath.Join(dir, "torsion.log")
	cmd := exec.Command(binary, "--logfile", logfile, "web", "--port", "tcp:0:interface=127.0.0.1",
		"--wsgi", "slow:app", "--chdir", dir, "--python", debianPython,
		"--workers", "1:3", "--scale-up-wait", "20ms", "--scale-up-interval", "100ms", "--scale-down-idle", "60s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	waitLogs := func(re string, n int) []string {
		t.Helper()
		return waitFileLogs(t, logfile, re, n, func() string { b, _ := os.ReadFile(logfile); return string(b) })
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		b, _ := os.ReadFile(logfile)
		for _, m := range regexp.MustCompile(`starting up \(pid (\d+)`).FindAllStringSubmatch(string(b), -1) {
			if pid, _ := strconv.Atoi(m[1]); pid != cmd.Process.Pid {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	site := "http://127.0.0.1:" + waitLogs(`Site starting on (\d+)`, 1)[1] + "/?1"
	waitLogs(`WSGI application running .*workers=1 `, 1)
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() { curl(t, site) })
	}
	waitLogs(`adding a worker: requests wait for one`, 2)
	wg.Wait()
	cmd.Process.Signal(syscall.SIGUSR2)
	waitLogs(`Upgrade complete`, 1)
	waitLogs(`WSGI application running .*workers=3 `, 1)
	pid, _ := strconv.Atoi(waitLogs(`starting up \(pid (\d+)`, 2)[1])
	waitUntil(30*time.Second, func() bool { return gone(cmd.Process.Pid) }, func() { t.Errorf("the old process did not exit") })
	syscall.Kill(pid, syscall.SIGTERM)
	waitUntil(30*time.Second, func() bool { return gone(pid) }, func() { t.Errorf("the new process did not stop") })
}
