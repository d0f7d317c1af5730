package amp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// The keys of the command protocol and its error codes, as Twisted names
// them.
const (
	KeyAsk              = "_ask"
	KeyAnswer           = "_answer"
	KeyCommand          = "_command"
	KeyError            = "_error"
	KeyErrorCode        = "_error_code"
	KeyErrorDescription = "_error_description"

	// CodeUnknown answers a command that failed in a way its declaration
	// does not name; Twisted then closes the connection, and so does Conn.
	CodeUnknown = "UNKNOWN"
	// CodeUnhandled answers a command nobody handles.
	CodeUnhandled = "UNHANDLED"
)

// Error is an AMP error: a Handler returns one to answer with its code and
// description, and Call returns one for an _error box.
type Error struct {
	Code, Description string
}

func (e *Error) Error() string { return "amp: " + e.Code + ": " + e.Description }

// Handler answers the commands a peer asks. The box holds the arguments,
// without the _command and _ask keys; the answer box holds the response's.
// A returned *Error goes to the peer as it is; any other error as
// UNKNOWN, after which the connection is closed, as Twisted does.
// ServeAMP is called on a goroutine of its own for each command.
type Handler interface {
	ServeAMP(ctx context.Context, command string, args Box) (Box, error)
}

// HandlerFunc is a function that is a Handler.
type HandlerFunc func(ctx context.Context, command string, args Box) (Box, error)

// ServeAMP calls f.
func (f HandlerFunc) ServeAMP(ctx context.Context, command string, args Box) (Box, error) {
	return f(ctx, command, args)
}

// ErrClosed is what Call returns once the connection has ended.
var ErrClosed = errors.New("amp: connection closed")

// Conn is one AMP connection, for asking commands (Call), answering them
// (its Handler) or both. Serve must run for either to work. Call may be
// called from any goroutine, many at once.
type Conn struct {
	// MaxInFlight bounds the commands the handler runs at once for this
	// connection (default 64); past it, Serve reads no further box until
	// one finishes, so a peer that sends commands faster than they are
	// answered, or never reads its answers, is held back by TCP instead
	// of growing memory. Set it before Serve.
	MaxInFlight int
	// WriteTimeout bounds each write of a box (default 60s): a peer that
	// reads nothing for that long has its connection closed. Set it
	// before Serve.
	WriteTimeout time.Duration

	c   net.Conn
	h   Handler
	log *slog.Logger

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	pending map[string]chan Box
	next    uint64
	err     error // why the connection ended, once it has
}

// NewConn returns a Conn on c that answers commands with h (nil answers
// every command UNHANDLED) and logs what goes wrong to log (nil: nowhere).
func NewConn(c net.Conn, h Handler, log *slog.Logger) *Conn {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Conn{c: c, h: h, log: log, pending: map[string]chan Box{}}
}

// Serve reads boxes until the connection ends, answering commands and
// routing answers to their calls, then closes it. It returns nil when the
// peer closed the connection between boxes, else the error that ended it
// (a malformed box, a box that is no command and no answer).
func (c *Conn) Serve() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := NewDecoder(c.c)
	var wg sync.WaitGroup
	var err error
	slots := make(chan struct{}, cmp.Or(c.MaxInFlight, 64))
	for {
		var b Box
		if b, err = d.Decode(); err != nil {
			break
		}
		if tag, ok := b[KeyAnswer]; ok {
			c.route(string(tag), b)
		} else if tag, ok := b[KeyError]; ok {
			c.route(string(tag), b)
		} else if cmd, ok := b[KeyCommand]; ok {
			slots <- struct{}{} // a place among the commands in flight
			wg.Go(func() {
				defer func() { <-slots }()
				c.answer(ctx, string(cmd), b)
			})
		} else {
			err = fmt.Errorf("%w: a box with no _command, _answer or _error", ErrMalformed)
			break
		}
	}
	if err == io.EOF || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	c.c.Close()
	cancel()
	wg.Wait()
	c.mu.Lock()
	c.err = ErrClosed
	for tag, ch := range c.pending {
		close(ch)
		delete(c.pending, tag)
	}
	c.mu.Unlock()
	return err
}

// route hands an answer or error box to the call that waits for it.
func (c *Conn) route(tag string, b Box) {
	c.mu.Lock()
	ch := c.pending[tag]
	delete(c.pending, tag)
	c.mu.Unlock()
	if ch == nil {
		c.log.Warn("amp: an answer to no question", "tag", tag)
		return
	}
	ch <- b
}

// answer runs the handler for one command and sends its answer, if asked.
func (c *Conn) answer(ctx context.Context, cmd string, b Box) {
	tag, ask := b[KeyAsk]
	delete(b, KeyAsk)
	delete(b, KeyCommand)
	var resp Box
	var err error
	if c.h == nil {
		err = &Error{Code: CodeUnhandled, Description: fmt.Sprintf("Unhandled Command: %q", cmd)}
	} else {
		resp, err = c.h.ServeAMP(ctx, cmd, b)
	}
	quit := false
	if err != nil {
		var ae *Error
		if !errors.As(err, &ae) {
			c.log.Error("amp: a command failed", "command", cmd, "err", err)
			ae, quit = &Error{Code: CodeUnknown, Description: "Unknown Error"}, true
		}
		resp = Box{KeyErrorCode: []byte(ae.Code), KeyErrorDescription: []byte(ae.Description)}
	}
	if !ask {
		return
	}
	if resp == nil {
		resp = Box{}
	}
	if err != nil {
		resp[KeyError] = tag
	} else {
		resp[KeyAnswer] = tag
	}
	if werr := c.send(resp); werr != nil {
		c.log.Warn("amp: sending an answer", "command", cmd, "err", werr)
	}
	if quit {
		c.c.Close()
	}
}

// send writes one box.
func (c *Conn) send(b Box) error {
	buf, err := AppendBox(nil, b)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.c.SetWriteDeadline(time.Now().Add(cmp.Or(c.WriteTimeout, 60*time.Second)))
	if _, err = c.c.Write(buf); err != nil {
		c.c.Close() // a box half written leaves the stream unusable
	}
	return err
}

// Call asks the peer to run command with args and returns its answer box,
// without _answer. An _error box comes back as an *Error. args is not
// changed.
func (c *Conn) Call(ctx context.Context, command string, args Box) (Box, error) {
	b := make(Box, len(args)+2)
	for k, v := range args {
		b[k] = v
	}
	ch := make(chan Box, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.next++
	tag := strconv.FormatUint(c.next, 16)
	c.pending[tag] = ch
	c.mu.Unlock()
	b[KeyCommand], b[KeyAsk] = []byte(command), []byte(tag)
	if err := c.send(b); err != nil {
		c.mu.Lock()
		delete(c.pending, tag)
		c.mu.Unlock()
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, ErrClosed
		}
		if _, failed := r[KeyError]; failed {
			return nil, &Error{Code: string(r[KeyErrorCode]), Description: string(r[KeyErrorDescription])}
		}
		delete(r, KeyAnswer)
		return r, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, tag)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// Close closes the connection; Serve returns.
func (c *Conn) Close() error { return c.c.Close() }
