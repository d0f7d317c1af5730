// Package wsgi serves Python applications over HTTP: WSGI applications
// (PEP 3333) and ASGI 3 ones, WebSockets included, each run by a pool of
// supervised worker processes (package workers) while Go does the
// networking. A Pool is both a service.Service (it starts and stops the
// workers) and an http.Handler: it receives a request's body, turns the
// request into the worker's environ or scope, and the worker's frames
// into the response.
package wsgi

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/torsion-server/torsion/workers"
)

// Config describes a Python application, how to run its workers, and how
// its requests are received. A zero field takes DefaultConfig's value; a
// negative limit or timeout turns it off.
type Config struct {
	// Config holds the application and its workers.
	workers.Config
	// BodyBuffer is how much of a request body Go receives in memory
	// before the request goes to a worker (default 1 MiB).
	BodyBuffer int
	// BodySpool is how much more of a request body Go receives, into an
	// unlinked temporary file, before the request goes to a worker
	// (default 64 MiB; negative: none), so that a slow upload holds no
	// worker. Of a body announced larger than BodyBuffer+BodySpool, or a
	// chunked one that grows past it, the rest streams from the client as
	// the application reads it, holding its worker meanwhile.
	BodySpool int64
	// Bodies bounds what the bodies buffered by BodyBuffer and BodySpool
	// hold together; pools may share one. Nil: a budget of the pool's
	// own, with NewBodyBudget's defaults.
	Bodies *BodyBudget
	// SpoolDir is where spool files are made (unlinked at once); empty
	// means os.TempDir().
	SpoolDir string
	// MaxBody answers 413 to request bodies larger than this (default 1
	// GiB; negative: no limit).
	MaxBody int64
	// ClientTimeout drops a client that, while a worker waits on it,
	// sends nothing of the request body or reads nothing of a streamed
	// response for this long (default 60s), and frees the worker. Small
	// requests and responses never hold a worker: Go buffers them.
	ClientTimeout time.Duration
	// WebSocketIdle closes, with 1001, a WebSocket over which no message
	// has passed, either way, for this long; at half of it the client is
	// pinged, which keeps proxies and NATs on the way from dropping the
	// connection, but a pong does not count (default 60s; negative:
	// never). A message arriving in fragments counts as it arrives.
	WebSocketIdle time.Duration
	// MaxWebSockets bounds the WebSockets open to an ASGI application at
	// once (default 4096); more get 503. WebSockets do not take the
	// places of Threads requests; over each client address's share,
	// the server's connection and stream limits apply.
	MaxWebSockets int
}

// DefaultConfig returns the defaults a zero Config field takes, stated
// here once (the workers' in workers.DefaultConfig): New applies them,
// and torsion web's options show them.
func DefaultConfig() Config {
	return Config{
		Config:        workers.DefaultConfig(),
		BodyBuffer:    1 << 20,
		BodySpool:     64 << 20,
		MaxBody:       1 << 30,
		ClientTimeout: 60 * time.Second,
		WebSocketIdle: 60 * time.Second,
		MaxWebSockets: 4096,
	}
}

// Pool serves HTTP requests with an application run in worker processes.
// Its workers.Pool's methods (Reload, Control, Stats...) are its own.
type Pool struct {
	*workers.Pool
	cfg Config
	log *slog.Logger

	serving   atomic.Int64 // the calls of ServeHTTP under way, for Stop
	wsOpen    atomic.Int64 // WebSocket requests being served (MaxWebSockets)
	hopWarned sync.Map     // hop-by-hop header names the application sent, warned of once
	sockets   openSockets  // the WebSockets open to the pool's applications
}

// New checks the configuration and returns a Pool; Start starts it.
func New(cfg Config) (*Pool, error) {
	if cfg.BodyBuffer < 0 || cfg.ClientTimeout < 0 {
		return nil, errors.New("the body buffer and the client timeout cannot be negative")
	}
	wp, err := workers.New(cfg.Config)
	if err != nil {
		return nil, err
	}
	cfg.Config = wp.Config()
	d := DefaultConfig()
	cfg.BodyBuffer = cmp.Or(cfg.BodyBuffer, d.BodyBuffer)
	cfg.BodySpool = cmp.Or(cfg.BodySpool, d.BodySpool)
	cfg.MaxBody = cmp.Or(cfg.MaxBody, d.MaxBody)
	if cfg.Bodies == nil {
		cfg.Bodies = NewBodyBudget(0, 0)
	}
	cfg.ClientTimeout = cmp.Or(cfg.ClientTimeout, d.ClientTimeout)
	cfg.WebSocketIdle = cmp.Or(cfg.WebSocketIdle, d.WebSocketIdle)
	cfg.MaxWebSockets = cmp.Or(cfg.MaxWebSockets, d.MaxWebSockets)
	return &Pool{Pool: wp, cfg: cfg, log: cfg.Config.Log}, nil
}

// Start starts the workers (workers.Pool.Start) and takes their
// configuration as it then is: with DetectInterface, the interface found
// and its threads.
func (p *Pool) Start(ctx context.Context) error {
	if err := p.Pool.Start(ctx); err != nil {
		return err
	}
	p.cfg.Config = p.Pool.Config()
	return nil
}

// Stop stops the workers (workers.Pool.Stop), then lets the requests they
// held, which end as the workers do, return from ServeHTTP (and their
// access lines be written) before the process may exit.
func (p *Pool) Stop(ctx context.Context) error {
	err := p.Pool.Stop(ctx)
	for waited := time.Duration(0); p.serving.Load() > 0 && waited < 2*time.Second; waited += 5 * time.Millisecond {
		time.Sleep(5 * time.Millisecond)
	}
	return err
}
