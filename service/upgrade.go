package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/torsion-server/torsion/internal/handover"
)

// An upgrade of the binary in place (SIGUSR2): the running process starts
// its successor — the executable at the path it was started from, which
// may now hold a new build, with the same arguments, environment and
// working directory — handing it every listening socket (see
// handover.HandOver) and the write end of a pipe whose descriptor
// $TORSION_UPGRADE_READY names. The successor starts as usual, except that
// it takes the sockets instead of binding them, and writes "READY\n" to
// the pipe once it serves. The predecessor then stops accepting and
// drains, as on SIGTERM; connections waiting in the sockets' queues go to
// the successor. If the successor exits or is not ready within the
// upgrade timeout, it is stopped and the predecessor serves on.
const readyEnv = "TORSION_UPGRADE_READY"

// startDir is the working directory the process started in: its
// successor's, whatever the service changed since.
var startDir, _ = os.Getwd()

// successor is a process started by an upgrade.
type successor struct {
	pid int
	err error
}

// upgrade starts a successor and waits until it serves or fails.
func upgrade(ctx context.Context, n *notifier, timeout time.Duration) successor {
	exe, err := os.Executable()
	if err != nil {
		return successor{err: fmt.Errorf("finding the executable: %w", err)}
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Dir = startDir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = n.environ(os.Environ())
	files, err := handover.HandOver(cmd)
	if err != nil {
		return successor{err: err}
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	r, w, err := os.Pipe()
	if err != nil {
		return successor{err: err}
	}
	defer r.Close()
	cmd.Env = append(cmd.Env, readyEnv+"="+strconv.Itoa(3+len(cmd.ExtraFiles)))
	cmd.ExtraFiles = append(cmd.ExtraFiles, w)
	err = cmd.Start()
	w.Close()
	if err != nil {
		return successor{err: fmt.Errorf("starting %s: %w", exe, err)}
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		switch {
		case line == "READY\n":
			ready <- nil
		case err != nil:
			ready <- errors.New("it exited, or closed its end of the pipe, before it was ready")
		default:
			ready <- fmt.Errorf("it said %q instead of READY", line)
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err = <-ready:
	case <-t.C:
		err = fmt.Errorf("it was not ready within %s", timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return successor{err: fmt.Errorf("the new process (pid %d): %w", cmd.Process.Pid, err)}
	}
	pid := cmd.Process.Pid
	cmd.Process.Release() // it outlives us
	return successor{pid: pid}
}

// tellPredecessor tells the process that started this one for an upgrade,
// if one did, that this one serves, and closes what it handed over and
// nothing took.
func tellPredecessor() error {
	fd := os.Getenv(readyEnv)
	if fd == "" {
		return nil
	}
	os.Unsetenv(readyEnv)
	handover.CloseUnclaimed()
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		return fmt.Errorf("$%s %q: want a file descriptor", readyEnv, fd)
	}
	f := os.NewFile(uintptr(n), "upgrade-ready")
	defer f.Close()
	_, err = f.WriteString("READY\n")
	return err
}

// Successor reports whether this process was started by an upgrade, to
// take over from its parent, and has yet to tell it that it serves.
func Successor() bool { return os.Getenv(readyEnv) != "" }

// environ is env for a successor: with systemd's notification variables
// as this process found them, so that it can notify in its own name.
func (n *notifier) environ(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, readyEnv+"=") {
			out = append(out, kv)
		}
	}
	if n.socket != "" {
		out = append(out, "NOTIFY_SOCKET="+n.socket)
		if n.watchdog > 0 {
			out = append(out, "WATCHDOG_USEC="+strconv.FormatInt(n.watchdog.Microseconds(), 10))
		}
	}
	return out
}
