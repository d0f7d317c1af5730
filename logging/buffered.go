package logging

import (
	"io"
	"sync"
	"time"
)

// BufferedWriter gathers writes and passes them to the underlying writer
// every interval, when 64 KiB are waiting, and on Flush or Close: one
// system call for many log lines instead of one each. What is waiting is
// lost if the process dies without Close, at most one interval's worth.
type BufferedWriter struct {
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
	stop chan struct{}
	done chan struct{}
}

const bufferedMax = 64 << 10

// NewBufferedWriter returns a BufferedWriter flushing to w every interval.
func NewBufferedWriter(w io.Writer, interval time.Duration) *BufferedWriter {
	b := &BufferedWriter{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.Flush()
			case <-b.stop:
				return
			}
		}
	}()
	return b
}

// Write queues p; it writes through when 64 KiB are waiting.
func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) >= bufferedMax {
		return len(p), b.flushLocked()
	}
	return len(p), nil
}

// Flush writes out what is waiting.
func (b *BufferedWriter) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *BufferedWriter) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// Close stops the timer and flushes. The underlying writer stays open.
func (b *BufferedWriter) Close() error {
	close(b.stop)
	<-b.done
	return b.Flush()
}
