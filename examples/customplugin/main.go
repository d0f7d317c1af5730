// Command customplugin is a third-party program that adds its own plugin to
// torsion's command line: the Go form of the custom ServiceMaker in Twisted's
// WSGI chapter ("twisted_book_scheduled"). It serves a page showing a value
// that a timer service updates every interval, beside all standard plugins.
//
//	go run ./examples/customplugin scheduled --port tcp:8000 --interval 1s
//	curl http://127.0.0.1:8000/
package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/cli"
	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/plugin"
	_ "github.com/torsion-server/torsion/plugins/standard" // keep web and echo too
	"github.com/torsion-server/torsion/service"
	"github.com/torsion-server/torsion/web"
)

func init() {
	plugin.Register(plugin.Plugin{
		Name:        "scheduled",
		Description: "A page whose value a timer service updates (the seed's twisted_book_scheduled).",
		Flags: func(fs *pflag.FlagSet) plugin.Maker {
			port := fs.String("port", "tcp:8000", "endpoint `DESC` to listen on")
			interval := fs.Duration("interval", time.Second, "how often the timer updates the value")
			return func(env plugin.Env) (service.Service, error) {
				ep, err := endpoint.Parse(*port)
				if err != nil {
					return nil, fmt.Errorf("--port: %w", err)
				}
				var ticks atomic.Int64
				page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, "the timer has fired %d times\n", ticks.Load())
				})
				log := env.Log.With(logging.SystemKey, "scheduled")
				// The MultiService of the seed: the site and the timer
				// start in order and stop in reverse.
				return service.NewMulti(
					&service.Listener{Endpoint: ep, Server: httpserver.New(web.AccessLog(page, log), httpserver.Options{ErrorLog: log}), Name: "Site", Log: log},
					&service.Timer{Interval: *interval, Func: func(context.Context) { ticks.Add(1) }},
				), nil
			}
		},
	})
}

func main() { cli.Main() }
