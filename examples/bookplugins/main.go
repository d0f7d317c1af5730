// Command bookplugins adds the web plugins of the seed's WSGI chapter to
// torsion's command line, written against torsion's Go API:
//
//   - book-vhost, twisted_book_vhost: a NameVirtualHost that serves a WSGI
//     application for app.example.org and static files for
//     static.example.org (other names get 404);
//   - book-combined, twisted_book_combined: the DelegatingResource, a WSGI
//     application at the root with the static files at /static;
//   - book-static, twisted_book_pkg_resources: a file packaged with the
//     program (here with embed) served at the root.
//
// Run from the repository root:
//
//	go run ./examples/bookplugins book-combined --port tcp:8000 --python /usr/bin/python3
//	curl http://127.0.0.1:8000/ http://127.0.0.1:8000/static/site.css
package main

import (
	"embed"
	"fmt"
	"net/http"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/cli"
	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/plugin"
	_ "github.com/torsion-server/torsion/plugins/standard" // keep web and echo too
	"github.com/torsion-server/torsion/service"
	"github.com/torsion-server/torsion/web"
	"github.com/torsion-server/torsion/workers"
	"github.com/torsion-server/torsion/wsgi"
)

//go:embed a_file.html
var packaged embed.FS

// options are the flags the three plugins share.
type options struct {
	port, python, chdir, static string
}

func (o *options) flags(fs *pflag.FlagSet) {
	fs.StringVar(&o.port, "port", "tcp:8000", "endpoint `DESC` to listen on")
	fs.StringVar(&o.python, "python", "", "Python interpreter for the WSGI application (default python3)")
	fs.StringVar(&o.chdir, "chdir", "examples/wsgi", "`DIR` holding wsgi_hello.py")
	fs.StringVar(&o.static, "static", "examples/bookplugins/static", "`DIR` of static files")
}

// serve wraps root in a site on the port, after the services it needs.
func (o *options) serve(env plugin.Env, root http.Handler, before ...service.Service) (service.Service, error) {
	ep, err := endpoint.Parse(o.port)
	if err != nil {
		return nil, fmt.Errorf("--port: %w", err)
	}
	log := env.Log.With(logging.SystemKey, "web")
	access := env.Log.With(logging.SystemKey, "access")
	site := httpserver.New(web.AccessLog(root, access), httpserver.Options{ErrorLog: log, Refuse: web.Refusals(access)})
	return service.NewMulti(append(before, &service.Listener{Endpoint: ep, Server: site, Name: "Site", Log: log})...), nil
}

// app is wsgi_hello.application in its own worker pool, the seed's
// WSGIResource with its thread pool.
func (o *options) app(env plugin.Env) (*wsgi.Pool, error) {
	return wsgi.New(wsgi.Config{Config: workers.Config{App: "wsgi_hello.application", Python: o.python, Dir: o.chdir, Workers: 1, Threads: 4,
		Log: env.Log.With(logging.SystemKey, "wsgi")}})
}

func register(name, description string, make func(o *options, env plugin.Env) (service.Service, error)) {
	plugin.Register(plugin.Plugin{
		Name:        name,
		Description: description,
		Flags: func(fs *pflag.FlagSet) plugin.Maker {
			o := &options{}
			o.flags(fs)
			return func(env plugin.Env) (service.Service, error) { return make(o, env) }
		},
	})
}

func init() {
	register("book-vhost", "Virtual hosting for book: app.example.org and static.example.org (twisted_book_vhost).",
		func(o *options, env plugin.Env) (service.Service, error) {
			dynamic, err := o.app(env)
			if err != nil {
				return nil, err
			}
			files, err := web.NewStatic(o.static, web.StaticOptions{})
			if err != nil {
				return nil, err
			}
			root := &web.VHosts{} // no Default: other names get 404
			if err := root.Add("app.example.org", dynamic); err != nil {
				return nil, err
			}
			if err := root.Add("static.example.org", files); err != nil {
				return nil, err
			}
			return o.serve(env, root, dynamic)
		})
	register("book-combined", "A WSGI application with static files at /static (twisted_book_combined).",
		func(o *options, env plugin.Env) (service.Service, error) {
			wsgiResource, err := o.app(env)
			if err != nil {
				return nil, err
			}
			staticResource, err := web.NewStatic(o.static, web.StaticOptions{})
			if err != nil {
				return nil, err
			}
			root := &web.Resource{Handler: wsgiResource} // DelegatingResource
			root.PutChild("static", staticResource)
			return o.serve(env, root, wsgiResource)
		})
	register("book-static", "A file packaged with the program, served at / (twisted_book_pkg_resources).",
		func(o *options, env plugin.Env) (service.Service, error) {
			root := &web.Resource{}
			root.Mount("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.ServeFileFS(w, r, packaged, "a_file.html")
			}))
			return o.serve(env, root)
		})
}

func main() { cli.Main() }
