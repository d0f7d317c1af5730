package service

import (
	"context"
	"fmt"
	"time"
)

// Timer calls Func at once when started and then every Interval until it is
// stopped, as Twisted's TimerService does. Calls never overlap: if one runs
// longer than Interval, the next starts when it returns. The context passed
// to Func is cancelled when Stop is called.
type Timer struct {
	Interval time.Duration
	Func     func(ctx context.Context)

	cancel context.CancelFunc
	done   chan struct{}
}

// String names the timer in messages.
func (t *Timer) String() string { return fmt.Sprintf("timer(%v)", t.Interval) }

// Start begins calling Func.
func (t *Timer) Start(context.Context) error {
	if t.Interval <= 0 {
		return fmt.Errorf("timer interval %v is not positive", t.Interval)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel, t.done = cancel, make(chan struct{})
	go func() {
		defer close(t.done)
		tick := time.NewTicker(t.Interval)
		defer tick.Stop()
		for {
			t.Func(ctx)
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// Stop cancels the running call, if any, and waits for it to return or for
// ctx to end.
func (t *Timer) Stop(ctx context.Context) error {
	t.cancel()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the timer's call to return: %w", ctx.Err())
	}
}
