package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/plugin"
)

// TestConfigFile: options come from the command line, then $TORSION_*,
// then the --config file; --print-config shows the merge and reads back
// as the same configuration; --check-config validates; unknown keys and
// bad values are errors naming them; "torsion -c FILE" runs the plugin the
// file configures.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	os.Mkdir(site, 0o755)
	os.WriteFile(filepath.Join(site, "index.html"), []byte("from the config"), 0o644)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.toml", `
shutdown-timeout = 5
log-format = "text"

[web]
port = ["tcp:0:interface=127.0.0.1"]
path = "`+site+`"
workers = 2
threads = 2
timeout = 20
no-listing = true
`)
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want []string // in the output
	}{
		{"file", nil, []string{"-c", good, "--print-config", "web"}, 0,
			[]string{`shutdown-timeout = "5s"`, "workers = 2", "threads = 2", `timeout = "20s"`, "no-listing = true", `port = ["tcp:0:interface=127.0.0.1"]`}},
		{"environment over file", []string{"TORSION_WORKERS=3", "TORSION_LOG_FORMAT=json"}, []string{"-c", good, "--print-config", "web"}, 0,
			[]string{"workers = 3", `log-format = "json"`, "threads = 2"}},
		{"command line over both", []string{"TORSION_WORKERS=3"}, []string{"-c", good, "--print-config", "web", "--workers", "4", "--threads=5"}, 0,
			[]string{"workers = 4", "threads = 5"}},
		// After the plugin's name, its own short flags win, as in twistd:
		// dns -c is --cache (it was read as the global --config); a
		// global -c goes before the plugin's name.
		{"dns -c -r", nil, []string{"-c", good, "--print-config", "dns", "-c", "-r", "--upstream", "127.0.0.1:53"}, 0,
			[]string{"cache = true", "recursive = true", `shutdown-timeout = "5s"`}},
		// Sizes take units, as nginx reads them; they are written as bytes.
		{"sizes with units", []string{"TORSION_BODY_MEMORY=1G"}, []string{"-c", good, "--print-config", "web", "--max-body", "10M", "--body-buffer", "64K"}, 0,
			[]string{"max-body = 10485760", "body-buffer = 65536", "body-memory = 1073741824"}},
		{"a size without a number", nil, []string{"--print-config", "web", "--max-body", "M"}, 2, []string{`"M" is not a size`}},
		// Habits from gunicorn and twistd: their names for the same
		// options, WEB_CONCURRENCY, twistd's -n.
		{"gunicorn's names", []string{"WEB_CONCURRENCY=3"}, []string{"-n", "--print-config", "--graceful-timeout", "9", "web", "--keep-alive", "7", "--limit-request-line", "4096", "--path", site}, 0,
			[]string{`idle-timeout = "7s"`, "max-request-line = 4096", `shutdown-timeout = "9s"`}},
		{"keys in the wrong place, and misspelt", nil, []string{"-c", write("wrong.toml", "workers = 3\nshutdown-timout = 4\n[web]\nidle-timout = 5\n"), "--check-config", "web"}, 2,
			[]string{`unknown key "workers" at the top: it is a plugin's option; put it under [web]`, `unknown key "shutdown-timout" (did you mean "shutdown-timeout"?)`,
				`unknown key "idle-timout" in [web] (did you mean "idle-timeout"?)`}},
		{"check", nil, []string{"-c", good, "--check-config", "web"}, 0, []string{"the configuration is valid"}},
		{"unknown key", nil, []string{"-c", write("typo.toml", "[web]\nwrokers = 2\n"), "web"}, 2, []string{`unknown key "wrokers" in [web]`}},
		{"unknown global key", nil, []string{"-c", write("typo2.toml", "logfil = \"x\"\n"), "web"}, 2, []string{`unknown key "logfil"`}},
		{"unknown table", nil, []string{"-c", write("table.toml", "[wbe]\nworkers = 2\n"), "web"}, 2, []string{"[wbe] names no plugin"}},
		{"bad value", nil, []string{"-c", write("bad.toml", "[web]\ntimeout = \"soon\"\n"), "web"}, 2, []string{"key web.timeout", `"soon" is not a duration`}},
		{"list for a single option", nil, []string{"-c", write("list.toml", "[web]\nwsgi = [\"a:b\", \"c:d\"]\n"), "web"}, 2, []string{"--wsgi is not repeatable"}},
		{"bad environment", []string{"TORSION_WORKERS=many"}, []string{"--print-config", "web"}, 2, []string{"$TORSION_WORKERS"}},
		{"not TOML", nil, []string{"-c", write("broken.toml", "[web\n"), "web"}, 2, []string{"broken.toml"}},
		{"check finds a bad endpoint", nil, []string{"-c", write("ep.toml", "[web]\nport = [\"tcp:80:interfac=x\"]\n"), "--check-config", "web"}, 2, []string{`unknown parameter "interfac"`}},
		{"two plugins, none named", nil, []string{"-c", write("two.toml", "[web]\nworkers = 2\n[echo]\n")}, 2, []string{"configures 2 plugins"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := runEnv(t, c.env, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d:\n%s", code, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}

	// --print-config's output is a configuration file that gives the
	// same configuration (defaults included, which count as unset).
	printed, code := runEnv(t, nil, "-c", good, "--print-config", "web")
	if code != 0 {
		t.Fatal(printed)
	}
	again, code := runEnv(t, nil, "-c", write("printed.toml", printed), "--print-config", "web")
	if code != 0 || again != printed {
		t.Errorf("the printed configuration reads back as (exit %d):\n%s\nnot:\n%s", code, again, printed)
	}

	// "torsion -c FILE" runs the plugin the file configures.
	p := start(t, nil, "-c", good)
	if got := curl(t, "http://127.0.0.1:"+p.port()+"/"); got != "from the config" {
		t.Errorf("served %q", got)
	}
	p.stopOK()
}

// repeatSamples are two values for each repeatable option of every
// plugin, for TestRepeatableRoundTrip; a new repeatable option needs its
// samples here.
var repeatSamples = map[string][2]string{
	"port": {"tcp:8001", "tcp:8002"}, "listen": {"tcp:8003", "tcp:8004"}, "bind": {"127.0.0.1:8005", "unix:/tmp/x.sock"},
	"pythonpath": {"/a", "/b"}, "env": {"A=1", "B=2"}, "control": {"tcp:9001", "tcp:9002"}, "amp": {"tcp:9003", "tcp:9004"},
	"static": {"/s=/srv/s", "/t=/srv/t"}, "mount": {"/a=wsgi:a.app", "/b=proxy:http://127.0.0.1:9"}, "vhost": {"a.test=path:/srv/a", "b.test=path:/srv/b"},
	"index": {"index.html", "index.htm"}, "hosts-file": {"/etc/hosts", "/etc/hosts2"}, "bindzone": {"a.zone", "b.zone"},
	"upstream": {"127.0.0.1:53", "127.0.0.2:53"}, "host-key": {"k1", "k2"}, "run": {"a=sleep 1", "b=sleep 2"},
	"maildirdbmdomain": {"a.test=dirA", "b.test=dirB"}, "user": {"alice@a.test=one", "bob@b.test=two"},
}

// TestRepeatableRoundTrip: every repeatable option of every plugin, given
// twice, is written by --print-config as a TOML list that reads back as
// the same configuration (mail's -d and -u once vanished from it). The
// options come from the plugins' own flag definitions.
func TestRepeatableRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range plugin.All() {
		fs := pflag.NewFlagSet(p.Name, pflag.ContinueOnError)
		p.Flags(fs)
		args := []string{p.Name}
		fs.VisitAll(func(f *pflag.Flag) {
			_, slice := f.Value.(pflag.SliceValue)
			repeatable := strings.Contains(f.Usage, "repeatable")
			if repeatable != slice {
				t.Errorf("%s --%s: says repeatable %v, is a list %v", p.Name, f.Name, repeatable, slice)
			}
			if !slice {
				return
			}
			v, ok := repeatSamples[f.Name]
			if !ok {
				t.Errorf("%s --%s: no samples in repeatSamples", p.Name, f.Name)
				return
			}
			args = append(args, "--"+f.Name, v[0], "--"+f.Name, v[1])
		})
		out, code := run(t, append([]string{"--print-config"}, args...)...)
		if code != 0 {
			t.Errorf("%s --print-config: exit %d: %s", p.Name, code, out)
			continue
		}
		fs.VisitAll(func(f *pflag.Flag) {
			if v, ok := repeatSamples[f.Name]; ok && strings.Contains(f.Usage, "repeatable") {
				if !strings.Contains(out, fmt.Sprintf("%s = [%q, %q]", f.Name, v[0], v[1])) {
					t.Errorf("%s --print-config lacks --%s's two values:\n%s", p.Name, f.Name, out)
				}
			}
		})
		file := filepath.Join(t.TempDir(), p.Name+".toml")
		os.WriteFile(file, []byte(out), 0o644)
		again, code := run(t, "-c", file, "--print-config", p.Name)
		if code != 0 || again != out {
			t.Errorf("%s: the printed configuration reads back as (exit %d):\n%s\nnot as:\n%s", p.Name, code, again, out)
		}
	}
}
