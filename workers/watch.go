package workers

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"

	"github.com/torsion-server/torsion/internal/filewatch"
)

// CodeWatcher is a service for development (torsion web --reload): when a
// .py file under the pool's working directory or Python path changes, it
// reloads the pool (Reload: new workers one at a time), once the changes
// have settled for a moment. New code that does not import is logged with
// its traceback, and the old workers go on serving.
type CodeWatcher struct {
	Pool *Pool

	w      *fsnotify.Watcher
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// Start watches the directories.
func (c *CodeWatcher) Start(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	c.w = w
	for _, dir := range append([]string{c.Pool.cfg.Dir}, c.Pool.cfg.PythonPath...) {
		c.addTree(dir)
	}
	ctx, c.cancel = context.WithCancel(context.Background())
	c.done.Go(func() { c.loop(ctx) })
	return nil
}

// addTree watches dir and the directories under it, but not hidden ones,
// __pycache__ or virtual environments.
func (c *CodeWatcher) addTree(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != dir && (strings.HasPrefix(name, ".") || name == "__pycache__" || name == "node_modules" ||
			fileExists(filepath.Join(p, "pyvenv.cfg"))) {
			return filepath.SkipDir
		}
		c.w.Add(p)
		return nil
	})
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func (c *CodeWatcher) loop(ctx context.Context) {
	filewatch.Settled(ctx, c.w,
		func(ev fsnotify.Event) bool {
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					c.addTree(ev.Name) // a new directory is watched too
				}
			}
			return strings.HasSuffix(ev.Name, ".py") && !ev.Has(fsnotify.Chmod)
		},
		func(changed string) {
			c.Pool.log.Info("code changed; reloading the workers", "file", changed)
			if err := c.Pool.Reload(ctx); err != nil {
				c.Pool.log.Error("the reload failed; the old workers go on serving", "err", err)
			} else {
				c.Pool.log.Info("workers reloaded")
			}
		},
		func(err error) { c.Pool.log.Warn("watching the code", "err", err) })
}

// Stop stops watching.
func (c *CodeWatcher) Stop(ctx context.Context) error {
	c.cancel()
	err := c.w.Close()
	c.done.Wait()
	return err
}

// String names the service in messages.
func (c *CodeWatcher) String() string { return "code watcher for " + c.Pool.String() }
