package sched

import (
	"os/exec"
	"testing"
)

func TestSet(t *testing.T) {
	for _, p := range []Policy{Batch, Normal} {
		if err := Set(p); err != nil {
			t.Fatalf("Set(%s): %v", p, err)
		}
		tids, err := threads()
		if err != nil {
			t.Fatal(err)
		}
		for _, tid := range tids {
			if got, err := Get(tid); got != p {
				t.Errorf("after Set(%s): thread %d has %q (%v)", p, tid, got, err)
			}
		}
		// A child process inherits the policy.
		cmd := exec.Command("sleep", "5")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		got, err := Get(cmd.Process.Pid)
		cmd.Process.Kill()
		cmd.Wait()
		if got != p {
			t.Errorf("after Set(%s): a child has %q (%v)", p, got, err)
		}
	}
}
