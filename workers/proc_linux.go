package workers

import "syscall"

// workerProcAttr: a worker leads its own process group, so that a
// terminal's ^C reaches torsion only and killing the group ends what the
// worker started; and it dies with torsion, should torsion be killed
// outright.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
