package dnsserver

import (
	"context"
	"path/filepath"

	"github.com/fsnotify/fsnotify"

	"github.com/torsion-server/torsion/internal/filewatch"
)

// watch reads the files again (Reload) whenever one of them changes on
// disk, once the changes have settled (filewatch), until ctx ends. It watches their
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
		filewatch.Settled(ctx, w,
			func(ev fsnotify.Event) bool { return names[ev.Name] && !ev.Has(fsnotify.Chmod) },
			func(changed string) {
				s.log().Info("a DNS file changed; reading the files again", "file", changed)
				if err := s.Reload(ctx); err != nil {
					s.log().Error("the DNS files do not load; the old answers go on", "err", err)
				}
			},
			func(err error) { s.log().Warn("watching the DNS files", "err", err) })
	})
	return nil
}
