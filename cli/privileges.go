package cli

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// privileges are the user and group torsion and its workers run as.
type privileges struct {
	// drop, when set, is what torsion itself becomes once its sockets
	// are bound (--uid/--gid).
	drop *syscall.Credential
	// workers is what the processes it starts run as; nil: as torsion.
	workers *syscall.Credential
	// note says so, for the log; empty when nothing changes.
	note string
}

// resolvePrivileges works out privileges from --uid, --gid and
// --allow-root.
func resolvePrivileges(uid, gid string, allowRoot bool) (privileges, error) {
	if uid == "" && gid != "" {
		return privileges{}, fmt.Errorf("--gid needs --uid")
	}
	if uid == "" {
		return privileges{}, nil
	}
	c, err := credential(uid, gid)
	if err != nil {
		return privileges{}, err
	}
	if c.Uid == 0 && !allowRoot {
		return privileges{}, fmt.Errorf("--uid %s is root: give --allow-root if you mean it", uid)
	}
	return privileges{drop: c, workers: c, note: fmt.Sprintf("running as uid %d, gid %d once the ports are bound", c.Uid, c.Gid)}, nil
}

// credential looks up a user and a group (by name or number); an empty
// group means the user's own.
func credential(uid, gid string) (*syscall.Credential, error) {
	u, err := user.Lookup(uid)
	if err != nil {
		if u, err = user.LookupId(uid); err != nil {
			// A number that names no user is still a uid.
			n, nerr := strconv.ParseUint(uid, 10, 32)
			if nerr != nil {
				return nil, fmt.Errorf("--uid %s: no such user", uid)
			}
			u = &user.User{Uid: strconv.FormatUint(n, 10), Gid: strconv.FormatUint(n, 10)}
		}
	}
	g := u.Gid
	if gid != "" {
		if grp, err := user.LookupGroup(gid); err == nil {
			g = grp.Gid
		} else if n, nerr := strconv.ParseUint(gid, 10, 32); nerr == nil {
			g = strconv.FormatUint(n, 10)
		} else {
			return nil, fmt.Errorf("--gid %s: no such group", gid)
		}
	}
	un, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("--uid %s: uid %q is not a number", uid, u.Uid)
	}
	gn, err := strconv.ParseUint(g, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("--gid: gid %q is not a number", g)
	}
	return &syscall.Credential{Uid: uint32(un), Gid: uint32(gn)}, nil
}

// dropTo makes this process (every thread) run as c, with no
// supplementary groups. It does nothing if the process already does.
func dropTo(c *syscall.Credential) error {
	if os.Getuid() == int(c.Uid) && os.Geteuid() == int(c.Uid) && os.Getgid() == int(c.Gid) {
		return nil
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("dropping supplementary groups: %w", err)
	}
	if err := syscall.Setgid(int(c.Gid)); err != nil {
		return fmt.Errorf("setgid %d: %w", c.Gid, err)
	}
	if err := syscall.Setuid(int(c.Uid)); err != nil {
		return fmt.Errorf("setuid %d: %w", c.Uid, err)
	}
	return nil
}
