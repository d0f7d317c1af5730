package procmon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/testutil"
	"github.com/torsion-server/torsion/logging"
)

func TestProcess(t *testing.T) {
	var logs testutil.SyncBuffer
	log, _ := logging.New(&logs, "text", slog.LevelInfo)
	p := &Process{Name: "sleeper", Argv: []string{"/bin/sh", "-c", "echo ready; exec sleep 60"}, Log: log}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "ready"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no output:\n%s", logs.String())
		}
	}
	p.mu.Lock()
	pid := p.cmd.Process.Pid
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("pid %d outlived Stop", pid)
	}
	if err := (&Process{Name: "missing", Argv: []string{"/no/such/command"}}).Start(context.Background()); err == nil {
		t.Error("a command that cannot start started")
	}
}

// TestRestartWaits: a command that keeps dying as soon as it starts is
// started again at once the first time, then after waits that double
// (the package comment's promise; a constant wait once passed the tests),
// on a clock the test holds.
func TestRestartWaits(t *testing.T) {
	clock := &testutil.StillClock{}
	p := &Process{Name: "quitter", Argv: []string{"/bin/true"}, clock: clock}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(20*time.Second, func() bool { return len(clock.Waits()) >= 5 }, func() { t.Fatalf("waits so far %v", clock.Waits()) })
	got := clock.Waits()[:5]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Stop(ctx)
	ms := time.Millisecond
	if want := []time.Duration{0, 100 * ms, 200 * ms, 400 * ms, 800 * ms}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", got, want)
	}
}

// TestRestartAfterFailedStarts: a command that can no longer be started
// (its program was removed) is tried again after waits that go on
// doubling, each failure logged, on a clock the test holds.
func TestRestartAfterFailedStarts(t *testing.T) {
	prog := filepath.Join(t.TempDir(), "quits")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	log, _ := logging.New(&logs, "text", slog.LevelInfo)
	clock := &testutil.StillClock{}
	p := &Process{Name: "quits", Argv: []string{prog}, Log: log, clock: clock}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.Remove(prog)
	testutil.WaitUntil(20*time.Second, func() bool { return strings.Count(logs.String(), "the process did not start") >= 3 },
		func() { t.Fatalf("no failed starts:\n%s", &logs) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Stop(ctx)
	got := clock.Waits()
	for i := 2; i < len(got); i++ {
		if got[i] != min(2*got[i-1], time.Minute) {
			t.Fatalf("waits %v, want each double the one before from the third on", got)
		}
	}
}
