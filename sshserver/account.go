package sshserver

import (
	"errors"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/pkg/sftp"
)

// account is the system user a session runs as (Config.Users).
type account struct {
	name, home string
	shell      string // the login shell /etc/passwd gives, if any
	cred       *syscall.Credential
}

// lookupAccount finds a system user by name.
func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	return &account{name: u.Username, home: u.HomeDir, shell: loginShell(u.Username), cred: cred}, nil
}

// loginShell is name's login shell in /etc/passwd (os/user does not say),
// or "" (then the server's --shell runs); a nologin shell is the user's
// too, and refuses the session as it should.
func loginShell(name string) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimRight(line, "\n"), ":")
		if len(f) == 7 && f[0] == name && filepath.IsAbs(f[6]) {
			return f[6]
		}
	}
	return ""
}

// authorizedKeys is the user's own authorized_keys file.
func (a *account) authorizedKeys() string { return filepath.Join(a.home, ".ssh", "authorized_keys") }

// env is the environment a session of the account starts with: its own,
// not the server's.
func (a *account) env(shell string) []string {
	return []string{"HOME=" + a.home, "USER=" + a.name, "LOGNAME=" + a.name, "SHELL=" + shell,
		"PATH=/usr/local/bin:/usr/bin:/bin"}
}

// SFTPServerEnv, set in the environment of a torsion process, makes it
// serve SFTP on its standard input and output (ServeSFTPStdio) instead of
// anything else: how a server run as root serves a user's files as that
// user (Config.SFTPCommand).
const SFTPServerEnv = "TORSION_SFTP_SERVER"

// ServeSFTPStdio serves SFTP on standard input and output, in the current
// directory, until the client ends; it returns the exit status.
func ServeSFTPStdio() int {
	dir, _ := os.Getwd()
	srv, err := sftp.NewServer(struct {
		io.Reader
		io.WriteCloser
	}{os.Stdin, os.Stdout}, sftp.WithServerWorkingDirectory(dir))
	if err != nil {
		return 1
	}
	if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
		return 1
	}
	return 0
}
