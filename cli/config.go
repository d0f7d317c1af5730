package cli

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/plugin"
)

// A configuration file says what the command line says, in TOML (the
// format of Python's pyproject.toml, which a Python team already writes,
// and of Granian's and uv's settings): global options at the top, each
// plugin's options in a table named after it. Every long option is a key,
// with its own name:
//
//	logfile = "torsion.log"
//
//	[web]
//	port = ["tcp:8000", "ssl:8443:privateKey=key.pem"]  # repeatable: an array
//	wsgi = "app:application"
//	workers = 4
//	timeout = 30
//
// Values come from three places; the first that sets an option wins: the
// command line, then $TORSION_<OPTION> (upper case, - as _:
// TORSION_WORKERS=4, TORSION_LOG_FORMAT=json), then the file.

// configKeys are the options that choose or show the configuration, and
// are not themselves configurable.
var configKeys = []string{"config", "print-config", "check-config", "help", "version"}

// config is a parsed configuration file.
type config struct {
	path    string
	globals map[string]any
	plugins map[string]map[string]any
}

// loadConfig reads path; plugins are the plugins' names, the only tables
// allowed.
func loadConfig(path string, plugins []string) (*config, error) {
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	c := &config{path: path, globals: map[string]any{}, plugins: map[string]map[string]any{}}
	for k, v := range raw {
		if t, ok := v.(map[string]any); ok {
			if !slices.Contains(plugins, k) {
				return nil, fmt.Errorf("--config %s: [%s] names no plugin (plugins: %s)", path, k, strings.Join(plugins, ", "))
			}
			c.plugins[k] = t
			continue
		}
		c.globals[k] = v
	}
	return c, nil
}

// plugin returns the one plugin the file configures, if it configures
// exactly one.
func (c *config) plugin() (string, bool) {
	if len(c.plugins) != 1 {
		return "", false
	}
	for name := range c.plugins {
		return name, true
	}
	return "", false
}

// applyConfig sets every option of plugin (local: its own flags; global:
// the global ones) that the command line left unset, from the environment
// and then from c (nil: no file). An unknown key or a bad value is an
// error naming it.
func applyConfig(c *config, plugin string, local, global *pflag.FlagSet) error {
	lookup := func(name string) *pflag.Flag {
		if slices.Contains(configKeys, name) {
			return nil
		}
		if f := local.Lookup(name); f != nil {
			return f
		}
		return global.Lookup(name)
	}
	var errs []string
	fromFile := map[string]any{}
	if c != nil {
		for k, v := range c.globals {
			if f := global.Lookup(k); f == nil || slices.Contains(configKeys, k) {
				errs = append(errs, fmt.Sprintf("unknown key %q%s", k, keyHint(k, global)))
			} else {
				fromFile[k] = v
			}
		}
		for k, v := range c.plugins[plugin] {
			if lookup(k) == nil {
				errs = append(errs, fmt.Sprintf("unknown key %q in [%s]%s", k, plugin, keyHint(k, local)))
			} else {
				fromFile[k] = v
			}
		}
	}
	set := func(f *pflag.Flag, source string, v any) {
		if err := setFlag(f, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", source, err))
		}
	}
	visit := func(f *pflag.Flag) {
		if f.Changed || slices.Contains(configKeys, f.Name) {
			return
		}
		env := "TORSION_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			set(f, "$"+env, v)
		} else if v, ok := fromFile[f.Name]; ok {
			key := f.Name
			if global.Lookup(f.Name) != f {
				key = plugin + "." + f.Name
			}
			set(f, "key "+key, v)
		}
	}
	local.VisitAll(visit)
	global.VisitAll(visit)
	if len(errs) > 0 {
		slices.Sort(errs)
		where := "configuration"
		if c != nil {
			where = "--config " + c.path
		}
		return fmt.Errorf("%s: %s", where, strings.Join(errs, "; "))
	}
	return nil
}

// keyHint says where an unknown configuration key belongs: in a
// plugin's table, when it is one of the plugin's options given at the top
// ("put it under [web]"), or the key it nearly is.
func keyHint(key string, fs *pflag.FlagSet) string {
	if near := closest(key, fs); near != "" {
		return fmt.Sprintf(" (did you mean %q?)", near)
	}
	var owners []string
	for _, p := range plugin.All() {
		pfs := pflag.NewFlagSet(p.Name, pflag.ContinueOnError)
		p.Flags(pfs)
		if f := pfs.Lookup(key); f != nil && !f.Hidden {
			owners = append(owners, "["+p.Name+"]")
		}
	}
	if len(owners) > 0 {
		return fmt.Sprintf(" at the top: it is a plugin's option; put it under %s", strings.Join(owners, " or "))
	}
	return ""
}

// setFlag gives f the value v: a string, number or boolean, or for an
// option that may be repeated, an array of them.
func setFlag(f *pflag.Flag, v any) error {
	_, many := f.Value.(pflag.SliceValue)
	vals, isList := v.([]any)
	if isList && len(vals) == 0 {
		return nil
	}
	if !isList {
		vals = []any{v}
	} else if !many {
		return fmt.Errorf("want one value, not a list (--%s is not repeatable)", f.Name)
	}
	for _, x := range vals {
		var s string
		switch x := x.(type) {
		case string:
			s = x
		case int64:
			s = strconv.FormatInt(x, 10)
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			s = strconv.FormatBool(x)
		default:
			return fmt.Errorf("%v: want a string, number or boolean", x)
		}
		if err := f.Value.Set(s); err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
	}
	// A default given explicitly is the default: the plugin's checks of
	// what was asked for see nothing asked, so --print-config's output
	// reads back as the same configuration.
	f.Changed = f.Value.String() != f.DefValue
	return nil
}

// printConfig writes the options in effect as a configuration file.
func printConfig(plugin string, local, global *pflag.FlagSet) (string, error) {
	value := func(f *pflag.Flag) any {
		switch sv := f.Value.(type) {
		case pflag.SliceValue:
			return sv.GetSlice()
		}
		switch f.Value.Type() {
		case "bool":
			b, _ := strconv.ParseBool(f.Value.String())
			return b
		case "int", "int64", "uint", "uint64", "BYTES":
			n, _ := strconv.ParseInt(f.Value.String(), 10, 64)
			return n
		case "N|MIN:MAX": // a number, or a range written as a string
			if n, err := strconv.ParseInt(f.Value.String(), 10, 64); err == nil {
				return n
			}
		}
		return f.Value.String()
	}
	top := map[string]any{}
	global.VisitAll(func(f *pflag.Flag) {
		if !slices.Contains(configKeys, f.Name) && !f.Hidden {
			top[f.Name] = value(f)
		}
	})
	table := map[string]any{}
	local.VisitAll(func(f *pflag.Flag) {
		if !slices.Contains(configKeys, f.Name) && global.Lookup(f.Name) == nil && !f.Hidden {
			table[f.Name] = value(f)
		}
	})
	top[plugin] = table
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(top); err != nil {
		return "", err
	}
	return b.String(), nil
}
