// Package procmon keeps processes running, as Twisted's
// twisted.runner.procmon (twistd procmon) does: each Process is a service
// that runs a command, logs its output line by line, starts it again when
// it exits (at once after it ran a while, with a doubling wait while it
// keeps dying soon after it starts), and stops it with SIGTERM to its
// process group, then SIGKILL when the stop's context ends.
package procmon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/torsion-server/torsion/internal/backoff"
)

// Process is one command kept running.
type Process struct {
	Name string       // in log lines
	Argv []string     // the command and its arguments
	Dir  string       // its working directory; empty: torsion's
	Env  []string     // added to torsion's environment
	Log  *slog.Logger // its lines; the procmon plugin names the process as their system

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current run ends
	stopped chan struct{} // closed when Stop begins
	done    chan struct{} // closed when supervision ends
	// clock is the time supervision reads and waits on: backoff.System,
	// or a test's, which records the waits and ends them at once.
	clock backoff.Clock
}

// restartPolicy is the wait before a command is started again: at once
// after a run that lasted a second, or after its first quick death, then
// doubling from 100 ms to a minute while it keeps dying or failing to
// start (the WSGI worker slots' policy, with a longer ceiling).
func restartPolicy() backoff.Policy {
	return backoff.Policy{Min: 100 * time.Millisecond, Max: time.Minute, Healthy: time.Second}
}

// Start starts the command; it fails if the command cannot be started at
// all (not found, say).
func (p *Process) Start(ctx context.Context) error {
	if len(p.Argv) == 0 {
		return errors.New("procmon: no command")
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	p.stopped, p.done = make(chan struct{}), make(chan struct{})
	if err := p.run(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	go p.supervise()
	return nil
}

// run starts one run of the command.
func (p *Process) run() error {
	cmd := exec.Command(p.Argv[0], p.Argv[1:]...)
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, in, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = in, in
	err = cmd.Start()
	in.Close()
	if err != nil {
		out.Close()
		return err
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	p.Log.Info("process started", "pid", cmd.Process.Pid)
	go p.copyOutput(out)
	go func() {
		err := cmd.Wait()
		p.Log.Info("process exited", "pid", cmd.Process.Pid, "status", status(cmd.ProcessState, err))
		close(exited)
	}()
	return nil
}

func status(ps *os.ProcessState, err error) string {
	if ps == nil {
		return err.Error()
	}
	return ps.String()
}

// copyOutput logs what the process prints, line by line.
func (p *Process) copyOutput(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.Log.Info(sc.Text())
	}
}

// supervise starts the command again each time it exits, until Stop.
func (p *Process) supervise() {
	defer close(p.done)
	clock := p.clock
	if clock == nil {
		clock = backoff.System
	}
	policy := restartPolicy()
	for {
		born := clock.Now()
		p.mu.Lock()
		exited := p.exited
		p.mu.Unlock()
		select {
		case <-exited:
		case <-p.stopped:
			return
		}
		wait := policy.Exited(clock.Now().Sub(born))
		for {
			if wait > 0 {
				p.Log.Warn("restarting the process", "in", wait)
			}
			select {
			case <-clock.After(wait):
			case <-p.stopped:
				return
			}
			err := p.run()
			if err == nil {
				break
			}
			wait = policy.Failed()
			p.Log.Error("the process did not start", "err", err)
		}
	}
}

// Stop stops supervising and ends the process: SIGTERM to its process
// group, then SIGKILL when ctx ends.
func (p *Process) Stop(ctx context.Context) error {
	close(p.stopped)
	<-p.done
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		return nil
	default:
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		return fmt.Errorf("%s did not stop in time: %w", p.Name, ctx.Err())
	}
}

// String names the service in messages.
func (p *Process) String() string { return "process " + p.Name }
