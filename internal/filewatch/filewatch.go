// Package filewatch acts on changes to watched files once they have
// settled: an editor's save, or a tool's write and rename, is several
// events, and one action should follow them all.
package filewatch

import (
	"context"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Settle is how long the files must stay unchanged before the action runs.
const Settle = 300 * time.Millisecond

// Settled reads w's events until ctx ends or w is closed. see is shown
// every event and reports whether it is a change that matters; act runs,
// given the last such file's name, once no change has come for Settle.
// The watcher's errors go to fail.
func Settled(ctx context.Context, w *fsnotify.Watcher, see func(fsnotify.Event) bool, act func(name string), fail func(error)) {
	var timer <-chan time.Time
	changed := ""
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			fail(err)
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if see(ev) {
				changed, timer = ev.Name, time.After(Settle)
			}
		case <-timer:
			timer = nil
			act(changed)
		}
	}
}
