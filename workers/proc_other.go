//go:build !linux

package workers

import "syscall"

// workerProcAttr: a worker leads its own process group, so that a
// terminal's ^C reaches torsion only and killing the group ends what the
// worker started. Without Linux's parent-death signal, a worker of a
// torsion killed outright ends when it next reads its socket and finds it
// closed.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
