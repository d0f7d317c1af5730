package sched

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// policyOf reads a task's scheduling policy from /proc (field 41 of stat).
func policyOf(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The command name, field 2, may hold spaces; count from after it.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	n, err := strconv.Atoi(fields[41-3])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSet(t *testing.T) {
	if runtime.GOOS != "linux" {
		if err := Set(Batch); err != ErrUnsupported {
			t.Fatalf("Set(Batch) = %v, want ErrUnsupported", err)
		}
		return
	}
	const schedBatch, schedOther = 3, 0
	for _, tt := range []struct {
		p    Policy
		want int
	}{{Batch, schedBatch}, {Normal, schedOther}} {
		if err := Set(tt.p); err != nil {
			t.Fatalf("Set(%s): %v", tt.p, err)
		}
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			if got := policyOf(t, "/proc/self/task/"+task.Name()); got != tt.want {
				t.Errorf("%s: thread %s has policy %d, want %d", tt.p, task.Name(), got, tt.want)
			}
		}
		// A child process inherits the policy.
		cmd := exec.Command("sleep", "5")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		got := policyOf(t, "/proc/"+strconv.Itoa(cmd.Process.Pid))
		cmd.Process.Kill()
		cmd.Wait()
		if got != tt.want {
			t.Errorf("%s: child has policy %d, want %d", tt.p, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Policy
		err  string
	}{
		{"batch", Batch, ""},
		{"normal", Normal, ""},
		{"fifo", "", `want batch or normal, not "fifo"`},
		{"", "", `want batch or normal, not ""`},
	} {
		got, err := Parse(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
			t.Errorf("Parse(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}
