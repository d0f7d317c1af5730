// Package endpoint parses Twisted-style endpoint descriptions such as
// "tcp:8080:interface=127.0.0.1" or "unix:/run/app.sock:mode=0660" into typed
// values that listen (servers) or dial (clients).
//
// The grammar is Twisted's: ':' separates arguments, "name=value" names one,
// and '\' escapes the next character. After a '=' only ':' ends the value, so
// values may contain '='. A description that is only a port number means
// "tcp:PORT".
//
// Parsers are registered by prefix (Register, RegisterClient), so other
// packages add kinds such as "ssl" or "haproxy" from their init functions.
package endpoint

import (
	"fmt"
	"strings"
)

// Args is a description split into its parts.
type Args struct {
	// Kind is the prefix before the first ':' ("tcp", "unix", ...).
	Kind string
	// Positional holds the arguments without a name, in order.
	Positional []string
	// Named holds the "name=value" arguments.
	Named map[string]string
	// Rest is the unparsed text after "Kind:", for wrappers such as
	// "haproxy:tcp:8000" that hand it to another parser.
	Rest string
}

// Split splits a description into its kind and arguments, following the
// tokenizer in twisted.internet.endpoints.
func Split(desc string) (Args, error) {
	kind, rest, found := cutUnescaped(desc, ':')
	a := Args{Kind: unescape(kind), Rest: rest, Named: map[string]string{}}
	if !found {
		return a, nil
	}
	var (
		cur   strings.Builder
		parts []string
		inVal bool // after '=', only ':' ends the value
	)
	flush := func() error {
		parts = append(parts, cur.String())
		cur.Reset()
		switch len(parts) {
		case 1:
			a.Positional = append(a.Positional, parts[0])
		default:
			if _, dup := a.Named[parts[0]]; dup {
				return fmt.Errorf("parameter %q given twice", parts[0])
			}
			a.Named[parts[0]] = parts[1]
		}
		parts, inVal = nil, false
		return nil
	}
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; {
		case c == '\\' && i+1 < len(rest):
			i++
			cur.WriteByte(rest[i])
		case c == ':':
			if err := flush(); err != nil {
				return Args{}, err
			}
		case c == '=' && !inVal:
			parts = append(parts, cur.String())
			cur.Reset()
			inVal = true
		default:
			cur.WriteByte(c)
		}
	}
	if err := flush(); err != nil {
		return Args{}, err
	}
	return a, nil
}

// cutUnescaped is strings.Cut that skips separators escaped with '\'.
func cutUnescaped(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Escape quotes the characters that the grammar treats specially, so that
// Escape(v) parses back to v as one argument value.
func Escape(v string) string {
	if !strings.ContainsAny(v, `:=\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == ':' || c == '=' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// params binds a description's arguments to parameter names: positional
// arguments fill names in order, named ones fill by name, and anything
// unknown or given twice is an error.
type params struct {
	vals map[string]string
}

func bind(a Args, names ...string) (params, error) {
	p := params{vals: map[string]string{}}
	if len(a.Positional) > len(names) {
		return p, fmt.Errorf("too many arguments (%d, at most %d: %s)", len(a.Positional), len(names), strings.Join(names, ", "))
	}
	for i, v := range a.Positional {
		p.vals[names[i]] = v
	}
	for k, v := range a.Named {
		known := false
		for _, n := range names {
			known = known || n == k
		}
		if !known {
			return p, fmt.Errorf("unknown parameter %q (known: %s)", k, strings.Join(names, ", "))
		}
		if _, dup := p.vals[k]; dup {
			return p, fmt.Errorf("parameter %q given twice", k)
		}
		p.vals[k] = v
	}
	return p, nil
}

func (p params) get(name string) (string, bool) {
	v, ok := p.vals[name]
	return v, ok
}
