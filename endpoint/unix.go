package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/torsion-server/torsion/internal/handover"
)

func init() {
	Register("unix", parseUnix)
	RegisterClient("unix", parseUnixClient)
}

// Unix listens on a Unix domain socket:
// "unix:PATH[:mode=0666][:lockfile=1][:backlog=N]" (Twisted calls the path "address").
type Unix struct {
	Path string
	// Mode is the socket file's permission bits; 0 means Twisted's default 0666.
	Mode fs.FileMode
	// Lockfile guards the socket with PATH.lock: a stale socket left by a dead
	// process is removed, and a socket held by a live one is an error.
	Lockfile bool
	Backlog  int
}

func parseUnix(a Args) (Server, error) {
	p, err := bind(a, "address", "mode", "lockfile", "backlog")
	if err != nil {
		return nil, err
	}
	var u Unix
	if u.Path, _ = p.get("address"); u.Path == "" {
		return nil, fmt.Errorf("missing socket path")
	}
	if m, ok := p.get("mode"); ok {
		n, err := strconv.ParseUint(m, 8, 32)
		if err != nil || n > 0o777 {
			return nil, fmt.Errorf("mode %q is not an octal permission such as 0660", m)
		}
		u.Mode = fs.FileMode(n)
	}
	if l, ok := p.get("lockfile"); ok {
		if u.Lockfile, err = parseBool(l); err != nil {
			return nil, fmt.Errorf("lockfile: %w", err)
		}
	}
	if b, ok := p.get("backlog"); ok {
		if u.Backlog, err = strconv.Atoi(b); err != nil || u.Backlog < 1 {
			return nil, fmt.Errorf("backlog %q is not a positive number", b)
		}
	}
	return u, nil
}

// String returns the description in canonical form.
func (u Unix) String() string {
	var b strings.Builder
	b.WriteString("unix:" + Escape(u.Path))
	if u.Mode != 0 {
		fmt.Fprintf(&b, ":mode=%04o", uint32(u.Mode))
	}
	if u.Lockfile {
		b.WriteString(":lockfile=1")
	}
	if u.Backlog > 0 {
		fmt.Fprintf(&b, ":backlog=%d", u.Backlog)
	}
	return b.String()
}

// Listen creates the socket file and listens on it. Closing the listener
// removes the socket file (and the lock file).
func (u Unix) Listen(ctx context.Context) (net.Listener, error) {
	key := u.String()
	if ln, err := inheritedListener(key); ln != nil || err != nil {
		if err != nil {
			return nil, err
		}
		// A listener made from a descriptor leaves its file behind on
		// Close; this one is ours now, as if we had made it.
		ln.(*net.UnixListener).SetUnlinkOnClose(true)
		l := &unixListener{Listener: track(key, ln), key: key}
		if lock := handover.Take(key + " lock"); lock != nil {
			writePid(lock)
			l.setLock(lock)
		}
		return l, nil
	}
	var lock *os.File
	if u.Lockfile {
		var err error
		if lock, err = acquireLock(u.Path + ".lock"); err != nil {
			return nil, err
		}
		// We hold the lock, so any socket file there is stale.
		if err := os.Remove(u.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			lock.Close()
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", u.Path)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	mode := u.Mode
	if mode == 0 {
		mode = 0o666
	}
	err = os.Chmod(u.Path, mode)
	if err == nil && u.Backlog > 0 {
		err = relisten(ln.(*net.UnixListener), u.Backlog)
	}
	l := &unixListener{Listener: track(key, ln), key: key}
	if lock != nil {
		l.setLock(lock)
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

type unixListener struct {
	net.Listener
	key  string
	lock *os.File
}

// setLock keeps the lock file, to be handed over with the socket.
func (l *unixListener) setLock(f *os.File) {
	l.lock = f
	handover.Remember(l.key+" lock", handover.LockFile(f))
}

// SetDeadline sets the accept deadline.
func (l *unixListener) SetDeadline(t time.Time) error { return setDeadline(l.Listener, t) }

func (l *unixListener) Close() error {
	err := l.Listener.Close()
	if l.lock != nil {
		handover.Forget(l.key+" lock", handover.LockFile(l.lock))
		if !handover.Done() { // else the successor holds it
			os.Remove(l.lock.Name())
		}
		l.lock.Close()
		l.lock = nil
	}
	return err
}

func acquireLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("socket is in use by another process (pid %s holds %s)", strings.TrimSpace(string(pid)), path)
	}
	writePid(f)
	return f, nil
}

// writePid makes a lock file name this process.
func writePid(f *os.File) {
	f.Truncate(0)
	f.Seek(0, io.SeekStart)
	fmt.Fprintf(f, "%d\n", os.Getpid())
}

// UnixClient dials a Unix domain socket:
// "unix:path=PATH[:timeout=SECONDS][:lockfile=1]" or "unix:PATH".
type UnixClient struct {
	Path    string
	Timeout time.Duration
	// CheckPID refuses to dial unless PATH.lock names a live process, as
	// Twisted's lockfile=1 (checkPID) does.
	CheckPID bool
}

func parseUnixClient(a Args) (Client, error) {
	p, err := bind(a, "path", "timeout", "lockfile")
	if err != nil {
		return nil, err
	}
	var c UnixClient
	if c.Path, _ = p.get("path"); c.Path == "" {
		return nil, fmt.Errorf("missing socket path")
	}
	if c.Timeout, err = parseTimeout(p); err != nil {
		return nil, err
	}
	if l, ok := p.get("lockfile"); ok {
		if c.CheckPID, err = parseBool(l); err != nil {
			return nil, fmt.Errorf("lockfile: %w", err)
		}
	}
	return c, nil
}

// String returns the description in canonical form.
func (c UnixClient) String() string {
	s := "unix:path=" + Escape(c.Path)
	if c.Timeout > 0 {
		s += ":timeout=" + strconv.FormatFloat(c.Timeout.Seconds(), 'f', -1, 64)
	}
	if c.CheckPID {
		s += ":lockfile=1"
	}
	return s
}

// Dial connects to the socket.
func (c UnixClient) Dial(ctx context.Context) (net.Conn, error) {
	if c.CheckPID {
		b, err := os.ReadFile(c.Path + ".lock")
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || perr != nil || unix.Kill(pid, 0) == unix.ESRCH {
			return nil, fmt.Errorf("dial unix %s: no live process holds %s.lock", c.Path, c.Path)
		}
	}
	d := net.Dialer{Timeout: c.Timeout}
	if d.Timeout == 0 {
		d.Timeout = 30 * time.Second
	}
	return d.DialContext(ctx, "unix", c.Path)
}
