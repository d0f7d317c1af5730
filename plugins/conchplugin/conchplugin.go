// Package conchplugin is the "conch" plugin: Twisted's twistd conch, an
// SSH server.
package conchplugin

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"golang.org/x/crypto/ssh"

	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/plugin"
	"github.com/torsion-server/torsion/service"
	"github.com/torsion-server/torsion/sshserver"
)

func init() {
	plugin.Register(plugin.Plugin{
		Name:        "conch",
		Description: "An SSH server: public-key logins, a shell with a terminal, exec and SFTP.",
		Usage: `Example:
  torsion conch -p tcp:2222:interface=127.0.0.1 --authorized-keys ~/.ssh/authorized_keys
  ssh -p 2222 127.0.0.1

Logins are by public key against --authorized-keys, and by password only
with --password-file (user:bcrypt-hash lines, as htpasswd -B writes);
sessions run as the user torsion runs as. Run as root without
--authorized-keys, logins are per system user, against each one's
~/.ssh/authorized_keys, and each session runs as its user (SFTP too).
--allow-tcp-forwarding serves
ssh -L. Without --host-key, a host key is made on first start
(ssh_host_ed25519_key in the current directory) and kept.`,
		Flags: flags,
	})
}

func flags(fs *pflag.FlagSet) plugin.Maker {
	var port, authKeys, shell, passwords, maxStartups string
	var hostKeys []string
	var forwarding bool
	var perSource int
	fs.StringVarP(&port, "port", "p", "tcp:22", "endpoint `DESC` to listen on")
	fs.StringArrayVar(&hostKeys, "host-key", nil, "the server's private key `FILE`, in OpenSSH format (repeatable; default ssh_host_ed25519_key, made if missing)")
	fs.StringVar(&authKeys, "authorized-keys", "", "the authorized_keys `FILE` whose keys may log in (required, unless run as root: then each system user's ~/.ssh/authorized_keys)")
	fs.StringVar(&shell, "shell", "/bin/sh", "the `PATH` of the shell that runs sessions and commands")
	fs.StringVar(&passwords, "password-file", "", "also accept passwords, checked against this `FILE` of user:bcrypt-hash lines (htpasswd -B); off by default")
	fs.BoolVar(&forwarding, "allow-tcp-forwarding", false, "serve local port forwarding (ssh -L): torsion connects where clients ask")
	fs.IntVar(&perSource, "per-source-max-startups", 5, "most connections not yet logged in from one client address (`N`), as OpenSSH's PerSourceMaxStartups: one attacker stays below --max-startups' START, so others still log in")
	fs.StringVar(&maxStartups, "max-startups", "10:30:100", "`START:RATE:FULL`, as OpenSSH's MaxStartups: past START connections not yet logged in, drop new ones with RATE percent chance, rising to all at FULL")
	return func(env plugin.Env) (service.Service, error) {
		var startups sshserver.Startups
		if n, err := fmt.Sscanf(maxStartups, "%d:%d:%d", &startups.Start, &startups.Rate, &startups.Full); err != nil || n != 3 ||
			startups.Start < 1 || startups.Rate < 1 || startups.Rate > 100 || startups.Full < startups.Start {
			return nil, fmt.Errorf("--max-startups %q: want START:RATE:FULL, such as 10:30:100 (1 <= START <= FULL, RATE a percentage)", maxStartups)
		}
		if perSource < 1 {
			return nil, fmt.Errorf("--per-source-max-startups must be at least 1")
		}
		perUser := authKeys == "" && os.Geteuid() == 0
		if authKeys == "" && !perUser {
			return nil, fmt.Errorf("--authorized-keys is required: logins are by public key (and by password with --password-file)")
		}
		if passwords != "" {
			if _, err := os.Stat(passwords); err != nil {
				return nil, fmt.Errorf("--password-file: %w", err)
			}
		}
		if !perUser {
			if _, err := os.Stat(authKeys); err != nil {
				return nil, fmt.Errorf("--authorized-keys: %w", err)
			}
		}
		var sftpCommand []string
		if perUser {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("finding torsion's own executable, to serve SFTP as each user: %w", err)
			}
			sftpCommand = []string{exe}
		}
		ep, err := endpoint.Parse(port)
		if err != nil {
			return nil, fmt.Errorf("--port: %w", err)
		}
		log := env.Log.With(logging.SystemKey, "conch")
		if len(hostKeys) == 0 {
			hostKeys = []string{"ssh_host_ed25519_key"}
		}
		var signers []ssh.Signer
		for _, path := range hostKeys {
			signer, created, err := sshserver.LoadOrCreateHostKey(path)
			if err != nil {
				return nil, fmt.Errorf("--host-key: %w", err)
			}
			if created {
				abs, _ := filepath.Abs(path)
				log.Warn("made a new SSH host key; clients will see it as this server's from now on", "file", abs, "fingerprint", ssh.FingerprintSHA256(signer.PublicKey()))
			}
			signers = append(signers, signer)
		}
		var login func(string, bool)
		if env.Metrics != nil {
			logins := prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "torsion_ssh_logins_total",
				Help: "SSH logins tried, by method (publickey: each key a client offers; password) and whether they succeeded.",
			}, []string{"method", "ok"})
			if err := env.Metrics.Register(logins); err != nil {
				return nil, err
			}
			login = func(method string, ok bool) { logins.WithLabelValues(method, strconv.FormatBool(ok)).Inc() }
		}
		srv, err := sshserver.New(sshserver.Config{HostKeys: signers, AuthorizedKeys: authKeys, PasswordFile: passwords,
			Forwarding: forwarding, Users: perUser, SFTPCommand: sftpCommand, Shell: shell, Log: log, Login: login,
			MaxStartups: startups, PerSourceMaxStartups: perSource})
		if err != nil {
			return nil, err
		}
		if perUser {
			log.Info("logins are per system user: each one's ~/.ssh/authorized_keys, and sessions run as the user")
		}
		return &service.Listener{Endpoint: ep, Server: srv, Name: "SSH", Log: log}, nil
	}
}
