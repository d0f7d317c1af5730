// Package service provides Twisted's application services in Go: anything
// that can be started and stopped, composed into a tree that starts in order
// and stops in reverse.
package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Service is anything that can be started and stopped: a listening server,
// a timer, a pool of worker processes.
//
// Start brings the service up and returns once it is running; the context
// bounds start-up only, not the service's lifetime. Stop shuts it down
// gracefully, giving up and releasing everything by force when ctx ends.
// Stop is called at most once, and only after Start returned nil.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Failer is implemented by services that can fail on their own after Start,
// such as a listener whose accept loop dies. The channel delivers at most one
// error; the service must still be stopped.
type Failer interface {
	Failed() <-chan error
}

// Binder is implemented by services that take a resource the whole tree
// needs before any of it starts: a Listener binds its port. Multi.Start
// binds every Binder of its tree first, so a port in use fails the start
// at once, before a slow start-up of another service (a worker pool
// importing its application), and connections that arrive meanwhile wait
// in the listen backlog to be served once it is ready. Unbind releases
// what Bind took when the service will not be started; Bind on a bound
// service does nothing.
type Binder interface {
	Bind(ctx context.Context) error
	Unbind()
}

// Name returns a service's name for messages: its String method if it has
// one, else its type.
func Name(s Service) string {
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}

// Multi is a service made of child services, Twisted's MultiService: Start
// starts the children in the order they were added and Stop stops them in
// reverse. If a child fails to start, the children already started are
// stopped again and Start returns both failures.
type Multi struct {
	children []Service

	mu      sync.Mutex
	started int
	failed  chan error
	done    chan struct{}
	wg      sync.WaitGroup
}

// NewMulti returns a Multi with the given children.
func NewMulti(children ...Service) *Multi {
	return &Multi{children: children}
}

// Add appends a child. It must not be called after Start.
func (m *Multi) Add(s Service) { m.children = append(m.children, s) }

// Start starts each child in order. When ctx ends during start-up, no
// further child is started and those already started are stopped.
func (m *Multi) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failed = make(chan error, 1)
	m.done = make(chan struct{})
	bound, err := bindAll(ctx, m.children, nil)
	if err != nil {
		unbind(bound)
		return err
	}
	for i, c := range m.children {
		err := ctx.Err() // start-up was called off: start no more
		if err == nil {
			err = c.Start(ctx)
		}
		if err != nil {
			err = fmt.Errorf("starting %s: %w", Name(c), err)
			// Undo with a fresh deadline-free context: the start-up context
			// may be the reason we failed. What was bound and not started
			// is let go.
			err = errors.Join(err, m.stopFirst(context.WithoutCancel(ctx), i))
			unbind(bound)
			return err
		}
		m.started = i + 1
		if f, ok := c.(Failer); ok {
			m.wg.Go(func() { m.forward(c, f.Failed()) })
		}
	}
	return nil
}

// bindAll binds the Binders among services, and those of the Multis
// among them, depth first, adding each to bound; it stops at the first
// failure.
func bindAll(ctx context.Context, services []Service, bound []Binder) ([]Binder, error) {
	for _, c := range services {
		switch c := c.(type) {
		case *Multi:
			var err error
			if bound, err = bindAll(ctx, c.children, bound); err != nil {
				return bound, err
			}
		case Binder:
			if err := c.Bind(ctx); err != nil {
				return bound, fmt.Errorf("starting %s: %w", Name(c.(Service)), err)
			}
			bound = append(bound, c)
		}
	}
	return bound, nil
}

// unbind releases what bound took, of the services that were not
// started (Unbind does nothing to a started one).
func unbind(bound []Binder) {
	for _, b := range bound {
		b.Unbind()
	}
}

func (m *Multi) forward(c Service, ch <-chan error) {
	select {
	case err := <-ch:
		select {
		case m.failed <- fmt.Errorf("%s: %w", Name(c), err):
		default:
		}
	case <-m.done:
	}
}

// Reload reloads, in order, the children that are Reloaders, and stops at
// the first that fails.
func (m *Multi) Reload(ctx context.Context) error {
	for _, c := range m.children {
		if r, ok := c.(Reloader); ok {
			if err := r.Reload(ctx); err != nil {
				return fmt.Errorf("reloading %s: %w", Name(c), err)
			}
		}
	}
	return nil
}

// Failed reports the first child that failed after starting.
func (m *Multi) Failed() <-chan error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed
}

// Stop stops the started children in reverse order. Every child is asked to
// stop even if another fails; the errors are joined.
func (m *Multi) Stop(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopFirst(ctx, m.started)
}

func (m *Multi) stopFirst(ctx context.Context, n int) error {
	var errs []error
	for i := n - 1; i >= 0; i-- {
		if err := m.children[i].Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", Name(m.children[i]), err))
		}
	}
	m.started = 0
	if m.done != nil {
		close(m.done)
		m.wg.Wait()
		m.done = nil
	}
	return errors.Join(errs...)
}
