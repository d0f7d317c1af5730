// Package cli is torsion's command line, twistd's equivalent: global options
// for logging, the pid file and shutdown, and one subcommand per registered
// plugin. A Go program that registers its own plugins calls Main to get the
// whole command line.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/internal/buildinfo"
	"github.com/torsion-server/torsion/internal/sched"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/ops"
	"github.com/torsion-server/torsion/plugin"
	"github.com/torsion-server/torsion/service"
)

// Exit statuses.
const (
	ExitOK     = 0 // clean shutdown
	ExitFailed = 1 // the service failed to start or failed while running
	ExitUsage  = 2 // a bad option or configuration
)

// Main runs the command line on os.Args with the registered plugins and
// exits with its status.
func Main() {
	os.Exit(Run(context.Background(), os.Args[0], os.Args[1:], os.Stdout, os.Stderr))
}

// usageError marks a mistake on the command line or in the configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

type globals struct {
	logfile         string
	logFormat       string
	pidfile         string
	shutdownTimeout time.Duration
	cpuprofile      string
	memprofile      string
	sched           string
	accessLogfile   string
	uid, gid, umask string
	allowRoot       bool
	logLevel        string
	config          string
	loaded          *config // the --config file, once read
	printConfig     bool
	checkConfig     bool
}

// Run runs the command line args (without the program name) and returns the
// exit status. The service runs until ctx ends or a SIGINT or SIGTERM
// arrives.
func Run(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	prog = progName(prog)
	var g globals
	root := newRoot(ctx, prog, &g, stdout, stderr)
	root.SetArgs(globalShorthands(args, root.PersistentFlags()))
	cmd, err := root.ExecuteC()
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", prog, err, cmd.CommandPath())
		return ExitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	return ExitFailed
}

// newRoot makes the command tree: the global options, the version
// command, and a command per registered plugin, whose options land in g.
func newRoot(ctx context.Context, prog string, g *globals, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   prog + " [global options] PLUGIN [options]",
		Short: prog + " runs network servers, like twistd",
		Long: prog + " runs network servers, like Twisted's twistd: each subcommand is a plugin\n" +
			"that makes a service, which runs until SIGINT or SIGTERM and then stops gracefully.\n\n" +
			signalsHelp + "\n\n" + endpointsHelp + "\n\n" + exitHelp,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		Version:           Version(prog),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version of " + prog + ", of Go, and the commit it was built from",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, args []string) { fmt.Fprintln(stdout, Version(prog)) },
	})
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{flagHint(cmd, err)} })
	// gunicorn's name for the log that is not the access log.
	root.SetGlobalNormalizationFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "error-logfile" {
			name = "logfile"
		}
		return pflag.NormalizedName(name)
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.logfile, "logfile", "-", "write the log to `PATH` (appending); - means stderr (also --error-logfile, as gunicorn calls it)")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: `text|json` (twistd-style lines, or a JSON object per record)")
	pf.StringVar(&g.accessLogfile, "access-logfile", "", "write the access log (a line per request, Apache's combined format unless --access-logformat says otherwise) to `PATH`: - for stderr, none to turn it off; by default it goes with the rest of the log, each line with its time and the request id")
	pf.StringVar(&g.logLevel, "log-level", "info", "the least severe records logged: `debug|info|warn|error` (access lines are info)")
	pf.StringVar(&g.uid, "uid", "", "run as `USER` (a name or number) once the ports are bound, and run the workers as USER")
	pf.StringVar(&g.gid, "gid", "", "with --uid, run as `GROUP` rather than USER's own group")
	pf.StringVar(&g.umask, "umask", "", "set the file mode creation mask to `MODE` (octal, such as 022) for torsion and its workers")
	pf.BoolVar(&g.allowRoot, "allow-root", false, "run as root without the warning that says so (and allow --uid 0)")
	pf.StringVar(&g.pidfile, "pidfile", "", "write the process id to `PATH` while running")
	plugin.DurationVar(pf, &g.shutdownTimeout, "shutdown-timeout", "", 30*time.Second, "how long in-flight work may take to finish after SIGTERM")
	plugin.Alias(pf, "graceful-timeout", "shutdown-timeout") // gunicorn's name
	// twistd's -n (--nodaemon): torsion never leaves the foreground.
	pf.BoolP("nodaemon", "n", false, "")
	pf.MarkHidden("nodaemon")
	pf.StringVar(&g.sched, "sched", string(sched.Batch), "CPU scheduling policy of torsion and the processes it starts, `batch|normal`: batch (Linux's SCHED_BATCH: "+
		"a process woken by another does not preempt it, so work is handed over in batches; more throughput) or normal")
	pf.StringVar(&g.cpuprofile, "cpuprofile", "", "write a Go CPU profile of the whole run to `PATH` (for go tool pprof)")
	pf.StringVar(&g.memprofile, "memprofile", "", "write a Go allocation profile of the whole run to `PATH` as torsion exits (for go tool pprof)")

	pf.StringVarP(&g.config, "config", "c", "", "read options from the TOML file `PATH`: global options at the top, a plugin's in a table named after it ([web]); "+
		"the command line, then $TORSION_<OPTION> variables, take precedence over it")
	pf.BoolVar(&g.printConfig, "print-config", false, "print the options in effect, merged from the command line, the environment and --config, as a configuration file, and exit")
	pf.BoolVar(&g.checkConfig, "check-config", false, "check the options and the configuration (endpoints, files, the plugin's own checks) and exit")

	for _, p := range plugin.All() {
		root.AddCommand(command(ctx, prog, p, g, stdout, stderr))
	}
	// "torsion -c FILE" runs the one plugin FILE configures.
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if g.config == "" {
			return cmd.Help()
		}
		c, err := loadConfig(g.config, pluginNames())
		if err != nil {
			return usageError{err}
		}
		g.loaded = c // the plugin's command uses it too
		name, ok := c.plugin()
		if !ok {
			return usageError{fmt.Errorf("--config %s configures %d plugins: name the one to run (%s -c %s PLUGIN)", g.config, len(c.plugins), prog, g.config)}
		}
		sub, _, err := cmd.Find([]string{name})
		if err != nil {
			return err
		}
		return sub.RunE(sub, nil)
	}
	return root
}

// foreignFlags says, for options of gunicorn, uvicorn and twistd that
// torsion does not take under their names, what to give instead.
var foreignFlags = map[string]string{
	"certfile":       "the certificate goes in the endpoint: --port ssl:8443:privateKey=KEY.pem:certKey=CERT.pem",
	"keyfile":        "the key goes in the endpoint: --port ssl:8443:privateKey=KEY.pem:certKey=CERT.pem",
	"host":           "give -b HOST:PORT, or --port tcp:PORT:interface=HOST",
	"uds":            "give --port unix:PATH (or -b unix:PATH)",
	"root-path":      "an application mounted with --mount PREFIX=... gets PREFIX as SCRIPT_NAME (root_path); behind a proxy that strips it, mount it there",
	"env-file":       "give --env KEY=VALUE (repeatable), or put the options in a --config file",
	"no-access-log":  "give --access-logfile none",
	"access-log":     "the access log is on by default; --access-logfile PATH puts it in a file",
	"factory":        "torsion calls no factory: name the application object (MODULE:ATTR)",
	"worker-class":   "--wsgi runs a WSGI application, --asgi an ASGI one; --threads sets the threads of each worker",
	"daemon":         "torsion stays in the foreground: run it under systemd (examples/systemd) or procmon",
	"user":           "give --uid USER (before the plugin's name)",
	"group":          "give --gid GROUP (before the plugin's name)",
	"bind-unix":      "give --port unix:PATH",
	"proxy-protocol": "give --port haproxy:tcp:PORT",
}

// flagHint turns pflag's "unknown flag: --name" into a pointer to what to
// give instead: torsion's option for a foreign one, or the option whose
// name is closest to a misspelt one ("did you mean --idle-timeout?").
func flagHint(cmd *cobra.Command, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return err
	}
	if hint, ok := foreignFlags[name]; ok {
		return fmt.Errorf("%w: %s", err, hint)
	}
	if near := closest(name, cmd.Flags()); near != "" {
		return fmt.Errorf("%w (did you mean --%s?)", err, near)
	}
	return err
}

// closest is the visible option of fs nearest to name, if it is near
// enough to be a misspelling (an edit distance of at most a third of it).
func closest(name string, fs *pflag.FlagSet) string {
	best, bestD := "", len(name)/3+1
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		if d := editDistance(name, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is Levenshtein's distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// globalShorthands spells out the global options' shorthands given before
// the plugin's name ("-c FILE dns" is "--config FILE dns"), so that after
// the name a plugin's own shorthand of the same letter wins, as in
// twistd: "torsion -c FILE dns -c -r" is --config, then dns's cache.
func globalShorthands(args []string, global *pflag.FlagSet) []string {
	out := slices.Clone(args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" || a == "-" || !strings.HasPrefix(a, "-") {
			return out // the plugin's name, or the end of the options
		}
		var f *pflag.Flag
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			f = global.Lookup(name)
		} else if f = global.ShorthandLookup(a[1:2]); f != nil {
			switch rest := a[2:]; {
			case rest == "", rest[0] == '=':
				out[i] = "--" + f.Name + rest
			default: // -cFILE
				out[i] = "--" + f.Name + "=" + rest
			}
		}
		if f != nil && f.NoOptDefVal == "" && !strings.Contains(out[i], "=") {
			i++ // its value
		}
	}
	return out
}

// Version describes this build: the module's version ("(devel)" for a
// build from a checkout), the Go version, and the commit it was built from
// when the build recorded one, with "+changes" if the tree had some.
func Version(prog string) string { return buildinfo.Version(prog) }

// endpointsHelp is the endpoint grammar, for --help.
const endpointsHelp = `Endpoints (--port, --control, --health and the like; Twisted's syntax):
  PORT or tcp:PORT[:interface=ADDR][:backlog=N][:reuseport=true]   TCP, on every address or on ADDR
  tcp6:PORT[:interface=ADDR]                                       TCP over IPv6 only
  unix:PATH[:mode=0660][:lockfile=1][:backlog=N]                   a Unix socket
  ssl:PORT:privateKey=KEY.pem[:certKey=CERT.pem][:interface=ADDR]  TLS (HTTP/2 by ALPN)
  txsni:DIR:ENDPOINT                                               TLS with DIR/HOST.pem chosen by SNI
  haproxy:ENDPOINT                                                 the PROXY protocol (v1, v2) in front
  systemd:domain=INET|INET6|UNIX:index=N (or :name=NAME)           a socket systemd passed
  udp:PORT[:interface=ADDR] (dns --udp; udp6: too)                 UDP, or a systemd datagram socket`

// exitHelp lists the exit statuses, for --help.
const exitHelp = `Exit status: 0 after a clean stop; 1 if the service failed to start or failed while
running; 2 for a bad option or configuration, with a message naming it.`

// signalsHelp lists what each signal does, for --help.
const signalsHelp = `Signals:
  SIGINT, SIGTERM   stop gracefully within --shutdown-timeout; a second one stops at once
  SIGHUP            reload: WSGI workers are replaced one at a time by ones that import the
                    application anew, each ready before the old one stops taking requests;
                    if the new code does not start, the old workers go on serving
  SIGUSR1           reopen the --logfile (for logrotate without copytruncate)
  SIGUSR2           upgrade the binary in place: a new process started from the same path and
                    arguments takes over the listening sockets; once it serves, this one stops
                    accepting and drains (one upgrade at a time; if the new one fails, this one
                    serves on)
  SIGTTIN, SIGTTOU  ignored, so a terminal cannot stop a background server`

func progName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	if p == "" {
		return "torsion"
	}
	return p
}

func command(ctx context.Context, prog string, p plugin.Plugin, g *globals, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   p.Name,
		Short: p.Description,
		Long:  strings.TrimSpace(p.Description + "\n\n" + p.Usage),
		Args:  cobra.NoArgs,
	}
	if p.ArgsUsage != "" {
		cmd.Use += " " + p.ArgsUsage
		cmd.Args = cobra.ArbitraryArgs
	}
	maker := p.Flags(cmd.Flags())
	var opsOpts ops.Options // --metrics and --health, for every plugin
	opsOpts.AddFlags(cmd.Flags())
	if cmd.Flags().ShorthandLookup("c") != nil {
		// After the plugin's name its own -c wins, as in twistd (dns -c
		// is its cache): --config stays, without the shorthand, and a
		// global -c goes before the plugin's name (globalShorthands).
		cmd.Flags().StringVar(&g.config, "config", "", "read options from the TOML file `PATH` (before the plugin's name, -c PATH too)")
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c := g.loaded
		if c == nil && g.config != "" {
			var err error
			if c, err = loadConfig(g.config, pluginNames()); err != nil {
				return usageError{err}
			}
		}
		if err := applyConfig(c, p.Name, cmd.Flags(), cmd.Root().PersistentFlags()); err != nil {
			return usageError{err}
		}
		if g.printConfig {
			text, err := printConfig(p.Name, cmd.Flags(), cmd.Root().PersistentFlags())
			if err != nil {
				return err
			}
			fmt.Fprint(stdout, text)
			return nil
		}
		if g.shutdownTimeout <= 0 {
			return usageError{fmt.Errorf("--shutdown-timeout %v: must be positive", g.shutdownTimeout)}
		}
		policy, err := sched.Parse(g.sched)
		if err != nil {
			return usageError{fmt.Errorf("--sched: %w", err)}
		}
		var level slog.Level
		if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
			return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)}
		}
		priv, err := resolvePrivileges(g.uid, g.gid, g.allowRoot)
		if err != nil {
			return usageError{err}
		}
		if g.umask != "" {
			mask, err := strconv.ParseUint(g.umask, 8, 32)
			if err != nil || mask > 0o777 {
				return usageError{fmt.Errorf("--umask %q: want an octal mode such as 022", g.umask)}
			}
			syscall.Umask(int(mask))
		}
		w, reopen, closeLog, err := openLog("--logfile", g.logfile, stderr)
		if err != nil {
			return usageError{err}
		}
		defer closeLog()
		log, err := logging.New(w, g.logFormat, level)
		if err != nil {
			return usageError{fmt.Errorf("--log-format: %w", err)}
		}
		access, plainAccess := log.With(logging.SystemKey, "access"), false
		switch g.accessLogfile {
		case "":
		case "none":
			access = logging.Discard()
		default:
			aw, areopen, closeAccess, err := openLog("--access-logfile", g.accessLogfile, stderr)
			if err != nil {
				return usageError{err}
			}
			defer closeAccess()
			if g.logFormat == "json" {
				al, _ := logging.New(aw, g.logFormat, slog.LevelInfo)
				access = al.With(logging.SystemKey, "access")
			} else {
				access, plainAccess = slog.New(logging.NewPlainHandler(aw)), true
			}
			if reopen == nil {
				reopen = areopen
			} else if areopen != nil {
				mainReopen := reopen
				reopen = func() error { return errors.Join(mainReopen(), areopen()) }
			}
		}
		// What logs through slog's default logger (txsni's certificate
		// warnings) goes where the options say too.
		slog.SetDefault(log)
		// Before the service starts: the processes it starts inherit the policy.
		if err := sched.Set(policy); err != nil && !(errors.Is(err, sched.ErrUnsupported) && !cmd.Flags().Changed("sched")) {
			log.Warn("--sched could not be applied", "policy", policy, "err", err)
		}
		if priv.note != "" {
			log.Info(priv.note)
		}
		if os.Geteuid() == 0 && g.uid == "" && !g.allowRoot && !g.checkConfig {
			// One policy for every plugin, as gunicorn and uvicorn have
			// it, and as containers run: root is allowed, and said.
			log.Warn("running as root: what torsion starts (application workers, commands, shells) runs as root too; "+
				"give --uid USER to bind the ports as root, then run as USER (--allow-root silences this)", "plugin", p.Name)
		}
		operations, err := ops.New(opsOpts, log)
		if err != nil {
			return usageError{fmt.Errorf("%s: %w", p.Name, err)}
		}
		svc, err := maker(plugin.Env{Log: log, AccessLog: access, AccessPlain: plainAccess, LogFormat: g.logFormat, RunAs: priv.workers, Args: args,
			Metrics: operations.Metrics, Health: operations.Health})
		if err != nil {
			return usageError{fmt.Errorf("%s: %w", p.Name, err)}
		}
		svc = operations.Wrap(svc)
		if g.checkConfig {
			fmt.Fprintf(stdout, "%s %s: the configuration is valid\n", prog, p.Name)
			return nil
		}
		// A successor in an upgrade takes the pid file over only once it
		// serves: one that fails leaves it naming the running server.
		successor := service.Successor()
		if g.pidfile != "" {
			if !successor {
				if err := writePidfile(g.pidfile); err != nil {
					return err
				}
			}
			defer removePidfile(g.pidfile)
		}
		if g.cpuprofile != "" {
			f, err := os.Create(g.cpuprofile)
			if err != nil {
				return usageError{fmt.Errorf("--cpuprofile: %w", err)}
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			defer pprof.StopCPUProfile()
		}
		if g.memprofile != "" {
			f, err := os.Create(g.memprofile)
			if err != nil {
				return usageError{fmt.Errorf("--memprofile: %w", err)}
			}
			defer func() {
				if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
					log.Error("--memprofile", "err", err)
				}
				f.Close()
			}()
		}
		log.Info(fmt.Sprintf("%s %s starting up (pid %d, %s).", prog, p.Name, os.Getpid(), runtime.Version()))
		started := func() error {
			if successor && g.pidfile != "" {
				if err := writePidfile(g.pidfile); err != nil {
					return err
				}
			}
			if priv.drop != nil {
				return dropTo(priv.drop)
			}
			return nil
		}
		err = service.Run(ctx, svc, service.RunOptions{Log: log, ShutdownTimeout: g.shutdownTimeout, Reopen: reopen, Started: started})
		if err != nil {
			// Run prints the error to stderr; a log file gets it too.
			if g.logfile != "-" && g.logfile != "" {
				log.Error("Exiting with an error.", "err", err)
			}
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		return nil
	}
	return cmd
}

// openLog opens the log destination. Lines are batched and written out
// every 100ms (logging.BufferedWriter), which saves a system call per
// request under load. reopen, nil for stderr, opens the file's path again
// (SIGUSR1, after logrotate moved it); closeLog flushes and closes.
func openLog(option, path string, stderr io.Writer) (w io.Writer, reopen func() error, closeLog func(), err error) {
	if path == "-" || path == "" {
		b := logging.NewBufferedWriter(stderr, 100*time.Millisecond)
		return b, nil, func() { b.Close() }, nil
	}
	f := &reopenableFile{path: path}
	if err := f.reopen(); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", option, err)
	}
	b := logging.NewBufferedWriter(f, 100*time.Millisecond)
	reopen = func() error {
		b.Flush() // what is buffered belongs to the old file
		return f.reopen()
	}
	return b, reopen, func() { b.Close(); f.close() }, nil
}

// reopenableFile is a log file that can be opened again at its path.
type reopenableFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (r *reopenableFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

func (r *reopenableFile) reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (r *reopenableFile) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.f.Close()
}

// writePidfile writes this process's id, refusing to overwrite the pid file
// of a process that is still running (as twistd does), unless that is the
// process this one replaces in an upgrade (its parent).
func writePidfile(path string) error {
	if b, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && pid != os.Getpid() && !(pid == os.Getppid() && service.Successor()) {
			if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("--pidfile %s: another server is running with pid %d; remove the file if it is not", path, pid)
			}
		}
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("--pidfile: %w", err)
	}
	return nil
}

// removePidfile removes the pid file if it still names this process: after
// an upgrade it names the successor.
func removePidfile(path string) {
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}

func pluginNames() []string {
	var names []string
	for _, p := range plugin.All() {
		names = append(names, p.Name)
	}
	return names
}
