package workers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// This file is the control channel's side of the pool: a message for
// every worker (a line for its torsion.control handler, or an AMP box for
// its torsion.locator, which package control encodes), over each worker's
// control socket (PROTOCOL.md), kept and given again to workers that
// start later.

const (
	// controlTimeout bounds a worker's answer to one control line.
	controlTimeout = 10 * time.Second
	// maxControlLog bounds the messages kept for workers that start later.
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

// The kinds of control message, their first byte on the control socket
// (PROTOCOL.md's M frame).
const (
	ctlLine = 'L'
	ctlAMP  = 'A'
)

// DeclaredError is an answer to ControlBox that the command declares as
// an error: an AMP error box (_error_code, _error_description) in AMP's
// wire form, DeclaredAnswer.
type DeclaredError struct{ answer []byte }

func (e *DeclaredError) Error() string { return "the command answered with an error it declares" }

// DeclaredAnswer is the error box, in AMP's wire form.
func (e *DeclaredError) DeclaredAnswer() []byte { return e.answer }

// ctlEntry is a control message applied everywhere, kept for workers that
// start later. A later entry with the same key replaces it ("" for none).
type ctlEntry struct {
	msg []byte
	key string
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
	answer, err := p.broadcast(ctx, controlPayload(ctlLine, line), "")
	return string(answer), err
}

// ControlBox gives an AMP box (_command and its arguments, in AMP's wire
// form; package control encodes and decodes them) to the locator of every
// live worker (torsion.locator), as Control gives a line: applied
// everywhere before the first worker's answer box is returned, or an
// error naming the workers that failed; a *DeclaredError when every
// worker answered with a declared error, which changes nothing. A box
// applied everywhere is kept for workers that start later; a later one
// with the same key replaces it there ("" keeps every one), so that of
// commands that set state only the last is replayed.
func (p *Pool) ControlBox(ctx context.Context, box []byte, key string) ([]byte, error) {
	return p.broadcast(ctx, controlPayload(ctlAMP, box), key)
}

// broadcast sends a control message to every live worker and returns the
// first worker's answer once all have answered.
func (p *Pool) broadcast(ctx context.Context, msg []byte, key string) ([]byte, error) {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if len(p.ctlLog) >= maxControlLog {
		return nil, ErrControlLogFull
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
		return nil, errors.New("no worker is running")
	}
	answers := make([][]byte, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { answers[i], errs[i] = w.control(ctx, msg) })
	}
	wg.Wait()
	var failed []error
	declared := 0
	for i, err := range errs {
		var de *DeclaredError
		if errors.As(err, &de) {
			declared++
		}
		if err != nil {
			failed = append(failed, fmt.Errorf("worker %d (pid %d): %w", ws[i].slot, ws[i].pid, err))
		}
	}
	if declared == len(ws) {
		return nil, errs[0] // the application refused it, everywhere alike
	}
	if len(failed) > 0 {
		return nil, errors.Join(failed...)
	}
	if key != "" {
		p.ctlLog = slices.DeleteFunc(p.ctlLog, func(e ctlEntry) bool { return e.key == key })
	}
	p.ctlLog = append(p.ctlLog, ctlEntry{bytes.Clone(msg), key})
	return answers[0], nil
}

// enroll gives a new worker every kept control message and then puts it in
// its slot, both under ctlMu, so that no message falls between the two. It
// reports false if the pool is stopping.
func (p *Pool) enroll(slot int, w *worker) (bool, error) {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	for i, e := range p.ctlLog {
		if _, err := w.control(context.Background(), e.msg); err != nil {
			return false, fmt.Errorf("giving it control message %d of %d: %w", i+1, len(p.ctlLog), err)
		}
	}
	return p.setWorker(slot, w), nil
}

// control sends one control message to the worker and returns its
// answer: what the handler returned, or an error (*HandlerError if it
// raised, *DeclaredError for a command's declared error). A worker that
// does not answer in time is killed: its late answer would be taken for
// the next message's.
func (w *worker) control(ctx context.Context, msg []byte) ([]byte, error) {
	deadline := time.Now().Add(controlTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	w.ctl.SetDeadline(deadline)
	w.ctlSeq++
	if _, err := w.ctl.Write(AppendFrame(nil, kControl, w.ctlSeq, msg)); err != nil {
		return nil, fmt.Errorf("sending: %w", err)
	}
	var hdr [HeaderLen]byte
	_, err := io.ReadFull(w.ctl, hdr[:])
	kind, id, n := frameHeader(hdr[:])
	switch {
	case err != nil:
	case kind != kControlAnswer || id != w.ctlSeq || n < 1 || n > MaxPayload:
		err = fmt.Errorf("%w: a %q frame of %d bytes answering control line %d", ErrProtocol, kind, n, w.ctlSeq)
	}
	var payload []byte
	if err == nil {
		payload = make([]byte, n)
		_, err = io.ReadFull(w.ctl, payload)
	}
	if err != nil {
		w.log.Error("the worker did not answer a control line; killing it", "err", err)
		w.kill()
		return nil, fmt.Errorf("no answer: %w", err)
	}
	return parseAnswer(payload)
}
