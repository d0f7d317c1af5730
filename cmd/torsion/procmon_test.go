package main

import (
	"strconv"
	"syscall"
	"testing"
)

// TestProcmon: torsion procmon keeps a torsion web instance and a command
// that keeps failing running: the instance serves, comes back after a
// SIGKILL, the failing one is started again with a growing wait, and a
// SIGTERM stops them all.
func TestProcmon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := start(t, nil, "procmon",
		"--run", "web1="+binary+" web --port tcp:0:interface=127.0.0.1 --path "+dir,
		"--run", "flaky=sh -c 'echo tick; exit 3'")
	port := p.waitLog(`\[web1\] .*Site starting on (\d+)`)[1]
	if got := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:"+port+"/"); got != "200" {
		t.Errorf("web1: %s", got)
	}
	p.waitLogs(`\[flaky\] tick`, 3)
	p.waitLog(`\[flaky\] WARN: restarting the process in=`)
	pid := p.waitLog(`\[web1\] process started pid=(\d+)`)[1]
	kill(t, pid)
	port = p.waitLogs(`\[web1\] .*Site starting on (\d+)`, 2)[1][1]
	if got := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:"+port+"/"); got != "200" {
		t.Errorf("web1 after a SIGKILL: %s", got)
	}
	p.stopOK()
	restarted, _ := strconv.Atoi(p.waitLogs(`\[web1\] process started pid=(\d+)`, 2)[1][1])
	if err := syscall.Kill(restarted, 0); err == nil {
		t.Errorf("web1 (pid %d) outlived procmon", restarted)
	}
}
