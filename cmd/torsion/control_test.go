package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/torsion-server/torsion/amp"
	"github.com/torsion-server/torsion/control"
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
	p.stopOK()
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
	if out, code := run(t, "web", "--control", "tcp:0", "--path", "."); code != 2 || !strings.Contains(out, "--control and --amp need --wsgi") {
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

// TestSeedConfigure runs the seed's AMP example with three workers: the
// seed's own client program, run by Twisted, reads 0.0 0.0, sets 0.5 and
// 0.5 and reads them back; then about half of the greetings are
// capitalised and about half exclaimed, also from a worker that replaced
// one killed after the change; and what is malformed is refused.
func TestSeedConfigure(t *testing.T) {
	t.Parallel()
	needPython(t, "pyramid", "twisted")
	dir, err := filepath.Abs("../../examples/configure")
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--amp", "tcp:0:interface=127.0.0.1",
		"--wsgi", "configure.application", "--chdir", dir, "--python", debianPython, "--workers", "3")
	site := "http://127.0.0.1:" + p.waitLog(`Site starting on (\d+)`)[1] + "/"
	ampPort := p.waitLog(`AMP control starting on (\d+)`)[1]

	// The seed's client, unchanged but for its port (8001 there).
	src, err := os.ReadFile(filepath.Join(dir, "configure_client.py"))
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(t.TempDir(), "configure_client.py")
	os.WriteFile(client, bytes.Replace(src, []byte(`"127.0.0.1", 8001`), []byte(`"127.0.0.1", `+ampPort), 1), 0o644)
	cmd := exec.Command(debianPython, client)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir)
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "0.0 0.0\n0.5 0.5\n" {
		t.Fatalf("the seed's client: %v\n%s", err, out)
	}

	// count makes n requests, conc at a time, and counts the greetings
	// that are capitalised and those that are exclaimed.
	count := func(n, conc int) (capitalized, exclaimed int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for range n / conc {
					resp, err := http.Get(site)
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					mu.Lock()
					if strings.HasPrefix(string(b), "Hello") {
						capitalized++
					}
					if strings.HasSuffix(string(b), "!") {
						exclaimed++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return
	}
	// With p = 0.5, 600 greetings hold 300 ± 12 of each; the bounds are
	// eight standard deviations away: no flake in a lifetime.
	if c, e := count(600, 6); c < 200 || c > 400 || e < 200 || e > 400 {
		t.Errorf("of 600 greetings, %d capitalised and %d exclaimed; want about 300", c, e)
	}
	// The worker that takes requests first is killed; its replacement was
	// given the settings: 200 greetings hold 100 ± 7 of each.
	kill(t, p.waitLog(`worker started worker=1 pid=(\d+)`)[1])
	p.waitLogs(`worker started worker=1 pid=`, 2)
	if c, e := count(200, 1); c < 50 || c > 150 || e < 50 || e > 150 {
		t.Errorf("from the replacement of a killed worker, of 200 greetings %d capitalised and %d exclaimed", c, e)
	}

	// Malformed input: an unknown command, a value of the wrong type, and
	// a box that breaks the format.
	nc, err := net.Dial("tcp", "127.0.0.1:"+ampPort)
	if err != nil {
		t.Fatal(err)
	}
	c := amp.NewConn(nc, nil, nil)
	go c.Serve()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ae *amp.Error
	if _, err := c.Call(ctx, "Reboot", nil); !errors.As(err, &ae) || ae.Code != amp.CodeUnhandled {
		t.Errorf("an unknown command: %v", err)
	}
	if _, err := c.Call(ctx, "SetCapitalize", amp.Box{"value": []byte("lots")}); !errors.As(err, &ae) || ae.Code != control.CodeWorkerFailed ||
		!strings.Contains(ae.Description, "ValueError") {
		t.Errorf("a value that is no float: %v", err)
	}
	raw, err := net.Dial("tcp", "127.0.0.1:"+ampPort)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	raw.Write([]byte("\x01\x00" + strings.Repeat("k", 256))) // a key over 255 bytes
	if n, err := raw.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("a malformed box: read %d, %v; want the connection closed", n, err)
	}
	// Still 0.5 everywhere: the failed Set was not applied.
	if r, err := c.Call(ctx, "GetCapitalize", nil); err != nil || string(r["value"]) != "0.5" {
		t.Errorf("GetCapitalize after the failures: %v %v", r, err)
	}
	p.stopOK()
}
