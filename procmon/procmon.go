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
}

// healthy is how long a run must last for the next to start at once.
const healthy = time.Second

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
	wait := time.Duration(0)
	for {
		born := time.Now()
		p.mu.Lock()
		exited := p.exited
		p.mu.Unlock()
		select {
		case <-exited:
		case <-p.stopped:
			return
		}
		if time.Since(born) >= healthy {
			wait = 0
		} else {
			wait = min(max(2*wait, 100*time.Millisecond), time.Minute)
		}
		for {
			if wait > 0 {
				p.Log.Warn("restarting the process", "in", wait)
			}
			select {
			case <-time.After(wait):
			case <-p.stopped:
				return
			}
			if err := p.run(); err == nil {
				break
			} else {
				wait = min(max(2*wait, 100*time.Millisecond), time.Minute)
				p.Log.Error("the process did not start", "err", err)
			}
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
