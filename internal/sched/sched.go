// Package sched sets the CPU scheduling policy of the whole process.
//
// torsion's front end and its Python workers hand work to each other
// through sockets. Under Linux's default policy a process woken by such a
// hand-off preempts the one that woke it, so on a busy core the two take
// turns request by request, and each turn is a context switch. Under
// SCHED_BATCH a woken process waits for the running one to block or use up
// its time slice, so each side takes a batch of requests per turn. Nice
// values and fairness are unchanged; only wake-up preemption goes.
package sched

import (
	"errors"
	"fmt"
)

// Policy is a scheduling policy for Set.
type Policy string

// Policies.
const (
	Normal Policy = "normal" // the default time-sharing policy (SCHED_OTHER)
	Batch  Policy = "batch"  // SCHED_BATCH: woken threads do not preempt
)

// ErrUnsupported is returned by Set where the platform has no such policy.
var ErrUnsupported = errors.New("scheduling policies are supported on Linux only")

// Parse returns the Policy named s, or an error that lists the choices.
func Parse(s string) (Policy, error) {
	switch p := Policy(s); p {
	case Normal, Batch:
		return p, nil
	}
	return "", fmt.Errorf("want batch or normal, not %q", s)
}
