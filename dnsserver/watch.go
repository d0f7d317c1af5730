package dnsserver

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long the files must stay unchanged before they are read
// again: an editor's save, or a tool's write and rename, is several events.
const settle = 300 * time.Millisecond

// watch reads the files again (Reload) whenever one of them changes on
// disk, once the changes have settled, until ctx ends. It watches their
// directories, not the files, so a file replaced by a rename (as editors
// and configuration tools save) is followed; a change that does not load
// is logged, and the old answers go on.
func (s *Server) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, f := range append(append([]string(nil), s.HostsFiles...), s.ZoneFiles...) {
		abs, err := filepath.Abs(f)
		if err != nil {
			w.Close()
			return err
		}
		names[abs] = true
		if err := w.Add(filepath.Dir(abs)); err != nil {
			w.Close()
			return err
		}
	}
	s.watching.Go(func() {
		defer w.Close()
		var timer <-chan time.Time
		changed := ""
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-w.Errors:
				s.log().Warn("watching the DNS files", "err", err)
			case ev := <-w.Events:
				if names[ev.Name] && !ev.Has(fsnotify.Chmod) {
					changed, timer = ev.Name, time.After(settle)
				}
			case <-timer:
				timer = nil
				s.log().Info("a DNS file changed; reading the files again", "file", changed)
				if err := s.Reload(ctx); err != nil {
					s.log().Error("the DNS files do not load; the old answers go on", "err", err)
				}
			}
		}
	})
	return nil
}
