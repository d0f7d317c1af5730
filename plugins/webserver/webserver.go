// Package webserver is the "web" plugin: torsion's "twist web".
package webserver

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/plugin"
	"github.com/torsion-server/torsion/service"
	"github.com/torsion-server/torsion/web"
	"github.com/torsion-server/torsion/wsgi"
)

func init() {
	plugin.Register(plugin.Plugin{
		Name:        "web",
		Description: "A general-purpose web server which can serve from a filesystem or application resource.",
		Usage: `Examples:
  torsion web --path ./site                       serve a directory on tcp:8080
  torsion web --wsgi hello.application            serve a WSGI application (hello.py)
  torsion web --wsgi app:app --workers 4 --threads 2 --timeout 30s
  torsion web --port tcp:8000:interface=127.0.0.1 serve the demo page on localhost
  torsion web --port tcp:80 --port tcp6:80 --path /srv/www

Without --port, the port is tcp:$PORT when $PORT is set (the PaaS
convention), else tcp:8080. Without --path, a demo page is served.`,
		Flags: flags,
	})
}

type options struct {
	ports          []string
	path           string
	wsgi           wsgi.Config
	index          []string
	noListing      bool
	allowSymlinks  bool
	headerTimeout  time.Duration
	idleTimeout    time.Duration
	maxHeaderBytes int
	maxRequestLine int
	maxHeaders     int
}

func flags(fs *pflag.FlagSet) plugin.Maker {
	o := &options{}
	fs.StringArrayVar(&o.ports, "port", nil, "endpoint `DESC` to listen on, such as tcp:8080:interface=127.0.0.1 or unix:/run/web.sock (repeatable)")
	fs.StringVar(&o.path, "path", "", "serve the files under `DIR`")
	fs.StringVar(&o.wsgi.App, "wsgi", "", "serve the WSGI application `MODULE.ATTR` or MODULE:ATTR (the current directory is on the import path)")
	fs.StringVar(&o.wsgi.Python, "python", "", "Python interpreter for --wsgi (default: $VIRTUAL_ENV/bin/python if set, else python3)")
	fs.StringArrayVar(&o.wsgi.PythonPath, "pythonpath", nil, "add `DIR` to the import path (repeatable)")
	fs.StringVar(&o.wsgi.Dir, "chdir", "", "run the workers in `DIR`, which is also on the import path")
	fs.IntVar(&o.wsgi.Workers, "workers", 0, "number of worker processes (default: the number of CPUs)")
	fs.IntVar(&o.wsgi.Threads, "threads", 1, "threads in each worker process")
	fs.DurationVar(&o.wsgi.Timeout, "timeout", 0, "kill a worker stuck in one request for longer than this and answer 504 (0: never)")
	fs.IntVar(&o.wsgi.MaxRequests, "max-requests", 0, "recycle a worker after this many requests (0: never)")
	fs.IntVar(&o.wsgi.MaxRequestsJitter, "max-requests-jitter", 0, "add up to this many requests to --max-requests, per worker")
	fs.IntVar(&o.wsgi.BodyBuffer, "body-buffer", 1<<20, "bytes of request body received before the request takes a worker")
	fs.Int64Var(&o.wsgi.MaxBody, "max-body", 0, "answer 413 to request bodies larger than this many bytes (0: no limit)")
	fs.StringArrayVar(&o.index, "index", nil, "file `NAME` served for a directory (repeatable; default index.html)")
	fs.BoolVar(&o.noListing, "no-listing", false, "answer 403 for directories without an index instead of listing them")
	fs.BoolVar(&o.allowSymlinks, "allow-symlinks", false, "follow symbolic links that point outside --path")
	fs.DurationVar(&o.headerTimeout, "header-timeout", 30*time.Second, "close connections that take longer than this to send request headers")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 120*time.Second, "close keep-alive connections idle for this long")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", 64<<10, "largest request head (request line and headers) accepted, in bytes; more gets 431")
	fs.IntVar(&o.maxRequestLine, "max-request-line", 8<<10, "longest request line accepted, in bytes; longer gets 414")
	fs.IntVar(&o.maxHeaders, "max-headers", 100, "most header fields accepted in a request; more gets 431")
	return o.make
}

// DefaultPort returns the endpoint used without --port: tcp:$PORT when
// $PORT is set, else tcp:8080.
func DefaultPort() string {
	if p := os.Getenv("PORT"); p != "" {
		return "tcp:" + p
	}
	return "tcp:8080"
}

func (o *options) make(env plugin.Env) (service.Service, error) {
	ports := o.ports
	if len(ports) == 0 {
		ports = []string{DefaultPort()}
	}
	var eps []endpoint.Server
	for _, p := range ports {
		ep, err := endpoint.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("--port: %w", err)
		}
		eps = append(eps, ep)
	}
	if o.headerTimeout <= 0 || o.idleTimeout <= 0 || o.maxHeaderBytes <= 0 || o.maxRequestLine <= 0 || o.maxHeaders <= 0 {
		return nil, fmt.Errorf("--header-timeout, --idle-timeout, --max-header-bytes, --max-request-line and --max-headers must be positive")
	}
	var h http.Handler = web.DemoPage{}
	m := service.NewMulti()
	if o.path != "" && o.wsgi.App != "" {
		return nil, fmt.Errorf("--path and --wsgi are alternatives; give one")
	}
	if o.wsgi.App != "" {
		o.wsgi.Log = env.Log.With(logging.SystemKey, "wsgi")
		pool, err := wsgi.New(o.wsgi)
		if err != nil {
			return nil, fmt.Errorf("--wsgi: %w", err)
		}
		m.Add(pool) // started before the listeners, stopped after them
		h = pool
	}
	if o.path != "" {
		fi, err := os.Stat(o.path)
		if err != nil {
			return nil, fmt.Errorf("--path: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("--path %s: not a directory", o.path)
		}
		s, err := web.NewStatic(o.path, web.StaticOptions{Index: o.index, NoListing: o.noListing, FollowSymlinks: o.allowSymlinks})
		if err != nil {
			return nil, fmt.Errorf("--path: %w", err)
		}
		h = s
	} else if len(o.index) > 0 || o.noListing || o.allowSymlinks {
		return nil, fmt.Errorf("--index, --no-listing and --allow-symlinks need --path")
	}
	log := env.Log.With(logging.SystemKey, "web")
	access := env.Log.With(logging.SystemKey, "access")
	for _, ep := range eps {
		srv := web.NewServer(h, access, web.ServerOptions{
			ReadHeaderTimeout: o.headerTimeout,
			IdleTimeout:       o.idleTimeout,
			MaxHeaderBytes:    o.maxHeaderBytes,
			MaxRequestLine:    o.maxRequestLine,
			MaxHeaders:        o.maxHeaders,
		})
		m.Add(&service.Listener{Endpoint: ep, Server: srv, Name: "Site", Log: log})
	}
	return m, nil
}
