package wsgi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// This file is the control channel's side of the pool: a line passed to
// every worker's torsion.control handler, over each worker's control
// socket (PROTOCOL.md), and replayed to workers that start later.

const (
	// controlTimeout bounds a worker's answer to one control line.
	controlTimeout = 10 * time.Second
	// maxControlLog bounds the lines kept for replay.
	maxControlLog = 10000
)

// ErrControlLogFull is returned by Control once maxControlLog lines have
// been applied: a worker that starts later could not be given them all.
var ErrControlLogFull = errors.New("the control log is full (10,000 lines); restart torsion to clear it")

// HandlerError is a control line that the application's handler refused:
// it raised, and Traceback says how.
type HandlerError struct{ Traceback string }

func (e *HandlerError) Error() string {
	lines := strings.Split(strings.TrimRight(e.Traceback, "\n"), "\n")
	return "the handler raised " + strings.TrimSpace(lines[len(lines)-1])
}

// Control passes line to the control handler (torsion.control) of every
// live worker, and returns the first worker's answer once all have
// answered. If any worker fails it (its handler raised, it did not answer
// within 10 seconds, it died), Control returns an error naming each one,
// and the line is not kept: a worker that failed may differ from the
// others until a line sets the state again. A line that succeeded
// everywhere is kept, and every worker that starts later (a restart, a
// recycled worker) is given all kept lines, in order, before it serves its
// first request, so a change is never undone by a restart.
func (p *Pool) Control(ctx context.Context, line []byte) (string, error) {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if len(p.ctlLog) >= maxControlLog {
		return "", ErrControlLogFull
	}
	p.mu.Lock()
	var ws []*worker
	for _, w := range p.workers {
		if w != nil {
			ws = append(ws, w)
		}
	}
	p.mu.Unlock()
	if len(ws) == 0 {
		return "", errors.New("no worker is running")
	}
	replies := make([]string, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { replies[i], errs[i] = w.control(ctx, line) })
	}
	wg.Wait()
	var failed []error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Errorf("worker %d (pid %d): %w", ws[i].slot, ws[i].pid, err))
		}
	}
	if len(failed) > 0 {
		return "", errors.Join(failed...)
	}
	p.ctlLog = append(p.ctlLog, bytes.Clone(line))
	return replies[0], nil
}

// enroll gives a new worker every kept control line and then puts it in
// its slot, both under ctlMu, so that no line falls between the two. It
// reports false if the pool is stopping.
func (p *Pool) enroll(slot int, w *worker) (bool, error) {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	for i, line := range p.ctlLog {
		if _, err := w.control(context.Background(), line); err != nil {
			return false, fmt.Errorf("giving it control line %d of %d: %w", i+1, len(p.ctlLog), err)
		}
	}
	return p.setWorker(slot, w), nil
}

// control sends one line to the worker's handler and returns its answer.
// A worker that does not answer in time is killed: its late answer would
// be taken for the next line's.
func (w *worker) control(ctx context.Context, line []byte) (string, error) {
	deadline := time.Now().Add(controlTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	w.ctl.SetDeadline(deadline)
	w.ctlSeq++
	if _, err := w.ctl.Write(appendFrame(nil, kControl, w.ctlSeq, line)); err != nil {
		return "", fmt.Errorf("sending the line: %w", err)
	}
	var hdr [headerLen]byte
	_, err := io.ReadFull(w.ctl, hdr[:])
	n := binary.LittleEndian.Uint32(hdr[5:])
	switch {
	case err != nil:
	case hdr[0] != kControlAnswer || binary.LittleEndian.Uint32(hdr[1:]) != w.ctlSeq || n < 1 || n > maxPayload:
		err = fmt.Errorf("%w: a %q frame of %d bytes answering control line %d", errProtocol, hdr[0], n, w.ctlSeq)
	}
	var payload []byte
	if err == nil {
		payload = make([]byte, n)
		_, err = io.ReadFull(w.ctl, payload)
	}
	if err != nil {
		w.log.Error("the worker did not answer a control line; killing it", "err", err)
		w.kill()
		return "", fmt.Errorf("no answer: %w", err)
	}
	if payload[0] != 0 {
		return "", &HandlerError{Traceback: string(payload[1:])}
	}
	return string(payload[1:]), nil
}
