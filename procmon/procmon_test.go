package procmon

import (
	"context"
	"fmt"
	"log/slog"
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
	waits := make(chan time.Duration, 64)
	now := make(chan time.Time)
	close(now) // every wait ends at once
	p := &Process{Name: "quitter", Argv: []string{"/bin/true"},
		after: func(d time.Duration) <-chan time.Time { waits <- d; return now }}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	for len(got) < 5 {
		select {
		case d := <-waits:
			got = append(got, d)
		case <-time.After(20 * time.Second):
			t.Fatalf("waits so far %v", got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Stop(ctx)
	ms := time.Millisecond
	if want := []time.Duration{0, 100 * ms, 200 * ms, 400 * ms, 800 * ms}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", got, want)
	}
}
