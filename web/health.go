package web

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/torsion-server/torsion/service"
)

// Health answers the health checks of load balancers and orchestrators
// (HAProxy's option httpchk, Kubernetes probes): 200 while the server is
// ready, 503 while it starts, while it stops, and while any of Checks
// fails (a WSGI pool with no worker alive, say), so that an instance is
// taken out of rotation before it goes away. Serve it on a listener of its
// own that starts before everything else and stops after it, and put
// Marker last in the same service tree.
type Health struct {
	// Checks must all report true for the server to be ready.
	Checks []func() bool
	ready  atomic.Bool
}

// ServeHTTP answers "ready" or "not ready".
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !h.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("not ready: starting or stopping\n"))
		return
	}
	for _, ok := range h.Checks {
		if !ok() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: no worker is running\n"))
			return
		}
	}
	w.Write([]byte("ready\n"))
}

// Marker is the service that makes h ready when it starts, that is once
// everything before it in the tree has started, and not ready as soon as
// the tree begins to stop, before anything else stops.
func (h *Health) Marker() service.Service { return healthMarker{h} }

type healthMarker struct{ h *Health }

func (m healthMarker) Start(context.Context) error { m.h.ready.Store(true); return nil }
func (m healthMarker) Stop(context.Context) error  { m.h.ready.Store(false); return nil }
func (m healthMarker) String() string              { return "health marker" }
