package plugin_test

import (
	"fmt"
	"net/http"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/plugin"
	"github.com/torsion-server/torsion/service"
)

// A plugin declares its options and makes its service from them; calling
// cli.Main then gives it a subcommand (see examples/customplugin).
func ExampleRegister() {
	plugin.Register(plugin.Plugin{
		Name:        "hello",
		Description: "Says hello over HTTP.",
		Flags: func(fs *pflag.FlagSet) plugin.Maker {
			port := fs.String("port", "tcp:8000", "endpoint `DESC` to listen on")
			return func(env plugin.Env) (service.Service, error) {
				ep, err := endpoint.Parse(*port)
				if err != nil {
					return nil, err
				}
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
				return &service.Listener{Endpoint: ep, Server: httpserver.New(h, httpserver.Options{ErrorLog: env.Log})}, nil
			}
		},
	})
	p, _ := plugin.Lookup("hello")
	fmt.Println(p.Name, "-", p.Description)
	// Output: hello - Says hello over HTTP.
}
