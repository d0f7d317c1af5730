// Package ops builds the operations torsion offers every plugin beside
// its own service: a Prometheus metrics port with the live status page
// (--metrics) and a health port for load balancers (--health). The cli
// package registers their options on every plugin's command, hands the
// plugin what it may add to (plugin.Env's Metrics and Health), and wraps
// the plugin's service with their listeners.
package ops

import (
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/metrics"
	"github.com/torsion-server/torsion/service"
	"github.com/torsion-server/torsion/web"
)

// Options are the operations asked for: endpoint descriptions, "" for
// none.
type Options struct {
	Metrics string
	Health  string
}

// AddFlags registers --metrics and --health on a plugin's flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Metrics, "metrics", "", "endpoint `DESC` serving Prometheus metrics and the status page (the plugin's own: HTTP requests, latency, bytes and workers for web, queries for dns, sessions, logins and deliveries for mail, logins for conch; Go and the process for all); keep it private, as tcp:9100:interface=127.0.0.1")
	fs.StringVar(&o.Health, "health", "", "endpoint `DESC` of a health check for load balancers: 200 while ready, 503 while starting, stopping or (web) without a live worker")
}

// Ops is what the options made: the registry and the health check a
// plugin adds to, and their ports.
type Ops struct {
	// Metrics is the registry, nil without --metrics.
	Metrics *metrics.Registry
	// Health is the health check, nil without --health; a plugin adds
	// its readiness checks to its Checks.
	Health *web.Health

	metricsEP, healthEP endpoint.Server
	log                 *slog.Logger
}

// New checks the options and makes what they ask for.
func New(o Options, log *slog.Logger) (*Ops, error) {
	x := &Ops{log: log}
	var err error
	if o.Metrics != "" {
		if x.metricsEP, err = endpoint.Parse(o.Metrics); err != nil {
			return nil, fmt.Errorf("--metrics: %w", err)
		}
		x.Metrics = metrics.New()
	}
	if o.Health != "" {
		if x.healthEP, err = endpoint.Parse(o.Health); err != nil {
			return nil, fmt.Errorf("--health: %w", err)
		}
		x.Health = &web.Health{}
	}
	return x, nil
}

// Wrap returns svc with the operations' ports around it, in the order
// they start: the health port first (503 while the rest starts), then the
// metrics port (the status page shows workers starting), svc, and last the
// health marker, which makes the check ready once all is up and not ready
// as soon as the stop begins. Without operations, svc itself.
func (x *Ops) Wrap(svc service.Service) service.Service {
	if x.Metrics == nil && x.Health == nil {
		return svc
	}
	m := service.NewMulti()
	if x.Health != nil {
		hlog := x.log.With(logging.SystemKey, "health")
		srv := httpserver.New(x.Health, httpserver.Options{ErrorLog: hlog})
		m.Add(&service.Listener{Endpoint: x.healthEP, Server: srv, Name: "Health", Log: hlog})
	}
	if x.Metrics != nil {
		mlog := x.log.With(logging.SystemKey, "metrics")
		var bound []string // a name the port was bound to, for KnownHosts
		if tcp, ok := x.metricsEP.(endpoint.TCP); ok && tcp.Interface != "" {
			bound = append(bound, tcp.Interface)
		}
		WarnReachable(mlog, "--metrics", x.metricsEP)
		srv := httpserver.New(web.KnownHosts(x.Metrics.Handler(), bound...), httpserver.Options{ErrorLog: mlog})
		srv.RegisterOnShutdown(x.Metrics.EndStreams)
		m.Add(&service.Listener{Endpoint: x.metricsEP, Server: srv, Name: "Metrics", Log: mlog})
	}
	m.Add(svc)
	if x.Health != nil {
		m.Add(x.Health.Marker())
	}
	return m
}

// WarnReachable warns that a private port (metrics, control) listens
// where other machines can reach it.
func WarnReachable(log *slog.Logger, flag string, ep endpoint.Server) {
	if !endpoint.Local(ep) {
		log.Warn("a private port listens where other machines can reach it; give interface=127.0.0.1, or unix:PATH:mode=0600", "option", flag, "endpoint", ep.String())
	}
}
