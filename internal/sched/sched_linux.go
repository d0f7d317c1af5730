package sched

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Set gives every thread of the process the policy p. Threads started
// later inherit it from the thread that starts them, and so do child
// processes, such as torsion's Python workers.
func Set(p Policy) error {
	policy := unix.SCHED_NORMAL
	if p == Batch {
		policy = unix.SCHED_BATCH
	}
	// Threads may start while we go through them: repeat until a pass finds
	// every thread done.
	done := map[int]bool{}
	for {
		tids, err := threads()
		if err != nil {
			return err
		}
		fresh := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			fresh++
			done[tid] = true
			// Read first, to keep the nice value.
			attr, err := unix.SchedGetAttr(tid, 0)
			if err == nil {
				attr.Policy = uint32(policy)
				err = unix.SchedSetAttr(tid, attr, 0)
			}
			if err != nil && err != unix.ESRCH { // ESRCH: the thread has ended
				return fmt.Errorf("setting the %s scheduling policy: %w", p, err)
			}
		}
		if fresh == 0 {
			return nil
		}
	}
}

// Get returns the policy of a thread or process. A policy that Set does not
// give, such as a real-time one, comes back named by its number.
func Get(tid int) (Policy, error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return "", fmt.Errorf("reading the scheduling policy of %d: %w", tid, err)
	}
	switch attr.Policy {
	case unix.SCHED_NORMAL:
		return Normal, nil
	case unix.SCHED_BATCH:
		return Batch, nil
	}
	return Policy(fmt.Sprintf("policy %d", attr.Policy)), nil
}

func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("listing threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
