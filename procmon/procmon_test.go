package procmon

import (
	"context"
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
