package workers

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/torsion-server/torsion/amp"
	"github.com/torsion-server/torsion/control"
)

// answers makes three requests that wait for each other in the
// application, so that each of three workers takes one, and returns the
// bodies: "PID GREETING TICKS".
func answers(t *testing.T, s *testPool) []string {
	t.Helper()
	dir := t.TempDir()
	out := make([]string, 3)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() { out[i] = s.get(t, "/together?"+dir) })
	}
	wg.Wait()
	return out
}

// TestControl: a control line reaches every worker before Control
// returns; a handler that raises fails the line, naming the workers, and
// the line is not kept; a worker killed after a line is replaced by one
// that was given the line before it served.
func TestControl(t *testing.T) {
	s := startPool(t, Config{App: "controlled:application", Workers: 3}, nil)
	reply, err := s.pool.Control(context.Background(), []byte("bonjour"))
	if err != nil || reply != "greeting is now: bonjour" {
		t.Fatalf("Control = %q, %v", reply, err)
	}
	pids := map[string]bool{}
	for _, a := range answers(t, s) {
		f := strings.Fields(a)
		if len(f) != 3 || f[1] != "bonjour" {
			t.Errorf("after the line: %q", a)
		} else {
			pids[f[0]] = true
		}
	}
	if len(pids) != 3 {
		t.Errorf("answers came from %d workers, want 3", len(pids))
	}

	_, err = s.pool.Control(context.Background(), []byte("raise"))
	var he *HandlerError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "ValueError: refused: raise") || strings.Count(err.Error(), "worker ") != 3 {
		t.Errorf("a handler that raises: %v", err)
	}

	// Kill the worker that serves first; its replacement says bonjour.
	s.pool.mu.Lock()
	victim := s.pool.workers[0]
	s.pool.mu.Unlock()
	syscall.Kill(victim.pid, syscall.SIGKILL)
	waitFor(t, func() bool { return strings.Count(s.log.String(), "worker started worker=1") == 2 }, "worker not replaced:\n%s", s.log)
	body := s.get(t, "/")
	if f := strings.Fields(body); len(f) != 3 || f[0] == strconv.Itoa(victim.pid) || f[1] != "bonjour" {
		t.Errorf("the replacement answers %q", body)
	}
	if len(s.pool.ctlLog) != 1 {
		t.Errorf("%d lines kept, want 1 (the one that failed is not)", len(s.pool.ctlLog))
	}
	// A reload's new workers are given the line before they serve.
	if err := s.pool.Reload(context.Background()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	for _, a := range answers(t, s) {
		if f := strings.Fields(a); len(f) != 3 || f[1] != "bonjour" {
			t.Errorf("after a reload: %q", a)
		}
	}
}

// TestTimer: a timer runs in every worker beside requests; one that
// raises is logged with its traceback and goes on.
func TestTimer(t *testing.T) {
	s := startPool(t, Config{App: "controlled:application", Workers: 2}, nil)
	waitFor(t, func() bool {
		body := s.get(t, "/")
		f := strings.Fields(body)
		n, _ := strconv.Atoi(f[len(f)-1])
		return n >= 5
	}, "the timer did not go on past its failure")
	waitFor(t, func() bool { return strings.Count(s.log.String(), "RuntimeError: the second tick fails") == 2 }, "each worker's failing tick is not logged:\n%s", s.log)
	if !strings.Contains(s.log.String(), "timer tick failed; it goes on") {
		t.Errorf("no timer failure line:\n%s", s.log)
	}
}

// TestControlAMP: an AMP command runs in every worker with the
// application's locator; a declared error comes back as an *amp.Error and
// changes nothing; of the commands kept for later workers, only the last
// of each name is.
func TestControlAMP(t *testing.T) {
	s := startPool(t, Config{App: "controlled:application", Workers: 3}, nil)
	ctx := context.Background()
	for _, g := range []string{"first", "second"} {
		if _, err := control.RunAMP(ctx, s.pool, "SetGreeting", amp.Box{"greeting": []byte(g)}); err != nil {
			t.Fatalf("SetGreeting %s: %v", g, err)
		}
	}
	r, err := control.RunAMP(ctx, s.pool, "SetGreeting", amp.Box{"greeting": []byte("")})
	var ae *amp.Error
	if !errors.As(err, &ae) || ae.Code != "EMPTY" {
		t.Errorf("a declared error: %v %v", r, err)
	}
	for _, a := range answers(t, s) {
		if f := strings.Fields(a); len(f) != 3 || f[1] != "second" {
			t.Errorf("after two SetGreeting: %q", a)
		}
	}
	if len(s.pool.ctlLog) != 1 || !bytes.Contains(s.pool.ctlLog[0].msg, []byte("second")) {
		t.Errorf("kept %d messages, want the last SetGreeting only", len(s.pool.ctlLog))
	}
}

// TestWorkerAMPTwisted: torsion_worker's torsion.amp, which applications use
// for --amp in place of Twisted's, against Debian's Twisted: every
// argument type encodes to Twisted's bytes and decodes Twisted's, and a
// command box made by Twisted is run and answered in a form Twisted reads
// (testdata/test_amp_twisted.py).
func TestWorkerAMPTwisted(t *testing.T) {
	t.Parallel()
	if err := exec.Command(python, "-c", "import twisted.protocols.amp").Run(); err != nil {
		t.Fatalf("Twisted is missing (scripts/test installs python3-twisted): %v", err)
	}
	cmd := exec.Command(python, "-m", "unittest", "-v", "test_amp_twisted")
	cmd.Dir = "testdata"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
