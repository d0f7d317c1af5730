// Package plugin is the registry of torsion's subcommands, twistd's plugins:
// each declares its name, a one-line description, its options and how it
// makes its service. Plugins register from init functions; the cli package
// turns the registry into a command line.
package plugin

import (
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/metrics"
	"github.com/torsion-server/torsion/service"
	"github.com/torsion-server/torsion/web"
)

// Plugin describes one subcommand, the Go form of Twisted's IServiceMaker.
type Plugin struct {
	// Name is the subcommand, such as "web" (Twisted's tapname).
	Name string
	// Description is one line for the list of plugins.
	Description string
	// Usage is longer help shown by "torsion NAME --help"; optional.
	Usage string
	// ArgsUsage names the positional arguments in the help, such as
	// "[MESSAGE...]"; if empty, the plugin takes none and any is an error.
	ArgsUsage string
	// Flags registers the plugin's options on fs and returns the function
	// that makes the service once they are parsed. It is called once per
	// command line.
	Flags func(fs *pflag.FlagSet) Maker
}

// Maker makes a plugin's service from its parsed options. An error is a
// configuration mistake: the command fails with it and exit status 2.
type Maker func(env Env) (service.Service, error)

// Env is what a Maker gets from the command line besides its options.
type Env struct {
	// Log is the configured logger.
	Log *slog.Logger
	// AccessLog, if set, is where a server logs each request it answers
	// (--access-logfile; a logger that is never enabled when the access
	// log is off); nil means Log.
	AccessLog *slog.Logger
	// LogFormat is the logs' format, "text" or "json": a JSON access log
	// carries fields rather than a line.
	LogFormat string
	// AccessPlain says that AccessLog is a file of its own with the text
	// format (--access-logfile): its records are lines alone, with no
	// timestamp or system before them, so they should be a format tools
	// read (combined) unless the user asked for another.
	AccessPlain bool
	// RunAs, if set, is the user and group the processes a plugin starts
	// (WSGI workers) run as; nil means torsion's own.
	RunAs *syscall.Credential
	// Args are the positional arguments after the options.
	Args []string
	// Metrics, with --metrics, is the registry a plugin exports its own
	// metrics to (Register; web's EnableHTTP and pools); nil without.
	Metrics *metrics.Registry
	// Health, with --health, is the check a load balancer asks; a plugin
	// adds what must hold for it to be ready to its Checks (web: a live
	// worker in every pool). Nil without.
	Health *web.Health
}

var (
	mu      sync.RWMutex
	plugins = map[string]Plugin{}
)

// Register adds a plugin. It panics on an empty or duplicate name or a
// missing Flags function, so mistakes show at start-up.
func Register(p Plugin) {
	mu.Lock()
	defer mu.Unlock()
	if p.Name == "" || p.Flags == nil {
		panic("plugin: Register needs Name and Flags")
	}
	if _, dup := plugins[p.Name]; dup {
		panic("plugin: " + strconv.Quote(p.Name) + " registered twice")
	}
	plugins[p.Name] = p
}

// Lookup returns the plugin with the given name.
func Lookup(name string) (Plugin, bool) {
	mu.RLock()
	defer mu.RUnlock()
	p, ok := plugins[name]
	return p, ok
}

// All returns every registered plugin, sorted by name.
func All() []Plugin {
	mu.RLock()
	defer mu.RUnlock()
	ps := make([]Plugin, 0, len(plugins))
	for _, p := range plugins {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return ps
}
