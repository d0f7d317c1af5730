package workers

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/torsion-server/torsion/logging"
)

// ErrWorkerDied is what a call gets from Next when its worker exits under
// it.
var ErrWorkerDied = errors.New("worker died")

// Job is what the runtime knows of a request, from the adapter that made
// its frame: how the status page and the log name it, and how it may be
// retried.
type Job struct {
	Method, URI, RequestID string
	// Idempotent: it may run twice, so that a worker dying under it
	// before anything came back sends it to another (a GET or HEAD
	// without a body, as HAProxy's retry-on does).
	Idempotent bool
	// Socket: a connection (an ASGI WebSocket) that runs beside the
	// worker's Threads requests, not in their place.
	Socket bool
}

// Call is one request in flight on a worker, from Submit until its
// KindEnd frame or its worker's death. The worker's reader goroutine
// queues its frames; one goroutine, the adapter's, takes them with Next.
type Call struct {
	w       *worker
	id      uint32
	mu      sync.Mutex
	frames  []Frame
	wake    chan struct{} // capacity 1: frames arrived or the call ended
	err     error         // set when the worker died under the call
	retry   bool          // the worker died before the request started
	timeout bool          // this call ran past --timeout (its task cancelled, or its worker killed)
	// cancelled is when torsion asked an ASGI worker to cancel the call's
	// task for running past --timeout; zero before.
	cancelled time.Time
	long      atomic.Bool // a WebSocket: --timeout does not apply
	// socket: job.Socket. The worker does not count it among its
	// threads either, so it is not in order.
	socket bool
	job    Job       // what it answers
	sent   time.Time // when it was sent to the worker
	begun  time.Time // when the request may have started running
	got    bool      // a frame arrived: the request certainly started
	// mayHaveRun: its worker died with it among the first Threads, so it
	// may have run (a retry of it is logged, and made once only).
	mayHaveRun bool
}

// push queues a frame without waking the handler; signal wakes it.
func (c *Call) push(f Frame) {
	c.mu.Lock()
	c.frames = append(c.frames, f)
	c.got = true
	c.mu.Unlock()
}

func (c *Call) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Idle reports whether no frame is waiting for Next, nor the call's end.
func (c *Call) Idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames) == 0 && c.err == nil
}

func (c *Call) fail(err error, retry bool) {
	c.mu.Lock()
	if c.err == nil {
		c.err, c.retry = err, retry && !c.got
	}
	c.mu.Unlock()
	c.signal()
}

// Next returns the call's next frame, or the error that ended it
// (ErrWorkerDied, or ErrProtocol), or ErrDone once done is closed (the
// client went away). Of a KindEnd frame, nothing follows.
func (c *Call) Next(done <-chan struct{}) (Frame, error) {
	for {
		c.mu.Lock()
		if len(c.frames) > 0 {
			f := c.frames[0]
			c.frames[0] = Frame{}
			c.frames = c.frames[1:]
			c.mu.Unlock()
			return f, nil
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return Frame{}, err
		}
		select {
		case <-c.wake:
		case <-done:
			return Frame{}, ErrDone
		}
	}
}

// ErrDone is Next's error when its done channel closed.
var ErrDone = errors.New("client went away")

// Send sends the worker a frame of kind for the call: a KindBody answering
// a read, KindCancel, KindWindow and the like.
func (c *Call) Send(kind byte, payload []byte) { c.w.sendFrame(kind, c.id, payload) }

// Abort ends the call's worker, which broke the protocol (err says how):
// it is killed, and its other calls fail as in any death.
func (c *Call) Abort(err error) { c.w.fail(err) }

// Untimed exempts the call from the pool's Timeout from now on: a
// WebSocket, once open, lasts as long as both ends like.
func (c *Call) Untimed() { c.long.Store(true) }

// TimedOut reports whether the call ran past the pool's Timeout: an ASGI
// task cancelled for it ends with KindEnd; otherwise its worker was
// killed.
func (c *Call) TimedOut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timeout
}

// Retry reports, once Next returned ErrWorkerDied, whether the request
// may go to another worker: it never started, or it is Idempotent and
// nothing of it came back; and whether it may have run (so a retry is
// worth a log line, and is made once only).
func (c *Call) Retry() (retry, mayHaveRun bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retry, c.mayHaveRun
}

// worker is one Python process and the socket to it.
type worker struct {
	pool *Pool
	slot int // 1-based, for log lines
	cmd  *exec.Cmd
	pid  int
	conn *net.UnixConn
	ctl  *net.UnixConn // the control socket; its exchanges are serialised by the pool's ctlMu
	// stacks is the pipe the worker writes its threads' stacks on when
	// asked (dumpStacks); killing is set once a kill is under way.
	stacks   *os.File
	stacksMu sync.Mutex
	killing  atomic.Bool
	ctlSeq   uint32 // the id of the last control line sent
	log      *slog.Logger

	wmu   sync.Mutex // guards wbuf and spare
	wbuf  []byte
	spare []byte
	wsig  chan struct{} // wakes writeLoop

	mu      sync.Mutex // guards the fields below
	calls   map[uint32]*Call
	order   []*Call // in flight, in the order sent, WebSockets aside
	sockets int     // WebSockets in calls
	nextID  uint32
	served  int
	limit   int // recycle after this many requests; 0 = never
	// retire is when it has lived its MaxLifetime (zero: never), idle
	// since when it last held no request.
	retire, idle time.Time
	because      string // why it started (WorkerStatus.Because)
	cause        string // why it is being replaced, for the metrics; "" for a crash
	draining     bool
	dead         bool

	exited chan struct{} // closed once the process is reaped
	status string        // exit status, valid after exited
	ready  chan string   // receives the K payload
	python string        // its Python version, from the K frame
	tail   *lineRing     // recent stderr lines, for start-up failures

	// Until the worker is ready, its output is held: if it fails to
	// start, the failure reports the output once, rather than each
	// worker logging the same traceback.
	outMu sync.Mutex
	held  []string
	live  bool
}

// maxHeld is how many lines of a starting worker's output are held.
const maxHeld = 1000

// goLive logs the output held during start-up and what follows as it comes.
func (w *worker) goLive() {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	for _, s := range w.held {
		w.log.Info(s)
	}
	w.held, w.live = nil, true
}

// logErrors logs what the application wrote to wsgi.errors as one record
// (a traceback is one, at ERROR), with the request whose handling wrote
// it, if any: its method, URI and id.
func (w *worker) logErrors(id uint32, text string) {
	text = strings.TrimRight(text, "\n")
	attrs := []any{logging.SystemKey, "wsgi.errors"}
	if id != 0 {
		w.mu.Lock()
		c := w.calls[id]
		w.mu.Unlock()
		if c != nil && c.job.Method != "" {
			attrs = append(attrs, "method", c.job.Method, "uri", c.job.URI, "request_id", c.job.RequestID)
		}
	}
	level := slog.LevelWarn
	if strings.Contains(text, "Traceback (most recent call last):") {
		level = slog.LevelError
	}
	msg, rest, multi := strings.Cut(text, "\n")
	if multi {
		attrs = append(attrs, "text", rest)
	}
	w.log.Log(context.Background(), level, msg, attrs...)
}

// output logs a line of output, or holds it while the worker starts.
func (w *worker) output(s string) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	if !w.live {
		if len(w.held) < maxHeld {
			w.held = append(w.held, s)
			return
		}
		for _, h := range w.held {
			w.log.Info(h)
		}
		w.held, w.live = nil, true
	}
	w.log.Info(s)
}

// socketPair returns a connected pair of Unix stream sockets: ours, and
// theirs for a worker to inherit. Both are close-on-exec from the start, so
// that no other process started meanwhile inherits them (not every system
// has SOCK_CLOEXEC); exec.Cmd's ExtraFiles clears the flag on the copy the
// worker gets.
func socketPair() (*net.UnixConn, *os.File, error) {
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "wsgi-worker")
	theirs := os.NewFile(uintptr(fds[1]), "wsgi-worker-peer")
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		theirs.Close()
		return nil, nil, err
	}
	return c.(*net.UnixConn), theirs, nil
}

// spawn starts a Python worker process. It returns once the process runs;
// the caller waits on w.ready or w.exited.
func (p *Pool) spawn(slot int) (*worker, error) {
	fc, theirs, err := socketPair()
	if err != nil {
		return nil, err
	}
	defer theirs.Close()
	ctl, ctlTheirs, err := socketPair()
	if err != nil {
		fc.Close()
		return nil, err
	}
	defer ctlTheirs.Close()
	// The pipe on which the worker writes its threads' stacks when asked
	// (SIGUSR1), before it is killed.
	stacks, stacksTheirs, err := os.Pipe()
	if err != nil {
		fc.Close()
		ctl.Close()
		return nil, err
	}
	defer stacksTheirs.Close()
	args := []string{p.script, "--app", p.cfg.App, "--threads", fmt.Sprint(p.cfg.Threads), "--workers", fmt.Sprint(p.cfg.Workers),
		"--control-fd", "4", "--stacks-fd", "5"}
	if p.cfg.ASGI {
		args = append(args, "--interface", "asgi")
		if p.cfg.Loop != "" {
			args = append(args, "--loop", p.cfg.Loop)
		}
	}
	cmd := exec.Command(p.cfg.Python, args...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = p.env
	cmd.ExtraFiles = []*os.File{theirs, ctlTheirs, stacksTheirs} // fds 3, 4 and 5
	cmd.SysProcAttr = workerProcAttr()
	if c := p.cfg.RunAs; c != nil {
		// Without root, torsion runs as that user already and may not
		// set groups.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.Uid, Gid: c.Gid, NoSetGroups: os.Geteuid() != 0}
	}
	w := &worker{
		pool: p, slot: slot, cmd: cmd, conn: fc, ctl: ctl, stacks: stacks,
		calls: map[uint32]*Call{}, exited: make(chan struct{}), wsig: make(chan struct{}, 1),
		ready: make(chan string, 1), tail: &lineRing{max: 60},
	}
	// One pipe for stdout and stderr, so lines stay in order. Not
	// cmd.StdoutPipe: Wait would wait for it to close, and a process the
	// application started keeps it open after the worker has died.
	out, in, err := os.Pipe()
	if err != nil {
		fc.Close()
		ctl.Close()
		stacks.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = in, in
	err = cmd.Start()
	in.Close()
	// A worker whose stacks nobody reads (someone else's SIGUSR1) must
	// not block in the write: the worker's end does not wait.
	syscall.SetNonblock(int(stacksTheirs.Fd()), true)
	if err != nil {
		fc.Close()
		ctl.Close()
		stacks.Close()
		out.Close()
		return nil, fmt.Errorf("starting %s: %w", p.cfg.Python, err)
	}
	w.pid = cmd.Process.Pid
	w.log = p.log.With("worker", slot, "pid", w.pid)
	if p.cfg.MaxRequests > 0 {
		w.limit = p.cfg.MaxRequests
		if p.cfg.MaxRequestsJitter > 0 {
			w.limit += p.rand(p.cfg.MaxRequestsJitter + 1)
		}
	}
	w.idle = time.Now()
	if p.cfg.MaxLifetime > 0 {
		w.retire = w.idle.Add(p.cfg.MaxLifetime)
		if p.cfg.MaxLifetimeJitter > 0 {
			w.retire = w.retire.Add(time.Duration(p.rand64(int64(p.cfg.MaxLifetimeJitter) + 1)))
		}
	}
	outputDone := make(chan struct{})
	go func() {
		defer close(outputDone)
		defer out.Close()
		w.copyOutput(out)
	}()
	go w.readLoop()
	go w.writeLoop()
	go func() {
		err := cmd.Wait()
		// Its last lines (a traceback, say) come before the news of its
		// death, unless something it started holds the pipe open.
		select {
		case <-outputDone:
		case <-time.After(outputGrace):
		}
		w.status = exitStatus(cmd.ProcessState, err)
		w.die(fmt.Errorf("%w: %s", ErrWorkerDied, w.status))
		close(w.exited)
		w.stacksMu.Lock()
		w.stacks.Close()
		w.stacksMu.Unlock()
	}()
	return w, nil
}

func exitStatus(ps *os.ProcessState, err error) string {
	if ps == nil {
		return err.Error()
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}

// copyOutput logs what the worker prints, line by line (once it is ready;
// see output), and keeps the last lines for start-up failures. It reads until the pipe closes, whatever
// comes: a worker whose output is not read blocks in its next print. Of a
// line longer than maxOutputLine, the start is logged and the length of
// the rest.
func (w *worker) copyOutput(r io.Reader) {
	br := bufio.NewReaderSize(r, maxOutputLine)
	for {
		line, more, err := br.ReadLine()
		if err != nil {
			return
		}
		s := string(line)
		dropped := 0
		for more && err == nil {
			line, more, err = br.ReadLine()
			dropped += len(line)
		}
		if dropped > 0 {
			s += fmt.Sprintf(" [and %d more bytes of this line]", dropped)
		}
		w.tail.add(s)
		w.output(s)
	}
}

// maxOutputLine is how much of one line of a worker's output is logged.
const maxOutputLine = 64 << 10

// outputGrace is how long a dead worker's output may take to end.
const outputGrace = 500 * time.Millisecond

// readLoop reads the worker's frames and routes them to their calls. It
// wakes the handlers only when it has no complete frame left to read, so a
// burst of frames costs each handler one wake-up.
func (w *worker) readLoop() {
	fc := &fdConn{conn: w.conn}
	r := bufio.NewReaderSize(fc, 256<<10)
	var hdr [HeaderLen]byte
	var woken []*Call
	wake := func() {
		for i, c := range woken {
			c.signal()
			woken[i] = nil
		}
		woken = woken[:0]
	}
	defer wake()
	for {
		if !frameBuffered(r) {
			wake()
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			w.die(fmt.Errorf("%w: reading: %v", ErrWorkerDied, err))
			return
		}
		kind, id, n := frameHeader(hdr[:])
		if n > MaxPayload {
			err := fmt.Errorf("%w: a %q frame of %d bytes, over the %d allowed", ErrProtocol, kind, n, MaxPayload)
			w.fail(err)
			w.die(fmt.Errorf("%w: %v", ErrWorkerDied, err))
			return
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			w.die(fmt.Errorf("%w: reading: %v", ErrWorkerDied, err))
			return
		}
		var file *os.File
		if kind == KindFile {
			if len(fc.fds) == 0 || n != 8 {
				err := fmt.Errorf("%w: an F frame of %d bytes with %d file descriptors", ErrProtocol, n, len(fc.fds))
				w.fail(err)
				w.die(fmt.Errorf("%w: %v", ErrWorkerDied, err))
				return
			}
			file = os.NewFile(uintptr(fc.fds[0]), "wsgi.file_wrapper")
			fc.fds = fc.fds[1:]
		}
		switch kind {
		case kReady:
			w.ready <- string(payload)
			continue
		case kLog:
			w.logErrors(id, string(payload))
			continue
		}
		w.mu.Lock()
		c := w.calls[id]
		if kind == KindEnd && c != nil {
			w.finishLocked(c)
		}
		w.mu.Unlock()
		if kind == KindEnd && c != nil {
			w.pool.release() // after w.mu: the pool's lock comes first
		}
		if c == nil {
			w.log.Warn("frame for an unknown request", "kind", string(rune(kind)), "id", id)
			if file != nil {
				file.Close()
			}
			continue
		}
		c.push(Frame{kind, payload, file})
		woken = append(woken, c)
	}
}

// fdConn reads a worker's socket with recvmsg, keeping the file
// descriptors that come with the bytes (SCM_RIGHTS), in order: each
// belongs to the next F frame, which comes with or after it.
type fdConn struct {
	conn *net.UnixConn
	oob  [256]byte
	fds  []int
}

func (c *fdConn) Read(p []byte) (int, error) {
	n, oobn, _, _, err := c.conn.ReadMsgUnix(p, c.oob[:])
	n = max(n, 0) // recvmsg's -1 on an error
	if oobn > 0 {
		msgs, perr := syscall.ParseSocketControlMessage(c.oob[:oobn])
		for _, m := range msgs {
			if fds, err := syscall.ParseUnixRights(&m); err == nil {
				for _, fd := range fds {
					syscall.CloseOnExec(fd)
				}
				c.fds = append(c.fds, fds...)
			}
		}
		if perr != nil && err == nil {
			err = fmt.Errorf("%w: control message: %v", ErrProtocol, perr)
		}
	}
	return n, err
}

// frameBuffered reports whether a whole frame is already buffered.
func frameBuffered(r *bufio.Reader) bool {
	if r.Buffered() < HeaderLen {
		return false
	}
	hdr, _ := r.Peek(HeaderLen)
	return r.Buffered() >= HeaderLen+int(binary.LittleEndian.Uint32(hdr[5:]))
}

// finishLocked forgets a finished call and marks the calls that may now
// have started running. The caller releases the room in the pool after
// unlocking w.mu. Python starts requests in the order sent, at most
// Threads at a time, so those are the first Threads in order.
func (w *worker) finishLocked(c *Call) {
	delete(w.calls, c.id)
	if c.socket {
		w.sockets--
	}
	for i, o := range w.order {
		if o == c {
			w.order = append(w.order[:i], w.order[i+1:]...)
			break
		}
	}
	w.served++
	now := time.Now()
	for i := 0; i < len(w.order) && i < w.pool.cfg.Threads; i++ {
		if w.order[i].begun.IsZero() {
			w.order[i].begun = now
		}
	}
	if w.limit > 0 && w.served >= w.limit && !w.draining {
		w.draining, w.cause = true, "max-requests"
		w.log.Info("worker served its requests; recycling it", "served", w.served)
	}
	if len(w.calls) == 0 {
		w.idle = now
	}
	if w.draining && len(w.calls) == 0 {
		w.conn.CloseWrite() // Python sees EOF and exits
	}
}

// outlived reports whether the worker has lived past its lifetime, or
// been idle past the idle timeout, and so is to be recycled: the cause,
// for the metrics, and a line for the log; "" if neither.
func (w *worker) outlived(now time.Time) (cause, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.dead || w.draining:
	case !w.retire.IsZero() && !now.Before(w.retire):
		return "lifetime", "worker lived its lifetime; recycling it after its requests"
	case w.pool.cfg.IdleTimeout > 0 && len(w.calls) == 0 && now.Sub(w.idle) >= w.pool.cfg.IdleTimeout:
		return "idle", "worker was idle past the idle timeout; recycling it"
	}
	return "", ""
}

// waitedFor is how long the oldest request the worker holds that has not
// started yet (it waits for one of the worker's Threads) has waited at
// now; 0 if none waits.
func (w *worker) waitedFor(now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.order) <= w.pool.cfg.Threads {
		return 0
	}
	return now.Sub(w.order[w.pool.cfg.Threads].sent)
}

// started notes why the worker started, and logs that it did.
func (w *worker) started(because string) {
	w.mu.Lock()
	w.because = because
	w.mu.Unlock()
	w.log.Info("worker started", "because", because)
}

// idleFor is how long the worker has held no request at now; 0 while it
// holds one, or is going.
func (w *worker) idleFor(now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.calls) > 0 || w.dead || w.draining {
		return 0
	}
	return now.Sub(w.idle)
}

// isDraining reports whether the worker takes no new request and is
// finishing those it holds, or is dead.
func (w *worker) isDraining() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.draining || w.dead
}

// setCause records why the worker is being replaced, for the metrics.
func (w *worker) setCause(cause string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cause == "" {
		w.cause = cause
	}
}

// drain stops the worker taking requests; it exits once it has answered
// those it holds (its socket's end tells torsion_worker to go).
func (w *worker) drain() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead || w.draining {
		return
	}
	w.draining = true
	if len(w.calls) == 0 {
		w.conn.CloseWrite()
	}
}

// submit sends a request frame and registers its call. It fails if the
// worker is dead or draining.
func (w *worker) submit(req []byte, j Job) (*Call, bool) {
	w.mu.Lock()
	if w.dead || w.draining {
		w.mu.Unlock()
		return nil, false
	}
	w.nextID++
	c := &Call{w: w, id: w.nextID, wake: make(chan struct{}, 1), job: j, socket: j.Socket, sent: time.Now()}
	if len(w.order) < w.pool.cfg.Threads || c.socket {
		c.begun = c.sent
	}
	w.calls[c.id] = c
	if c.socket {
		w.sockets++
	} else {
		w.order = append(w.order, c)
	}
	binary.LittleEndian.PutUint32(req[1:], c.id)
	w.mu.Unlock()
	w.send(req)
	return c, true
}

// inflight is the number of requests sent and not finished, WebSockets
// aside.
func (w *worker) inflight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead || w.draining {
		return -1
	}
	return len(w.calls) - w.sockets
}

// send queues b for the worker's writer goroutine, which writes all that
// is queued in one system call: under load, the frames of many handlers
// leave together and wake the worker once.
func (w *worker) send(b []byte) {
	w.wmu.Lock()
	w.wbuf = append(w.wbuf, b...)
	w.wmu.Unlock()
	select {
	case w.wsig <- struct{}{}:
	default: // the writer has been told already
	}
}

// writeLoop writes what send queues until the worker exits.
func (w *worker) writeLoop() {
	for {
		select {
		case <-w.wsig:
		case <-w.exited:
			return
		}
		// The handlers that are ready to run go first, so that what they
		// send leaves in this write: a wake-up of the writer puts it
		// next in line, ahead of them.
		runtime.Gosched()
		w.wmu.Lock()
		buf := w.wbuf
		if len(buf) == 0 {
			w.wmu.Unlock()
			continue
		}
		// Two buffers take turns: senders fill one while the other is written.
		w.wbuf, w.spare = w.spare[:0], nil
		w.wmu.Unlock()
		// An error is left to the reader, which sees the socket fail and
		// ends the calls.
		w.conn.Write(buf)
		w.wmu.Lock()
		w.spare = buf
		w.wmu.Unlock()
	}
}

func (w *worker) sendFrame(kind byte, id uint32, payload []byte) {
	w.send(AppendFrame(make([]byte, 0, HeaderLen+len(payload)), kind, id, payload))
}

// die ends every call in flight. The first Threads calls in order may have
// started and fail; the others never started and are retried elsewhere.
func (w *worker) die(err error) {
	w.mu.Lock()
	if w.dead {
		w.mu.Unlock()
		return
	}
	w.dead = true
	order := w.order
	for _, c := range w.calls {
		if c.socket {
			order = append(order, c) // started: they fail
		}
	}
	w.order, w.calls, w.sockets = nil, map[uint32]*Call{}, 0
	w.mu.Unlock()
	w.conn.Close()
	w.ctl.Close()
	for i, c := range order {
		started := i < w.pool.cfg.Threads || c.socket
		c.mu.Lock()
		c.mayHaveRun = started
		timedOut := c.timeout
		c.mu.Unlock()
		// One that never started is sent to another worker; so is a
		// started one that is safe to run twice (GET or HEAD without a
		// body, as HAProxy's retry-on does), if nothing of it came back
		// (fail: !c.got) and it is not the request that ran too long.
		c.fail(err, !started || !c.socket && !timedOut && c.job.Idempotent)
		w.pool.release()
	}
}

// fail ends a worker that broke the protocol.
func (w *worker) fail(err error) {
	w.log.Error("the worker broke the protocol; killing it", "err", err)
	w.kill()
}

// killExplained kills the worker after one error record saying why: msg,
// the request it was stuck in (c, if any), attrs, and the Python stack
// of each of its threads, which it is asked for first (dumpStacks). It
// returns at once; only its first call acts.
func (w *worker) killExplained(msg string, c *Call, attrs ...any) {
	if !w.killing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		if c != nil {
			attrs = append(attrs, "method", c.job.Method, "uri", c.job.URI, "request_id", c.job.RequestID)
		}
		w.log.Error(msg, append(attrs, "stacks", w.dumpStacks())...)
		w.kill()
	}()
}

const (
	// stackWait bounds how long a worker has to start writing its stacks.
	stackWait = time.Second
	// stackQuiet ends the stacks once the worker has written nothing
	// more for so long.
	stackQuiet = 100 * time.Millisecond
	// maxStacks bounds what is read of them.
	maxStacks = 1 << 20
)

// dumpStacks asks the worker for the Python stack of every thread
// (SIGUSR1, which faulthandler answers on the stacks pipe) and returns
// what it wrote, or why there is nothing; it waits stackWait at most for
// the first bytes.
func (w *worker) dumpStacks() string {
	w.stacksMu.Lock()
	defer w.stacksMu.Unlock()
	if err := w.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return "(not asked: " + err.Error() + ")"
	}
	var buf []byte
	chunk := make([]byte, 64<<10)
	deadline := time.Now().Add(stackWait)
	for len(buf) < maxStacks {
		if err := w.stacks.SetReadDeadline(deadline); err != nil {
			break
		}
		n, err := w.stacks.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err != nil {
			break
		}
		deadline = time.Now().Add(stackQuiet)
	}
	if len(buf) == 0 {
		return fmt.Sprintf("(the worker wrote no stacks within %v)", stackWait)
	}
	return strings.TrimRight(string(buf), "\n")
}

// kill ends the worker, and every process in its group, at once.
func (w *worker) kill() {
	if w.cmd.Process != nil {
		// The worker leads its own process group: what it started goes
		// with it.
		syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// lineRing keeps the last max lines written to it.
type lineRing struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (r *lineRing) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) == r.max {
		r.lines = r.lines[1:]
	}
	r.lines = append(r.lines, s)
}

func (r *lineRing) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}
