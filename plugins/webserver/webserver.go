// Package webserver is the "web" plugin: torsion's "twist web".
package webserver

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/control"
	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/internal/handover"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/metrics"
	"github.com/torsion-server/torsion/ops"
	"github.com/torsion-server/torsion/plugin"
	"github.com/torsion-server/torsion/protocol"
	"github.com/torsion-server/torsion/service"
	"github.com/torsion-server/torsion/web"
	"github.com/torsion-server/torsion/workers"
	"github.com/torsion-server/torsion/wsgi"
)

func init() {
	plugin.Register(plugin.Plugin{
		Name:        "web",
		Description: "A web server for files and Python applications, WSGI and ASGI (Flask, Django, FastAPI...), over HTTP/1.1 and HTTP/2.",
		ArgsUsage:   "[MODULE:APP]",
		Usage: `Examples:
  torsion web --path ./site                       serve a directory on tcp:8080
  torsion web --wsgi hello.application            serve a WSGI application (hello.py)
  torsion web -b 127.0.0.1:8000 app:app           the same, as gunicorn takes it
  torsion web --asgi main:app                     serve an ASGI application (FastAPI, Starlette, Django...)
  torsion web --wsgi app:app --workers 4 --threads 2 --timeout 30s
  torsion web --port tcp:8000:interface=127.0.0.1 serve the demo page on localhost
  torsion web --port tcp:80 --port tcp6:80 --path /srv/www
  torsion web --port ssl:8443:privateKey=key.pem:certKey=cert.pem --wsgi app:app
  torsion web --port txsni:certs:tcp:443 --path ./www  (certs/HOST.pem, DEFAULT.pem)
  torsion web --wsgi app.application --static /static=./static
  torsion web --wsgi site:app --mount /api=asgi:api:app --mount /old=proxy:http://127.0.0.1:9000
  torsion web --path ./www --vhost blog.example.org=wsgi:blog:app --vhost '*.example.net=path:./net'

Static directories also serve FILE.br or FILE.gz beside FILE to clients
that accept that encoding.

Without --port, the port is tcp:$PORT when $PORT is set (the PaaS
convention), else tcp:8080. Without --path, a demo page is served.`,
		Flags: flags,
	})
}

type options struct {
	ports          []string
	listens        []string // --listen, twist web's name for --port
	binds          []string // -b/--bind, gunicorn's HOST:PORT
	path           string
	wsgi           wsgi.Config
	asgi           string
	index          []string
	noListing      bool
	allowSymlinks  bool
	headerTimeout  time.Duration
	idleTimeout    time.Duration
	maxHeaderBytes int
	maxRequestLine int
	maxHeaders     int
	maxStreams     int
	accessFormat   string
	refuseUnder    bool
	bodyMemory     int64
	bodyDisk       int64
	clientConns    int
	clientStreams  int
	clientExempt   string
	statics        []string
	mounts         []string
	vhosts         []string
	cacheControl   string
	proxyTimeout   time.Duration
	h2c            bool
	legacyCiphers  bool
	controls       []string
	reload         bool
	ampControls    []string
	proxyHeaders   bool
	allowIPs       string
	fwdFields      string
	fs             *pflag.FlagSet
}

func flags(fs *pflag.FlagSet) plugin.Maker { return newOptions(fs).make }

// newOptions registers the web plugin's options on fs.
func newOptions(fs *pflag.FlagSet) *options {
	o := &options{fs: fs}
	// The defaults are the libraries': stated once, in DefaultConfig and
	// DefaultOptions.
	wd, hd := wsgi.DefaultConfig(), httpserver.DefaultOptions()
	fs.StringArrayVar(&o.ports, "port", nil, "endpoint `DESC` to listen on, such as tcp:8080:interface=127.0.0.1 or unix:/run/web.sock (repeatable)")
	fs.StringArrayVar(&o.listens, "listen", nil, "endpoint `DESC` to listen on: the same as --port, twist web's name for it (repeatable)")
	fs.StringArrayVarP(&o.binds, "bind", "b", nil, "`HOST:PORT` or unix:PATH to listen on, gunicorn's form (repeatable): 127.0.0.1:8000 is tcp:8000:interface=127.0.0.1")
	fs.StringVar(&o.path, "path", "", "serve the files under `DIR`")
	fs.StringVar(&o.wsgi.App, "wsgi", "", "serve the WSGI application `MODULE.ATTR` or MODULE:ATTR (the current directory is on the import path)")
	fs.StringVar(&o.wsgi.Loop, "asgi-loop", wd.Loop, "event loop of --asgi workers: `asyncio|uvloop` (uvloop must be installed for the --python interpreter)")
	fs.StringVar(&o.asgi, "asgi", "", fmt.Sprintf("serve the ASGI 3 application `MODULE:ATTR` (FastAPI, Starlette, Quart...): each worker runs it on an asyncio event loop, --threads requests at a time (default %d); the --wsgi options apply", workers.DefaultASGITasks))
	fs.StringVar(&o.wsgi.Python, "python", "", "the Python interpreter `PATH` of --wsgi and --asgi workers (default: $VIRTUAL_ENV/bin/python if set, else the virtualenv's python when torsion is installed in one, else python3)")
	fs.StringArrayVar(&o.wsgi.PythonPath, "pythonpath", nil, "add `DIR` to the import path (repeatable)")
	fs.StringArrayVar(&o.wsgi.Env, "env", nil, "`KEY=VALUE` to set in the workers' environment (repeatable)")
	fs.StringVar(&o.wsgi.Dir, "chdir", "", "run the workers in `DIR`, which is also on the import path")
	plugin.RangeVar(fs, &o.wsgi.Workers, &o.wsgi.MaxWorkers, "workers", "w", "worker processes: N, or MIN:MAX to start MIN and add workers while requests wait, up to MAX, retiring them when idle (default: the number of CPUs)")
	plugin.DurationVar(fs, &o.wsgi.ScaleUpWait, "scale-up-wait", "", wd.ScaleUpWait, "with --workers MIN:MAX, add a worker once a request has waited this long for one")
	plugin.DurationVar(fs, &o.wsgi.ScaleUpEvery, "scale-up-interval", "", wd.ScaleUpEvery, "with --workers MIN:MAX, add at most one worker per interval, so that a burst does not start a storm of them")
	plugin.DurationVar(fs, &o.wsgi.ScaleDownIdle, "scale-down-idle", "", wd.ScaleDownIdle, "with --workers MIN:MAX, retire an added worker once it has been idle this long (never below MIN)")
	fs.IntVar(&o.wsgi.Threads, "threads", wd.Threads, "`N` threads in each worker process")
	plugin.DurationVar(fs, &o.wsgi.Timeout, "timeout", "t", 0, "kill a worker stuck in one request for longer than this and answer 504, logging the Python stack of each of its threads (0: never)")
	plugin.DurationVar(fs, &o.wsgi.StartTimeout, "startup-timeout", "", wd.StartTimeout, "fail a worker that has not imported the application within this, logging where its threads were")
	fs.IntVar(&o.wsgi.MaxRequests, "max-requests", 0, "recycle a worker after `N` requests (0: never)")
	fs.IntVar(&o.wsgi.MaxRequestsJitter, "max-requests-jitter", 0, "add up to `N` requests to --max-requests, per worker")
	plugin.BytesVar(fs, &o.wsgi.BodyBuffer, "body-buffer", "", wd.BodyBuffer, "`BYTES` of request body received in memory before the request takes a worker")
	plugin.BytesVar(fs, &o.wsgi.BodySpool, "body-spool", "", wd.BodySpool, "`BYTES` of request body received after --body-buffer, into a temporary file, before the request takes a worker, so slow uploads hold no worker; the rest of a larger body streams (0: stream all past --body-buffer)")
	plugin.DurationVar(fs, &o.wsgi.MaxLifetime, "max-worker-lifetime", "", 0, "recycle a worker that has run this long, after its requests, one worker at a time (0: never)")
	plugin.DurationVar(fs, &o.wsgi.MaxLifetimeJitter, "max-worker-lifetime-jitter", "", 0, "add up to this much to --max-worker-lifetime, per worker, so that workers started together are not recycled together")
	plugin.DurationVar(fs, &o.wsgi.IdleTimeout, "worker-idle-timeout", "", 0, "recycle a worker that has held no request for this long, one worker at a time (0: never)")
	plugin.BytesVar(fs, &o.wsgi.MaxMemory, "max-worker-memory", "", 0, "recycle a worker whose resident memory stays above `BYTES`, after its requests (0: no limit; Linux only)")
	fs.IntVar(&o.wsgi.MaxQueue, "max-queue", wd.MaxQueue, "`N` requests that may wait when every worker is busy; more get 503 with Retry-After (0: no bound)")
	plugin.BytesVar(fs, &o.wsgi.MaxBody, "max-body", "", wd.MaxBody, "answer 413 to request bodies larger than `BYTES` (0: no limit)")
	plugin.BytesVar(fs, &o.bodyMemory, "body-memory", "", wsgi.DefaultBodyMemory, "`BYTES` of memory that the request bodies --body-buffer receives may hold together; past it, bodies go to the spool")
	plugin.BytesVar(fs, &o.bodyDisk, "body-disk", "", wsgi.DefaultBodyDisk, "`BYTES` of spool files that the request bodies --body-spool receives may hold together; past it, requests with bodies get 503")
	fs.StringVar(&o.wsgi.SpoolDir, "spool-dir", "", "`DIR` for the spool files of request bodies (default: $TMPDIR or /tmp)")
	plugin.DurationVar(fs, &o.wsgi.ClientTimeout, "client-timeout", "", wd.ClientTimeout, "drop a client that takes nothing of a response, or sends nothing of a body a worker is reading, for this long")
	plugin.DurationVar(fs, &o.wsgi.WebSocketIdle, "ws-idle-timeout", "", wd.WebSocketIdle, "close an ASGI WebSocket over which no message has passed for this long, pinging the client at half of it (pongs do not count; 0: never)")
	fs.IntVar(&o.wsgi.MaxWebSockets, "max-websockets", wd.MaxWebSockets, "most WebSockets open to an ASGI application at once (`N`); more get 503. They do not take the places of --threads requests")
	fs.StringArrayVar(&o.controls, "control", nil, "endpoint `DESC` of a control port for the --wsgi application: each line sent there goes to its torsion.control handler in every worker (repeatable; restrict access with interface=127.0.0.1 or unix:PATH:mode=0600)")
	fs.StringArrayVar(&o.ampControls, "amp", nil, "endpoint `DESC` of an AMP control port for the --wsgi application: each command runs in every worker, with the locator it registered with torsion.locator() (repeatable; restrict access as for --control)")
	fs.BoolVar(&o.reload, "reload", false, "for development: reload the WSGI workers when a .py file under --chdir or --pythonpath changes")
	fs.StringArrayVar(&o.statics, "static", nil, "`PREFIX=DIR`: serve the files under DIR at PREFIX, beside the root (repeatable)")
	fs.StringArrayVar(&o.mounts, "mount", nil, "`PREFIX=SPEC`: serve SPEC at PREFIX, SPEC being wsgi:MODULE.ATTR, asgi:MODULE:ATTR, path:DIR or proxy:URL; the longest prefix wins (repeatable)")
	fs.StringArrayVar(&o.vhosts, "vhost", nil, "`HOST=SPEC`: serve SPEC (as for --mount) for requests to HOST, which may be *.DOMAIN; other hosts get the root, or 404 without one (repeatable)")
	fs.StringVar(&o.cacheControl, "static-cache-control", "", "send `VALUE` as the Cache-Control of static files, such as \"public, max-age=3600\"")
	plugin.DurationVar(fs, &o.proxyTimeout, "proxy-timeout", "", 60*time.Second, "answer 504 when a proxy:URL backend takes longer than this to send its response headers")
	fs.BoolVar(&o.h2c, "h2c", false, "also serve cleartext HTTP/2 (prior knowledge) on plain ports; TLS ports always offer HTTP/2")
	fs.BoolVar(&o.legacyCiphers, "tls-legacy-ciphers", false, "also offer TLS 1.2 suites with AES-CBC and SHA-1 (after the AEAD ones) for clients from before about 2014, such as Android 4.3 and Java 7")
	fs.BoolVar(&o.proxyHeaders, "proxy-headers", false, "believe Forwarded and X-Forwarded-For/-Proto/-Host from --forwarded-allow-ips for the client's address, scheme and host")
	fs.StringVar(&o.allowIPs, "forwarded-allow-ips", "127.0.0.1,::1", "comma-separated `LIST` of proxy addresses and CIDR prefixes that --proxy-headers trusts; * trusts all")
	fs.StringVar(&o.fwdFields, "forwarded-fields", "for,proto,host", "comma-separated `LIST` of what --proxy-headers believes: for (the client's address), proto (the scheme), host")
	fs.StringArrayVar(&o.index, "index", nil, "file `NAME` served for a directory (repeatable; default index.html)")
	fs.BoolVar(&o.noListing, "no-listing", false, "answer 403 for directories without an index instead of listing them")
	fs.BoolVar(&o.allowSymlinks, "allow-symlinks", false, "follow symbolic links that point outside the served directories")
	plugin.DurationVar(fs, &o.headerTimeout, "header-timeout", "", hd.ReadHeaderTimeout, "close connections that take longer than this to send request headers")
	plugin.DurationVar(fs, &o.idleTimeout, "idle-timeout", "", hd.IdleTimeout, "close keep-alive connections idle for this long")
	plugin.BytesVar(fs, &o.maxHeaderBytes, "max-header-bytes", "", hd.MaxHeaderBytes, "largest request head (request line and headers) accepted, in `BYTES`; more gets 431")
	plugin.BytesVar(fs, &o.maxRequestLine, "max-request-line", "", hd.MaxRequestLine, "longest request line accepted, in `BYTES`; longer gets 414")
	fs.IntVar(&o.maxHeaders, "max-headers", hd.MaxHeaders, "most header fields accepted in a request (`N`); more gets 431")
	// The names gunicorn's and uvicorn's users type, for what is the same.
	plugin.Alias(fs, "keep-alive", "idle-timeout")
	plugin.Alias(fs, "timeout-keep-alive", "idle-timeout")
	plugin.Alias(fs, "limit-request-line", "max-request-line")
	plugin.Alias(fs, "limit-request-fields", "max-headers")
	plugin.Alias(fs, "app-dir", "chdir")
	plugin.Alias(fs, "loop", "asgi-loop")
	fs.StringVar(&o.accessFormat, "access-logformat", "", "the access line's `LAYOUT` in gunicorn's atoms, such as '%(h)s %(t)s \"%(r)s\" %(s)s %(D)s %({X-Request-Id}i)s' (default: Apache's combined format; with the request id after it when the lines go with the rest of the log)")
	fs.BoolVar(&o.refuseUnder, "refuse-underscore-headers", false, "answer 400 to a request with a header name that holds an underscore, instead of dropping the field (as nginx and gunicorn do)")
	fs.IntVar(&o.maxStreams, "max-streams", hd.MaxConcurrentStreams, "most HTTP/2 streams one connection may have open at once (`N`)")
	fs.IntVar(&o.clientConns, "max-client-conns", hd.MaxClientConns, "most connections one client address (an IPv6 /64) may hold open (`N`); more are closed as they arrive")
	fs.IntVar(&o.clientStreams, "max-client-streams", hd.MaxClientStreams, "most HTTP/2 requests one client address may have in flight over all its connections (`N`); more get 429")
	fs.StringVar(&o.clientExempt, "client-limit-exempt", "127.0.0.1,::1", "comma-separated `LIST` of addresses and CIDR prefixes that --max-client-conns and --max-client-streams do not count, such as a proxy in front (\"\": none)")
	return o
}

// appSpec is what a positional application looks like: MODULE:ATTR or
// MODULE.ATTR, dotted names.
var appSpec = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.]*)?$`)

// DefaultPort returns the endpoint used without --port: tcp:$PORT when
// $PORT is set, else tcp:8080.
func DefaultPort() string {
	if p := os.Getenv("PORT"); p != "" {
		return "tcp:" + p
	}
	return "tcp:8080"
}

// make builds the web service in stages, as Caddy provisions and
// validates a module: the positional arguments, the checks of the
// options, the resource tree, the wrappers around it, and the listeners.
func (o *options) make(env plugin.Env) (service.Service, error) {
	if err := o.takeArgs(env.Args); err != nil {
		return nil, err
	}
	c, err := o.check()
	if err != nil {
		return nil, err
	}
	o.wsgi.Bodies = wsgi.NewBodyBudget(o.bodyMemory, o.bodyDisk) // shared by every application
	b := &builder{o: o, env: env, m: service.NewMulti(), reg: env.Metrics}
	if b.reg != nil {
		b.reg.EnableHTTP()
	}
	h, err := b.tree()
	if err != nil {
		return nil, err
	}
	if h, err = b.wrap(h, c); err != nil {
		return nil, err
	}
	if err := b.listen(h, c); err != nil {
		return nil, err
	}
	if env.Health != nil { // ready with a live worker in every pool
		for _, p := range b.pools {
			env.Health.Checks = append(env.Health.Checks, p.Ready)
		}
	}
	return b.m, nil
}

// takeArgs takes gunicorn's positional application (torsion web -b :8000
// app:app, served as what it is, WSGI or ASGI) and gunicorn's
// $WEB_CONCURRENCY.
func (o *options) takeArgs(args []string) error {
	switch {
	case len(args) > 1:
		return fmt.Errorf("%q: give one application, MODULE:APP (as gunicorn takes it), or its options", args[1:])
	case len(args) == 1 && (o.wsgi.App != "" || o.asgi != "" || o.path != ""):
		return fmt.Errorf("%q: the root is given already (--wsgi, --asgi or --path); mount more with --mount", args[0])
	case len(args) == 1 && !appSpec.MatchString(args[0]):
		return fmt.Errorf("%q is not an application, MODULE:APP; endpoints go in --port or -b", args[0])
	case len(args) == 1:
		o.wsgi.App, o.wsgi.DetectInterface = args[0], true
	}
	if v := os.Getenv("WEB_CONCURRENCY"); v != "" && !o.fs.Changed("workers") {
		// gunicorn's default for --workers, which platforms set.
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("$WEB_CONCURRENCY %q: want a number of workers, at least 1", v)
		}
		o.wsgi.Workers = n
	}
	return nil
}

// checked is what the checks of the options made of them.
type checked struct {
	eps       []endpoint.Server // the site's
	exempt    []netip.Prefix    // --client-limit-exempt
	trusted   []netip.Prefix    // with --proxy-headers; nil without
	fwdFields web.ForwardedFields
}

// check checks the options that stand alone and parses the endpoints
// and address lists.
func (o *options) check() (checked, error) {
	var c checked
	var err error
	if c.eps, err = o.endpoints(); err != nil {
		return c, err
	}
	if err := o.checkNumbers(); err != nil {
		return c, err
	}
	// On the command line 0 turns a limit off; in wsgi.Config, 0 takes
	// the default and a negative value turns it off.
	offIfZero(&o.wsgi.WebSocketIdle)
	offIfZero(&o.wsgi.MaxBody)
	offIfZero(&o.wsgi.MaxQueue)
	if c.exempt, err = web.ParseTrusted(o.clientExempt); err != nil {
		return c, fmt.Errorf("--client-limit-exempt: %w", err)
	}
	if o.wsgi.Loop != "asyncio" && o.wsgi.Loop != "uvloop" {
		return c, fmt.Errorf("--asgi-loop %q: want asyncio or uvloop", o.wsgi.Loop)
	}
	if n := btoi(o.path != "") + btoi(o.wsgi.App != "") + btoi(o.asgi != ""); n > 1 {
		return c, fmt.Errorf("--path, --wsgi and --asgi are alternatives for the root; mount more with --static or --mount")
	}
	if (len(o.controls) > 0 || len(o.ampControls) > 0) && o.wsgi.App == "" && o.asgi == "" {
		return c, fmt.Errorf("--control and --amp need --wsgi or --asgi: they change the application at the root")
	}
	if o.wsgi.BodySpool < 0 {
		return c, fmt.Errorf("--body-spool cannot be negative")
	}
	offIfZero(&o.wsgi.BodySpool)
	if !o.proxyHeaders {
		if o.fs.Changed("forwarded-allow-ips") || o.fs.Changed("forwarded-fields") {
			return c, fmt.Errorf("--forwarded-allow-ips and --forwarded-fields need --proxy-headers")
		}
		return c, nil
	}
	if c.trusted, err = web.ParseTrusted(o.allowIPs); err != nil {
		return c, fmt.Errorf("--forwarded-allow-ips: %w", err)
	}
	if c.trusted == nil {
		c.trusted = []netip.Prefix{} // trust nobody, except Unix sockets
	}
	if c.fwdFields, err = web.ParseForwardedFields(o.fwdFields); err != nil {
		return c, fmt.Errorf("--forwarded-fields: %w", err)
	}
	if c.fwdFields == 0 {
		return c, fmt.Errorf("--forwarded-fields: name at least one of for, proto, host, or leave out --proxy-headers")
	}
	return c, nil
}

// offIfZero turns the command line's 0 ("off", "none", "never") into
// wsgi.Config's -1.
func offIfZero[T int | int64 | time.Duration](v *T) {
	if *v == 0 {
		*v = -1
	}
}

// endpoints parses the site's endpoints: --port, --listen and --bind, or
// DefaultPort.
func (o *options) endpoints() ([]endpoint.Server, error) {
	type given struct{ flag, desc string } // for error messages
	var ports []given
	for _, p := range o.ports {
		ports = append(ports, given{"--port", p})
	}
	for _, p := range o.listens {
		ports = append(ports, given{"--listen", p})
	}
	for _, b := range o.binds {
		desc, err := endpoint.FromBind(b)
		if err != nil {
			return nil, fmt.Errorf("--bind: %w", err)
		}
		ports = append(ports, given{"--bind", desc})
	}
	if len(ports) == 0 {
		ports = []given{{"--port", DefaultPort()}}
	}
	var eps []endpoint.Server
	for _, p := range ports {
		ep, err := endpoint.Parse(p.desc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.flag, err)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// checkNumbers checks the numeric options' ranges.
func (o *options) checkNumbers() error {
	for _, c := range []struct {
		flag string
		bad  bool
		want string
	}{
		{"--workers", o.fs.Changed("workers") && o.wsgi.Workers < 1, "at least 1"},
		{"--scale-up-wait", o.wsgi.ScaleUpWait <= 0, "positive"},
		{"--scale-up-interval", o.wsgi.ScaleUpEvery <= 0, "positive"},
		{"--scale-down-idle", o.wsgi.ScaleDownIdle <= 0, "positive"},
		{"--threads", o.wsgi.Threads < 1, "at least 1"},
		{"--max-requests", o.wsgi.MaxRequests < 0, "0 (never) or more"},
		{"--max-requests-jitter", o.wsgi.MaxRequestsJitter < 0, "0 or more"},
		{"--body-buffer", o.wsgi.BodyBuffer < 1, "at least 1"},
		{"--max-body", o.wsgi.MaxBody < 0, "0 (no limit) or more"},
		{"--body-memory", o.bodyMemory <= 0, "positive"},
		{"--max-websockets", o.wsgi.MaxWebSockets < 1, "at least 1"},
		{"--body-disk", o.bodyDisk <= 0, "positive"},
		{"--max-worker-memory", o.wsgi.MaxMemory < 0, "0 (no limit) or more"},
		{"--timeout", o.wsgi.Timeout < 0, "0 (never) or more"},
		{"--startup-timeout", o.wsgi.StartTimeout <= 0, "positive"},
		{"--max-worker-lifetime", o.wsgi.MaxLifetime < 0, "0 (never) or more"},
		{"--max-worker-lifetime-jitter", o.wsgi.MaxLifetimeJitter < 0, "0 or more"},
		{"--worker-idle-timeout", o.wsgi.IdleTimeout < 0, "0 (never) or more"},
		{"--max-queue", o.wsgi.MaxQueue < 0, "0 (no bound) or more"},
	} {
		if c.bad {
			return fmt.Errorf("%s must be %s", c.flag, c.want)
		}
	}
	if o.headerTimeout <= 0 || o.idleTimeout <= 0 || o.maxHeaderBytes <= 0 || o.maxRequestLine <= 0 || o.maxHeaders <= 0 || o.maxStreams <= 0 || o.clientConns <= 0 || o.clientStreams <= 0 {
		return fmt.Errorf("--header-timeout, --idle-timeout, --max-header-bytes, --max-request-line, --max-headers, --max-streams, --max-client-conns and --max-client-streams must be positive")
	}
	return nil
}

// tree builds the resource tree: the root (--wsgi, --asgi or --path),
// the mounts (--static, --mount), and the virtual hosts around them.
func (b *builder) tree() (http.Handler, error) {
	o := b.o
	root := &web.Resource{}
	var err error
	switch {
	case o.wsgi.App != "":
		if root.Handler, err = b.wsgi("/", o.wsgi.App, false); err != nil {
			return nil, fmt.Errorf("--wsgi: %w", err)
		}
		b.root = root.Handler.(*wsgi.Pool)
	case o.asgi != "":
		if root.Handler, err = b.wsgi("/", o.asgi, true); err != nil {
			return nil, fmt.Errorf("--asgi: %w", err)
		}
		b.root = root.Handler.(*wsgi.Pool)
	case o.path != "":
		if root.Handler, err = b.static(o.path); err != nil {
			return nil, fmt.Errorf("--path: %w", err)
		}
	}
	if root.Handler != nil {
		root.Handler = b.label("/", root.Handler)
	}
	mounted := map[string]string{} // prefix -> the option that mounted it
	for _, m := range []struct {
		flag, spec string
		args       []string
	}{{"--static", "DIR", o.statics}, {"--mount", "SPEC", o.mounts}} {
		for _, arg := range m.args {
			if err := b.mount(root, mounted, m.flag, arg, m.spec); err != nil {
				return nil, err
			}
		}
	}
	if b.staticDirs == 0 && (len(o.index) > 0 || o.noListing || o.allowSymlinks || o.cacheControl != "") {
		return nil, fmt.Errorf("--index, --no-listing, --allow-symlinks and --static-cache-control need a directory to serve (--path, --static or --mount PREFIX=path:DIR)")
	}
	var h http.Handler = root
	switch {
	case len(mounted) == 0 && root.Handler == nil && len(o.vhosts) == 0:
		h = web.DemoPage{}
	case len(mounted) == 0 && root.Handler != nil:
		h = root.Handler // nothing to route
	}
	if len(o.vhosts) == 0 {
		return h, nil
	}
	v := &web.VHosts{}
	if len(mounted) > 0 || root.Handler != nil {
		v.Default = h
	}
	return v, b.vhosts(v)
}

// vhosts adds each --vhost HOST=SPEC to v.
func (b *builder) vhosts(v *web.VHosts) error {
	for _, arg := range b.o.vhosts {
		host, spec, ok := strings.Cut(arg, "=")
		if !ok || host == "" || spec == "" {
			return fmt.Errorf("--vhost %q: want HOST=SPEC", arg)
		}
		vh, err := b.spec(host, spec)
		if err != nil {
			return fmt.Errorf("--vhost %q: %w", arg, err)
		}
		if err := v.Add(host, b.label(host, vh)); err != nil {
			return fmt.Errorf("--vhost: %w", err)
		}
	}
	return nil
}

// mount mounts one --static PREFIX=DIR or --mount PREFIX=SPEC on root;
// mounted holds the prefixes taken, with the option that took each.
func (b *builder) mount(root *web.Resource, mounted map[string]string, flag, arg, spec string) error {
	prefix, rest, ok := strings.Cut(arg, "=")
	if !ok || !strings.HasPrefix(prefix, "/") || rest == "" {
		return fmt.Errorf("%s %q: want PREFIX=%s, the prefix starting with /", flag, arg, spec)
	}
	prefix = "/" + strings.Join(strings.FieldsFunc(prefix, func(r rune) bool { return r == '/' }), "/")
	if prefix == "/" && root.Handler != nil {
		return fmt.Errorf("%s %q: the root is already served by --wsgi, --path or another --mount /", flag, arg)
	}
	if prev, dup := mounted[prefix]; dup {
		return fmt.Errorf("%s %q: %s is already mounted by %s", flag, arg, prefix, prev)
	}
	mounted[prefix] = fmt.Sprintf("%s %q", flag, arg)
	var h http.Handler
	var err error
	if flag == "--static" {
		h, err = b.static(rest)
	} else {
		h, err = b.spec(prefix, rest)
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", flag, arg, err)
	}
	root.Mount(prefix, b.label(prefix, h))
	return nil
}

// wrap puts the wrappers around the tree, innermost first: the access log
// and the metrics (one observer), requests in flight, the proxy headers,
// the request id.
func (b *builder) wrap(h http.Handler, c checked) (http.Handler, error) {
	observers, err := b.observers()
	if err != nil {
		return nil, err
	}
	if len(observers) > 0 {
		h = web.Observe(h, observers...)
	}
	if reg := b.reg; reg != nil {
		h = reg.InFlight(h)
		for _, ep := range c.eps {
			reg.Listeners = append(reg.Listeners, ep.String())
		}
		seen := map[string]int{}
		for _, p := range b.pools {
			name := p.App()
			if seen[name]++; seen[name] > 1 { // the same app mounted twice: two pools
				name = fmt.Sprintf("%s#%d", name, seen[name])
			}
			reg.AddPool(name, p)
		}
	}
	var fromProxy func(*http.Request) bool // whose X-Request-ID to take
	if c.trusted != nil {
		h = web.ProxyHeaders(h, c.trusted, c.fwdFields) // outside the access log, which shows the real client
		fromProxy = web.TrustedPeers(c.trusted)
	}
	return web.RequestID(h, fromProxy), nil // outside ProxyHeaders, which replaces the peer's address
}

// accessLog is where the site's requests are logged.
func (b *builder) accessLog() *slog.Logger {
	if b.env.AccessLog != nil {
		return b.env.AccessLog
	}
	return b.env.Log.With(logging.SystemKey, "access")
}

// observers are what is told of each answer: the access log, in the
// format asked for, and the metrics.
func (b *builder) observers() ([]web.Observer, error) {
	var observers []web.Observer
	access := b.accessLog()
	switch {
	case !access.Enabled(context.Background(), slog.LevelInfo): // --access-logfile none
	case b.env.LogFormat == "json":
		observers = append(observers, web.AccessRecords(access))
	default:
		layout := web.CombinedWithIDFormat
		switch {
		case b.o.accessFormat != "":
			layout = b.o.accessFormat
		case b.env.AccessPlain:
			layout = web.CombinedFormat // what goaccess and awstats read
		}
		format, err := web.ParseAccessFormat(layout)
		if err != nil {
			return nil, fmt.Errorf("--access-logformat: %w", err)
		}
		observers = append(observers, web.AccessLinesFormat(access, format))
	}
	if b.reg != nil {
		observers = append(observers, b.reg.Observer())
	}
	return observers, nil
}

// listen adds the listeners: the site on each endpoint, then the control
// ports (--control, --amp).
func (b *builder) listen(h http.Handler, c checked) error {
	o, log := b.o, b.env.Log.With(logging.SystemKey, "web")
	var tlsHandshake func(error)
	if b.reg != nil {
		tlsHandshake = b.reg.TLSHandshake
	}
	for _, ep := range c.eps {
		srv := httpserver.New(h, httpserver.Options{
			ReadHeaderTimeout:    o.headerTimeout,
			IdleTimeout:          o.idleTimeout,
			ClientTimeout:        o.wsgi.ClientTimeout,
			MaxHeaderBytes:       o.maxHeaderBytes,
			MaxRequestLine:       o.maxRequestLine,
			MaxHeaders:           o.maxHeaders,
			MaxConcurrentStreams: o.maxStreams,
			RefuseUnderscores:    o.refuseUnder,
			MaxClientConns:       o.clientConns,
			MaxClientStreams:     o.clientStreams,
			ClientLimitExempt:    c.exempt,
			H2C:                  o.h2c,
			LegacyCiphers:        o.legacyCiphers,
			ErrorLog:             log,
			Refuse:               web.Refusals(b.accessLog()),
			TLSHandshake:         tlsHandshake,
		})
		for _, p := range b.pools {
			srv.RegisterOnShutdown(p.CloseWebSockets)
		}
		b.m.Add(&service.Listener{Endpoint: ep, Server: srv, Name: "Site", Log: log})
	}
	ctlLog := b.env.Log.With(logging.SystemKey, "control")
	for _, ctl := range []struct {
		flag, name string
		descs      []string
		server     func() service.Server
	}{
		{"--control", "Control", o.controls, func() service.Server {
			return &protocol.Server{Factory: control.Lines(b.root, protocol.DefaultMaxLineLength, ctlLog)}
		}},
		{"--amp", "AMP control", o.ampControls, func() service.Server { return &protocol.Server{ServeConn: control.AMP(b.root, ctlLog)} }},
	} {
		for _, desc := range ctl.descs {
			ep, err := endpoint.Parse(desc)
			if err != nil {
				return fmt.Errorf("%s: %w", ctl.flag, err)
			}
			ops.WarnReachable(ctlLog, ctl.flag, ep)
			b.m.Add(&service.Listener{Endpoint: ep, Server: ctl.server(), Name: ctl.name, Log: ctlLog})
		}
	}
	return nil
}

// builder makes the handlers of one web service; the worker pools it
// makes are added to m, so they start before the listeners and stop after.
type builder struct {
	o          *options
	root       *wsgi.Pool   // the --wsgi application's pool, if any
	pools      []*wsgi.Pool // every pool, root and mounted
	env        plugin.Env
	m          *service.Multi
	staticDirs int
	reg        *metrics.Registry // with --metrics
}

// label marks the answers of h, a mount or virtual host named name, for
// the metrics (web.Labeled); without --metrics, h is left as it is.
func (b *builder) label(name string, h http.Handler) http.Handler {
	if b.reg == nil {
		return h
	}
	b.reg.AddMount(name)
	return web.Labeled(name, h)
}

// spec builds the handler for wsgi:MODULE.ATTR, path:DIR or proxy:URL;
// where names the mount point or host in log lines.
func (b *builder) spec(where, spec string) (http.Handler, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	if arg == "" {
		kind = ""
	}
	switch kind {
	case "wsgi":
		return b.wsgi(where, arg, false)
	case "asgi":
		return b.wsgi(where, arg, true)
	case "path":
		return b.static(arg)
	case "proxy":
		return web.NewProxy(arg, web.ProxyOptions{Timeout: b.o.proxyTimeout, Log: b.env.Log.With(logging.SystemKey, "proxy "+where)})
	}
	return nil, fmt.Errorf("%q: want wsgi:MODULE.ATTR, asgi:MODULE:ATTR, path:DIR or proxy:URL", spec)
}

// wsgi makes a worker pool for app, a WSGI application or an ASGI one,
// configured by the --wsgi options.
func (b *builder) wsgi(where, app string, asgi bool) (http.Handler, error) {
	cfg := b.o.wsgi
	cfg.App, cfg.ASGI = app, asgi
	cfg.DetectInterface = cfg.DetectInterface && where == "/" // the positional application, not a mount
	system := "wsgi"
	if asgi {
		system = "asgi"
	}
	if (asgi || cfg.DetectInterface) && !b.o.fs.Changed("threads") {
		cfg.Threads = 0 // the pool's default for the kind of application
	}
	if where != "/" {
		system += " " + where
	}
	cfg.Log = b.env.Log.With(logging.SystemKey, system)
	cfg.RunAs = b.env.RunAs
	// A pool that grew keeps its size through an upgrade (SIGUSR2): the
	// successor starts as many workers as this process has then.
	carry := "workers " + where
	if v, ok := handover.Carried(carry); ok {
		cfg.StartWorkers, _ = strconv.Atoi(v)
	}
	pool, err := wsgi.New(cfg)
	if err != nil {
		return nil, err
	}
	handover.Carry(carry, func() string { n, _, _ := pool.Scale(); return strconv.Itoa(n) })
	b.m.Add(pool)
	b.pools = append(b.pools, pool)
	if b.o.reload {
		b.m.Add(&workers.CodeWatcher{Pool: pool.Pool})
	}
	return pool, nil
}

// static serves dir with the static file options.
func (b *builder) static(dir string) (http.Handler, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	b.staticDirs++
	s, err := web.NewStatic(dir, web.StaticOptions{
		Index:          b.o.index,
		NoListing:      b.o.noListing,
		FollowSymlinks: b.o.allowSymlinks,
		CacheControl:   b.o.cacheControl,
		Precompressed:  true,
	})
	if err != nil {
		return nil, err
	}
	if b.reg != nil {
		b.reg.AddStatic(s)
	}
	return s, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
