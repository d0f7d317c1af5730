// Package mailplugin is the "mail" plugin: Twisted's twistd mail, an ESMTP
// server delivering to Maildirs of virtual domains, and a POP3 server.
package mailplugin

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/mailserver"
	"github.com/torsion-server/torsion/plugin"
	"github.com/torsion-server/torsion/service"
)

func init() {
	plugin.Register(plugin.Plugin{
		Name:        "mail",
		Description: "An ESMTP and POP3 server for virtual domains, keeping mail in Maildirs.",
		Usage: `Example:
  torsion mail -E -H localhost -d localhost=emails -u alice=secret \
    --smtp tcp:8025:interface=127.0.0.1 --pop3 tcp:8110:interface=127.0.0.1

Each -d DOMAIN=DIR is a domain whose users' Maildirs are DIR/USER; each
-u USER=PASSWORD adds a user to the domain given last before it. Mail for
other domains is refused (no relaying), as is mail for unknown users.
--certificate offers STARTTLS; with --relay-via HOST:PORT too, a user who
logs in (AUTH PLAIN, over TLS only) may send to other domains through that
smarthost. POP3 takes USER and PASS, or APOP.`,
		Flags: flags,
	})
}

// domainList is -d and -u together: pflag sets them in command-line order,
// so a user joins the domain given last before it.
type domainList struct {
	domains []*domainArg
}

type domainArg struct {
	name, dir string
	users     [][2]string
}

// domainFlag is -d. As a pflag.SliceValue, its values are "DOMAIN=DIR",
// so that --print-config writes them as a TOML list that reads back.
type domainFlag struct{ l *domainList }

func (f domainFlag) String() string { return "[" + strings.Join(f.GetSlice(), ",") + "]" }
func (f domainFlag) Type() string   { return "DOMAIN=DIR" }
func (f domainFlag) Set(v string) error {
	name, dir, ok := strings.Cut(v, "=")
	if !ok || name == "" || dir == "" {
		return fmt.Errorf("want DOMAIN=DIR")
	}
	for _, d := range f.l.domains {
		if strings.EqualFold(d.name, name) {
			return fmt.Errorf("domain %s is given twice", name)
		}
	}
	f.l.domains = append(f.l.domains, &domainArg{name: name, dir: dir})
	return nil
}
func (f domainFlag) Append(v string) error { return f.Set(v) }
func (f domainFlag) Replace(vs []string) error {
	f.l.domains = nil
	for _, v := range vs {
		if err := f.Set(v); err != nil {
			return err
		}
	}
	return nil
}
func (f domainFlag) GetSlice() []string {
	var vs []string
	for _, d := range f.l.domains {
		vs = append(vs, d.name+"="+d.dir)
	}
	return vs
}

// userFlag is -u: USER=PASSWORD (or USER:PASSWORD) joins the domain given
// last before it; USER@DOMAIN=PASSWORD names its domain, given with -d
// anywhere before it. Its values, for --print-config, name the domain, so
// a configuration file's lists read back whatever their order.
type userFlag struct{ l *domainList }

func (f userFlag) String() string { return "[" + strings.Join(f.GetSlice(), ",") + "]" }
func (f userFlag) Type() string   { return "USER=PASSWORD" }
func (f userFlag) Set(v string) error {
	user, pass, ok := strings.Cut(v, "=")
	if !ok {
		user, pass, ok = strings.Cut(v, ":")
	}
	if !ok || user == "" || pass == "" {
		return fmt.Errorf("want USER=PASSWORD or USER:PASSWORD")
	}
	if len(f.l.domains) == 0 {
		return fmt.Errorf("give -d DOMAIN=DIR before the users of DOMAIN")
	}
	d := f.l.domains[len(f.l.domains)-1]
	if name, dom, ok := strings.Cut(user, "@"); ok {
		d = nil
		for _, x := range f.l.domains {
			if strings.EqualFold(x.name, dom) {
				d = x
			}
		}
		if d == nil || name == "" {
			return fmt.Errorf("%s: give -d %s=DIR before its users", user, dom)
		}
		user = name
	}
	d.users = append(d.users, [2]string{user, pass})
	return nil
}
func (f userFlag) Append(v string) error { return f.Set(v) }
func (f userFlag) Replace(vs []string) error {
	for _, d := range f.l.domains {
		d.users = nil
	}
	for _, v := range vs {
		if err := f.Set(v); err != nil {
			return err
		}
	}
	return nil
}
func (f userFlag) GetSlice() []string {
	var vs []string
	for _, d := range f.l.domains {
		for _, u := range d.users {
			vs = append(vs, u[0]+"@"+d.name+"="+u[1])
		}
	}
	return vs
}

func flags(fs *pflag.FlagSet) plugin.Maker {
	var smtpEP, pop3EP, hostname, certFile, keyFile, relayVia string
	var maxMessage int64
	var list domainList
	fs.StringVarP(&smtpEP, "smtp", "s", "", "endpoint `DESC` of the ESMTP server (none: no SMTP; default tcp:25 as root, else tcp:8025)")
	fs.StringVarP(&pop3EP, "pop3", "o", "", "endpoint `DESC` of the POP3 server (none: no POP3; default tcp:110 as root, else tcp:8110)")
	fs.StringVarP(&hostname, "hostname", "H", "localhost", "the `NAME` the server greets with and puts in Received lines")
	fs.VarP(domainFlag{&list}, "maildirdbmdomain", "d", "a virtual domain: mail for DOMAIN kept in DIR, a Maildir per user (repeatable)")
	fs.VarP(userFlag{&list}, "user", "u", "a user (USER=PASSWORD or USER:PASSWORD) of the domain given last before it, or USER@DOMAIN=PASSWORD of the domain it names (repeatable)")
	fs.BoolP("esmtp", "E", true, "speak ESMTP (always; accepted for twistd's command line)")
	plugin.BytesVar(fs, &maxMessage, "max-message-size", "", 10<<20, "largest message accepted, in `BYTES`; more gets 552")
	fs.StringVar(&certFile, "certificate", "", "offer STARTTLS with this PEM certificate `FILE` (its key too, unless --private-key)")
	fs.StringVar(&keyFile, "private-key", "", "the PEM private key `FILE` of --certificate (default: the certificate file)")
	fs.StringVar(&relayVia, "relay-via", "", "let users who log in (AUTH PLAIN, over TLS) send to other domains through this smarthost `HOST:PORT`")
	return func(env plugin.Env) (service.Service, error) {
		if len(list.domains) == 0 {
			return nil, fmt.Errorf("give at least one -d DOMAIN=DIR")
		}
		if smtpEP == "" {
			smtpEP = map[bool]string{true: "tcp:25", false: "tcp:8025"}[os.Geteuid() == 0]
		}
		if pop3EP == "" {
			pop3EP = map[bool]string{true: "tcp:110", false: "tcp:8110"}[os.Geteuid() == 0]
		}
		opts := mailserver.SMTPOptions{Hostname: hostname, MaxMessage: maxMessage, RelayVia: relayVia}
		if certFile != "" {
			if keyFile == "" {
				keyFile = certFile
			}
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("--certificate: %w", err)
			}
			opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		} else if keyFile != "" {
			return nil, fmt.Errorf("--private-key needs --certificate")
		}
		if relayVia != "" {
			if opts.TLS == nil {
				return nil, fmt.Errorf("--relay-via needs --certificate: users log in to relay, and only over TLS")
			}
			if _, _, err := net.SplitHostPort(relayVia); err != nil {
				return nil, fmt.Errorf("--relay-via %q: want HOST:PORT", relayVia)
			}
		}
		store := mailserver.NewStore()
		store.Hostname = hostname
		if env.Metrics != nil {
			m, err := newMailMetrics(env.Metrics)
			if err != nil {
				return nil, err
			}
			store.Observer = m
		}
		for _, d := range list.domains {
			if err := store.AddDomain(d.name, d.dir); err != nil {
				return nil, fmt.Errorf("-d: %w", err)
			}
			for _, u := range d.users {
				if err := store.AddUser(d.name, u[0], u[1]); err != nil {
					return nil, fmt.Errorf("-u: %w", err)
				}
			}
		}
		log := env.Log.With(logging.SystemKey, "mail")
		m := service.NewMulti()
		if smtpEP != "none" {
			ep, err := endpoint.Parse(smtpEP)
			if err != nil {
				return nil, fmt.Errorf("--smtp: %w", err)
			}
			m.Add(&service.Listener{Endpoint: ep, Server: mailserver.NewSMTP(store, opts, log), Name: "ESMTP", Log: log})
		}
		if pop3EP != "none" {
			ep, err := endpoint.Parse(pop3EP)
			if err != nil {
				return nil, fmt.Errorf("--pop3: %w", err)
			}
			m.Add(&service.Listener{Endpoint: ep, Server: mailserver.POP3(store, log), Name: "POP3", Log: log})
		}
		return m, nil
	}
}
