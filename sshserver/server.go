// Package sshserver is Twisted's twistd conch in Go: an SSH server
// (golang.org/x/crypto/ssh) that authenticates users by public key against
// an authorized_keys file (and, if asked, by password against a file of
// bcrypt hashes) and serves them a shell with a terminal, exec commands,
// SFTP (github.com/pkg/sftp) and, if asked, local port forwarding.
// Commands run as the user torsion runs as.
package sshserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/torsion-server/torsion/internal/clientaddr"
	"github.com/torsion-server/torsion/internal/penalty"
	"github.com/torsion-server/torsion/protocol"
)

// Config says how the server authenticates and what it offers.
type Config struct {
	// HostKeys are the server's private keys.
	HostKeys []ssh.Signer
	// AuthorizedKeys is the authorized_keys(5) file whose keys may log in;
	// it is read at each login, so edits take effect at once.
	AuthorizedKeys string
	// PasswordFile, if set, also lets users log in with a password: it
	// holds "user:hash" lines, the hash bcrypt's (htpasswd -B); it is
	// read at each login. Unset, passwords are not accepted.
	PasswordFile string
	// Forwarding lets clients open direct-tcpip channels (ssh -L): torsion
	// connects where they ask, from this machine. Off, they are refused.
	Forwarding bool
	// Users makes logins per system user, as sshd's are, for a server run
	// as root: a key is looked up in the user's own
	// ~/.ssh/authorized_keys (AuthorizedKeys is not used), and each
	// session runs as the user (uid, gid and groups), in the user's home
	// directory, with the user's environment; SFTP too, in SFTPCommand.
	Users bool
	// SFTPCommand, with Users, serves SFTP on its standard input and
	// output; it is started as the user with SFTPServerEnv set (torsion's
	// own executable: ServeSFTPStdio).
	SFTPCommand []string
	// Shell runs shell sessions and exec commands (default /bin/sh).
	Shell string
	// Log receives logins and their refusals.
	Log *slog.Logger
	// Login, if set, is told of each login tried (for metrics): by
	// "publickey" (each key a client offers) or "password", and whether
	// it succeeded.
	Login func(method string, ok bool)
	// MaxStartups bounds the connections that have not yet logged in, as
	// OpenSSH's MaxStartups start:rate:full does (default 10:30:100):
	// past Start of them, a new connection is dropped with probability
	// Rate percent, rising linearly to 100 at Full.
	MaxStartups Startups
	// PerSourceMaxStartups bounds the connections one client address (an
	// IPv6 /64) may have not yet logged in (default half of MaxStartups'
	// start, 5), as OpenSSH's PerSourceMaxStartups does: one attacker
	// stays below the start of random drops, so others still log in.
	PerSourceMaxStartups int
}

// Startups is OpenSSH's MaxStartups start:rate:full; zero fields take
// 10:30:100.
type Startups struct{ Start, Rate, Full int }

func (m Startups) withDefaults() Startups {
	if m.Full <= 0 {
		m.Full = 100
	}
	if m.Start <= 0 {
		m.Start = min(10, m.Full)
	}
	if m.Rate <= 0 {
		m.Rate = 30
	}
	return m
}

// drop reports whether a new connection is dropped when n others have not
// logged in; roll is a number in [0, 100).
func (m Startups) drop(n, roll int) bool {
	switch {
	case n < m.Start:
		return false
	case n >= m.Full:
		return true
	}
	p := m.Rate + (100-m.Rate)*(n-m.Start)/(m.Full-m.Start)
	return roll < p
}

// LoadOrCreateHostKey reads an OpenSSH private key from path, or, if path
// does not exist, makes an Ed25519 key there (mode 0600) and reports that
// it did, so the caller can say so.
func LoadOrCreateHostKey(path string) (signer ssh.Signer, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, false, err
		}
		block, err := ssh.MarshalPrivateKey(priv, "torsion host key")
		if err != nil {
			return nil, false, err
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, false, fmt.Errorf("host key: %w", err)
		}
		signer, err = ssh.NewSignerFromKey(priv)
		return signer, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("host key: %w", err)
	}
	signer, err = ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, false, fmt.Errorf("host key %s: %w", path, err)
	}
	return signer, false, nil
}

// New returns the SSH server, to serve on a listener.
func New(cfg Config) (*protocol.Server, error) {
	if len(cfg.HostKeys) == 0 {
		return nil, errors.New("no host key")
	}
	if cfg.Shell == "" {
		cfg.Shell = "/bin/sh"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	login := cfg.Login
	if login == nil {
		login = func(string, bool) {}
	}
	sc := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			keys := cfg.AuthorizedKeys
			if cfg.Users {
				keys = ""
				if a, err := lookupAccount(meta.User()); err == nil {
					keys = a.authorizedKeys()
				}
			}
			if keys != "" && authorized(keys, key) {
				login("publickey", true)
				return &ssh.Permissions{Extensions: map[string]string{"key": ssh.FingerprintSHA256(key)}}, nil
			}
			login("publickey", false)
			cfg.Log.Warn("SSH login refused", "user", meta.User(), "remote", meta.RemoteAddr().String(), "key", ssh.FingerprintSHA256(key))
			time.Sleep(refusalDelay) // a guesser's pace: at most MaxAuthTries a connection, each this slow
			return nil, errors.New("key not authorized")
		},
		MaxAuthTries: 6,
	}
	if cfg.PasswordFile != "" {
		// A password guesser waits its address's penalty, whichever
		// connection it guesses on, as well as the refusal's pace.
		guesses := &penalty.Table{}
		sc.PasswordCallback = func(meta ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
			guesses.Wait(context.Background(), meta.RemoteAddr()) // bounded by penalty.DefaultMax
			ok := passwordMatches(cfg.PasswordFile, meta.User(), password)
			login("password", ok)
			if ok {
				guesses.Succeed(meta.RemoteAddr())
				return &ssh.Permissions{Extensions: map[string]string{"key": "password"}}, nil
			}
			guesses.Fail(meta.RemoteAddr())
			cfg.Log.Warn("SSH login refused", "user", meta.User(), "remote", meta.RemoteAddr().String(), "method", "password")
			time.Sleep(refusalDelay)
			return nil, errors.New("wrong password")
		}
	}
	for _, k := range cfg.HostKeys {
		sc.AddHostKey(k)
	}
	startups := cfg.MaxStartups.withDefaults()
	perSource := cfg.PerSourceMaxStartups
	if perSource <= 0 {
		perSource = max(1, startups.Start/2)
	}
	var unauthenticated atomic.Int64
	var mu sync.Mutex
	bySource := map[netip.Addr]int{}
	return &protocol.Server{ServeConn: func(c net.Conn) {
		src, counted := clientaddr.Key(c.RemoteAddr())
		mu.Lock()
		full := counted && bySource[src] >= perSource
		if !full && !startups.drop(int(unauthenticated.Load()), mrand.IntN(100)) {
			unauthenticated.Add(1)
			if counted {
				bySource[src]++
			}
		} else {
			full = true
		}
		mu.Unlock()
		if full {
			cfg.Log.Debug("SSH connection dropped: too many not yet logged in (MaxStartups)", "remote", c.RemoteAddr().String())
			c.Close()
			return
		}
		serveConn(c, sc, cfg, func() {
			unauthenticated.Add(-1)
			if counted {
				mu.Lock()
				if bySource[src]--; bySource[src] == 0 {
					delete(bySource, src)
				}
				mu.Unlock()
			}
		})
	}}, nil
}

// authorized reports whether key is in the authorized_keys file. A key
// with options (command=, from=, restrict...) is not: this server does not
// carry them out, and must not grant more than they allow.
func authorized(path string, key ssh.PublicKey) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	want := key.Marshal()
	for len(b) > 0 {
		k, _, options, rest, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			return false
		}
		if bytes.Equal(k.Marshal(), want) && len(options) == 0 {
			return true
		}
		b = rest
	}
	return false
}

// passwordMatches reports whether password is user's in the file of
// "user:bcrypt-hash" lines. For a user the file lacks, the password is
// compared with a hash of the cost the file's hashes have, so that a
// refusal takes as long whether or not the user exists (OpenSSH's answer
// to CVE-2016-6210): timing does not tell which users there are.
func passwordMatches(path, user string, password []byte) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	cost := bcrypt.DefaultCost
	for line := range strings.Lines(string(b)) {
		name, hash, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if name == user {
			return bcrypt.CompareHashAndPassword([]byte(hash), password) == nil
		}
		if c, err := bcrypt.Cost([]byte(hash)); err == nil {
			cost = c
		}
	}
	bcrypt.CompareHashAndPassword(dummyHash(cost), password)
	return false
}

// dummyHashes holds a hash of a password no one has, by cost, made once.
var dummyHashes sync.Map

func dummyHash(cost int) []byte {
	if h, ok := dummyHashes.Load(cost); ok {
		return h.([]byte)
	}
	h, err := bcrypt.GenerateFromPassword([]byte("no user has this password"), cost)
	if err != nil {
		return nil
	}
	dummyHashes.Store(cost, h)
	return h
}

// refusalDelay slows each refused key or password, so that guessing is
// slow.
const refusalDelay = 500 * time.Millisecond

// handshakeTimeout bounds a client's handshake and login.
const handshakeTimeout = 30 * time.Second

// serveConn serves one connection; loggedIn is called once the handshake
// and login are over, whether they succeeded or not.
func serveConn(c net.Conn, sc *ssh.ServerConfig, cfg Config, loggedIn func()) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	conn, chans, reqs, err := ssh.NewServerConn(c, sc)
	loggedIn()
	if err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	defer conn.Close()
	cfg.Log.Info("SSH login", "user", conn.User(), "remote", conn.RemoteAddr().String(), "key", conn.Permissions.Extensions["key"])
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() == "direct-tcpip" {
			if !cfg.Forwarding {
				nc.Reject(ssh.Prohibited, "port forwarding is off")
				continue
			}
			wg.Go(func() { forward(nc, conn.User(), cfg.Log) })
			continue
		}
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions are served")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			continue
		}
		s := &session{ch: ch, cfg: cfg, user: conn.User()}
		if cfg.Users {
			if s.acct, err = lookupAccount(conn.User()); err != nil { // gone since the login
				ch.Close()
				continue
			}
		}
		wg.Go(func() { s.serve(requests) })
	}
	wg.Wait()
}

// forwardDialTimeout bounds the connection a direct-tcpip channel asks for.
const forwardDialTimeout = 10 * time.Second

// forward serves a direct-tcpip channel (RFC 4254 7.2): it connects to the
// host and port the client names and copies both ways until both ends
// are done.
func forward(nc ssh.NewChannel, user string, log *slog.Logger) {
	var req struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &req); err != nil || req.Port > 65535 {
		nc.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	target := net.JoinHostPort(req.Host, fmt.Sprint(req.Port))
	c, err := net.DialTimeout("tcp", target, forwardDialTimeout)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	defer c.Close()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	log.Info("SSH forwarding", "user", user, "to", target)
	done := make(chan struct{})
	go func() {
		io.Copy(ch, c)
		ch.CloseWrite()
		close(done)
	}()
	io.Copy(c, ch)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	<-done
}

// session is one session channel: an exec, a shell or a subsystem.
type session struct {
	ch   ssh.Channel
	cfg  Config
	user string
	env  []string
	pty  *pty     // set by pty-req
	acct *account // with Config.Users, whom it runs as
	cmd  *exec.Cmd
	mu   sync.Mutex
}

func (s *session) serve(requests <-chan *ssh.Request) {
	defer s.ch.Close()
	started := false
	for req := range requests {
		ok := false
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil {
				s.env = append(s.env, kv.Name+"="+kv.Value)
				ok = true
			}
		case "pty-req":
			var p struct {
				Term          string
				Cols, Rows    uint32
				Width, Height uint32
				Modes         string
			}
			if ssh.Unmarshal(req.Payload, &p) == nil && s.pty == nil {
				t, err := openPTY()
				if err == nil {
					t.resize(p.Cols, p.Rows)
					s.pty = t
					s.env = append(s.env, "TERM="+p.Term)
					ok = true
				}
			}
		case "window-change":
			var w struct{ Cols, Rows, Width, Height uint32 }
			if ssh.Unmarshal(req.Payload, &w) == nil && s.pty != nil {
				s.pty.resize(w.Cols, w.Rows)
				ok = true
			}
		case "signal":
			var sig struct{ Name string }
			if ssh.Unmarshal(req.Payload, &sig) == nil {
				ok = s.signal(sig.Name)
			}
		case "exec", "shell", "subsystem":
			if started {
				break
			}
			var arg struct{ Value string }
			if req.Type != "shell" && ssh.Unmarshal(req.Payload, &arg) != nil {
				break
			}
			switch {
			case req.Type == "subsystem" && arg.Value == "sftp":
				ok, started = true, true
				go s.sftp()
			case req.Type == "subsystem":
			default:
				err := s.start(arg.Value)
				if err != nil {
					s.cfg.Log.Warn("SSH session could not start", "user", s.user, "err", err)
				}
				ok, started = err == nil, err == nil
			}
		}
		if req.WantReply {
			req.Reply(ok, nil)
		}
	}
	s.mu.Lock()
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGHUP) // the client closed the session
	}
	s.mu.Unlock()
}

// signalNames are the signals RFC 4254 6.10 names for exit-signal.
var signalNames = map[syscall.Signal]string{syscall.SIGABRT: "ABRT", syscall.SIGALRM: "ALRM", syscall.SIGFPE: "FPE",
	syscall.SIGHUP: "HUP", syscall.SIGILL: "ILL", syscall.SIGINT: "INT", syscall.SIGKILL: "KILL", syscall.SIGPIPE: "PIPE",
	syscall.SIGQUIT: "QUIT", syscall.SIGSEGV: "SEGV", syscall.SIGTERM: "TERM", syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2"}

// start runs command (a shell when empty), on the terminal if one was
// asked for, and sends its exit status, or the signal that ended it, when
// it ends. A per-user session runs the user's login shell.
func (s *session) start(command string) error {
	args := []string{}
	if command != "" {
		args = []string{"-c", command}
	}
	shell := s.cfg.Shell
	if s.acct != nil && s.acct.shell != "" {
		shell = s.acct.shell
	}
	cmd := exec.Command(shell, args...)
	cmd.Env = append(os.Environ(), s.env...)
	if home, err := os.UserHomeDir(); err == nil {
		cmd.Dir = home
	}
	if s.acct != nil {
		cmd.Env, cmd.Dir = append(s.acct.env(shell), s.env...), s.acct.home
	}
	var closeAfter []io.Closer
	if s.pty != nil {
		tty, err := s.pty.openTTY()
		if err != nil {
			return err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if s.acct != nil { // the user's terminal, as login(1) makes it
			s.pty.chown(int(s.acct.cred.Uid), int(s.acct.cred.Gid))
		}
		closeAfter = append(closeAfter, tty)
	} else {
		cmd.Stdin = s.ch
		cmd.Stdout = s.ch
		cmd.Stderr = s.ch.Stderr()
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if s.acct != nil {
		cmd.SysProcAttr.Credential = s.acct.cred
	}
	s.mu.Lock()
	s.cmd = cmd
	err := cmd.Start()
	s.mu.Unlock()
	for _, c := range closeAfter {
		c.Close()
	}
	if err != nil {
		return err
	}
	copied := make(chan struct{})
	if s.pty != nil {
		go io.Copy(s.pty.master, s.ch)
		go func() {
			io.Copy(s.ch, s.pty.master) // ends with EIO once the shell and its children are gone
			close(copied)
		}()
	} else {
		close(copied)
	}
	go func() {
		err := cmd.Wait()
		if s.pty != nil {
			select {
			case <-copied:
			case <-time.After(time.Second):
			}
			s.pty.master.Close()
		}
		status := uint32(0)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			status = uint32(ee.ExitCode())
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				if name, ok := signalNames[ws.Signal()]; ok {
					// RFC 4254 6.10: the signal, not a status made up of it.
					s.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
						Signal     string
						CoreDumped bool
						Message    string
						Lang       string
					}{name, ws.CoreDump(), "", ""}))
					s.ch.Close()
					return
				}
				status = 128 + uint32(ws.Signal())
			}
		}
		s.ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		s.ch.Close()
	}()
	return nil
}

// signal passes a client's signal (RFC 4254 6.9) to the command.
func (s *session) signal(name string) bool {
	sigs := map[string]syscall.Signal{"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "HUP": syscall.SIGHUP,
		"KILL": syscall.SIGKILL, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2}
	sig, ok := sigs[name]
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || s.cmd == nil || s.cmd.Process == nil {
		return false
	}
	return syscall.Kill(-s.cmd.Process.Pid, sig) == nil
}

// sftp serves the SFTP subsystem on the channel: in this process, or, for
// a session of a system user (Config.Users), in SFTPCommand run as the
// user, so that files are read and written with the user's rights.
func (s *session) sftp() {
	if s.acct != nil {
		s.sftpAs()
		return
	}
	var opts []sftp.ServerOption
	if home, err := os.UserHomeDir(); err == nil {
		opts = append(opts, sftp.WithServerWorkingDirectory(home)) // where the shell starts too
	}
	srv, err := sftp.NewServer(s.ch, opts...)
	if err != nil {
		s.ch.Close()
		return
	}
	err = srv.Serve()
	status := uint32(0)
	if err != nil && !errors.Is(err, io.EOF) {
		status = 1
	}
	s.ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
	s.ch.Close()
}

// sftpAs serves SFTP in Config.SFTPCommand, started as the session's user
// in the user's home directory.
func (s *session) sftpAs() {
	status := uint32(1)
	defer func() {
		s.ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		s.ch.Close()
	}()
	if len(s.cfg.SFTPCommand) == 0 {
		return
	}
	cmd := exec.Command(s.cfg.SFTPCommand[0], s.cfg.SFTPCommand[1:]...)
	cmd.Env = append(s.acct.env(s.cfg.Shell), SFTPServerEnv+"=1")
	cmd.Dir = s.acct.home
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.acct.cred, Setpgid: true}
	cmd.Stdin, cmd.Stdout = s.ch, s.ch
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		status = 0
	case !errors.As(err, &ee):
		s.cfg.Log.Warn("SSH session could not start SFTP", "user", s.user, "err", err)
	}
}
