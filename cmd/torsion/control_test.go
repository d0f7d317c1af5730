package main

import (
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// controlLine sends line to the control port and returns the answer.
func controlLine(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, line+"\n")
	answer, err := io.ReadAll(c) // the port closes after its answer
	if err != nil {
		t.Fatalf("control port: %v", err)
	}
	return string(answer)
}

// TestSeedControl runs the seed's control example with three workers: a
// line sent to the control port becomes every worker's greeting, a worker
// killed afterwards is replaced by one with the new greeting, and what is
// malformed is refused without breaking anything.
func TestSeedControl(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--control", "tcp:0:interface=127.0.0.1",
		"--wsgi", "control.application", "--chdir", "../../examples/control", "--python", debianPython, "--workers", "3")
	site := "http://127.0.0.1:" + p.waitLog(`Site starting on (\d+)`)[1] + "/"
	ctl := "127.0.0.1:" + p.waitLog(`Control starting on (\d+)`)[1]
	if got := curl(t, site); got != "hello world" {
		t.Fatalf("before: %q", got)
	}
	if got := controlLine(t, ctl, "hello from the control port"); got != "greeting is now: hello from the control port\r\n" {
		t.Fatalf("control answer %q", got)
	}
	for i := 0; i < 10; i++ {
		if got := curl(t, site); got != "hello from the control port" {
			t.Fatalf("after the line, request %d: %q", i, got)
		}
	}
	// The worker that takes requests first is killed; its replacement
	// was given the line before its first request.
	pid := p.waitLog(`worker started worker=1 pid=(\d+)`)[1]
	kill(t, pid)
	p.waitLogs(`worker started worker=1 pid=`, 2)
	if got := curl(t, site); got != "hello from the control port" {
		t.Errorf("from the replacement of a killed worker: %q", got)
	}
	// A line over 16 KiB is refused; the port and the site go on.
	if got := controlLine(t, ctl, strings.Repeat("x", 20000)); got != "error: the line is longer than 16384 bytes\r\n" {
		t.Errorf("a long line: %q", got)
	}
	if got := controlLine(t, ctl, "again"); got != "greeting is now: again\r\n" {
		t.Errorf("after a long line: %q", got)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d; log:\n%s", code, p.logText())
	}
}

// TestControlWithoutHandler: an application that registered no handler
// answers a control line with an error that says so.
func TestControlWithoutHandler(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--control", "tcp:0:interface=127.0.0.1",
		"--wsgi", "wsgi_hello.application", "--chdir", "../../examples/wsgi", "--python", debianPython, "--workers", "2")
	ctl := "127.0.0.1:" + p.waitLog(`Control starting on (\d+)`)[1]
	got := controlLine(t, ctl, "hello")
	if !strings.HasPrefix(got, "error: ") || !strings.Contains(got, "no control handler (torsion.control)") || strings.Count(got, "\n") != 1 {
		t.Errorf("answer %q", got)
	}
	if out, code := run(t, "web", "--control", "tcp:0", "--path", "."); code != 2 || !strings.Contains(out, "--control needs --wsgi") {
		t.Errorf("--control without --wsgi: exit %d, %q", code, out)
	}
}

// TestSeedScheduled runs the seed's scheduled example with three workers:
// the greeting carries the time, set every second by a timer in each
// worker, so it is never more than about a second old.
func TestSeedScheduled(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "scheduled.application",
		"--chdir", "../../examples/control", "--python", debianPython, "--workers", "3")
	site := "http://127.0.0.1:" + p.port() + "/"
	greeting := regexp.MustCompile(`^hello world, it's (\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})$`)
	first := ""
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got := curl(t, site)
		m := greeting.FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("greeting %q", got)
		}
		stamp, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006", m[1], time.Local)
		if err != nil {
			t.Fatal(err)
		}
		// ctime has whole seconds; a loaded machine may run the timer late.
		if age := time.Since(stamp); age > 3*time.Second || age < -time.Second {
			t.Errorf("greeting %q is %v old", got, age)
		}
		if first == "" {
			first = got
		} else if got != first {
			break // the timer moved it on
		}
		if time.Now().After(deadline) {
			t.Fatalf("the greeting stayed %q", first)
		}
	}
}

// kill sends SIGKILL to the process whose pid is given in decimal.
func kill(t *testing.T, pid string) {
	t.Helper()
	n, err := strconv.Atoi(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}
