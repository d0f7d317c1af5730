// Package procmonplugin is the "procmon" plugin: Twisted's twistd procmon,
// which keeps a set of commands running, as the seed's ncolony keeps its
// HAProxy and server instances.
package procmonplugin

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/plugin"
	"github.com/torsion-server/torsion/procmon"
	"github.com/torsion-server/torsion/service"
)

func init() {
	plugin.Register(plugin.Plugin{
		Name:        "procmon",
		Description: "Runs commands and keeps them running: restarts them when they exit, stops them in reverse order.",
		Usage: `Each --run NAME=COMMAND is run by /bin/sh (so COMMAND may quote its
arguments), in the order given; stopped in reverse, with SIGTERM to its
process group and SIGKILL after --shutdown-timeout. A command that exits
is started again at once, or after a doubling wait (up to a minute) while
it keeps dying within a second of starting. Its output is logged under NAME.

Example: the seed's HAProxy in front of three torsion instances
  torsion procmon \
    --run "web1=torsion web --port tcp:8001:interface=127.0.0.1 --health tcp:9001:interface=127.0.0.1 --wsgi app:application" \
    --run "web2=torsion web --port tcp:8002:interface=127.0.0.1 --health tcp:9002:interface=127.0.0.1 --wsgi app:application" \
    --run "web3=torsion web --port tcp:8003:interface=127.0.0.1 --health tcp:9003:interface=127.0.0.1 --wsgi app:application" \
    --run "haproxy=haproxy -db -f examples/haproxy/haproxy.cfg"`,
		Flags: flags,
	})
}

func flags(fs *pflag.FlagSet) plugin.Maker {
	var runs []string
	fs.StringArrayVar(&runs, "run", nil, "`NAME=COMMAND` to run and keep running (repeatable)")
	return func(env plugin.Env) (service.Service, error) {
		if len(runs) == 0 {
			return nil, fmt.Errorf("--run NAME=COMMAND: give at least one command")
		}
		m := service.NewMulti()
		names := map[string]bool{}
		for _, r := range runs {
			name, command, ok := strings.Cut(r, "=")
			if !ok || name == "" || strings.TrimSpace(command) == "" {
				return nil, fmt.Errorf("--run %q: want NAME=COMMAND", r)
			}
			if names[name] {
				return nil, fmt.Errorf("--run %q: the name %s is taken", r, name)
			}
			names[name] = true
			m.Add(&procmon.Process{
				Name: name,
				Argv: []string{"/bin/sh", "-c", "exec " + command},
				Log:  env.Log.With(logging.SystemKey, name),
			})
		}
		return m, nil
	}
}
