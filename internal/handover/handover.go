// Package handover holds the sockets a torsion process listens on, for
// its successor in an upgrade of the binary in place (SIGUSR2): package
// endpoint records each socket its kinds make (tcp, ssl, sni, unix, udp,
// systemd and their wrappers) in one process-wide table and, in a
// successor, takes the one handed over under the same key instead of
// binding anew; package service hands the table to the successor
// (HandOver) and lets go of it (HandedOver, CloseUnclaimed).
package handover

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// A process hands its listening sockets to its successor (an upgrade of
// the binary in place) through the environment: $TORSION_HANDOVER lists
// the sockets' keys, one per line, and the sockets follow, in that order,
// from file descriptor 3. A key is the canonical description of the
// endpoint that made the socket (TCP.String(), Unix.String(),
// Systemd.String()), so the successor, started with the same command
// line, finds each socket where it would have listened; a Unix socket's
// lock file follows under its key with " lock" appended.
const handoverEnv = "TORSION_HANDOVER"

// A process also carries values to its successor, as $TORSION_CARRY: one
// "KEY\tVALUE" per line (a pool's worker count, say, which it has grown
// to since it started).
const carryEnv = "TORSION_CARRY"

var (
	socketsMu sync.Mutex
	// sockets are the listening sockets this process made, by key.
	sockets = map[string][]Filer{}

	handedOver atomic.Bool

	handoverOnce  sync.Once
	handoverFiles map[string][]*os.File

	// carry are the values to give a successor, computed at HandOver;
	// carried, those the predecessor gave this process.
	carry   = map[string]func() string{}
	carried map[string]string
)

// Carry registers a value for the successor of an upgrade: value is called
// when the process hands over (HandOver), and the successor reads it with
// Carried(key). Keys and values hold no tab or newline.
func Carry(key string, value func() string) {
	socketsMu.Lock()
	defer socketsMu.Unlock()
	carry[key] = value
}

// Carried returns the value the predecessor carried under key, if any.
func Carried(key string) (string, bool) {
	handoverOnce.Do(readHandover)
	socketsMu.Lock()
	defer socketsMu.Unlock()
	v, ok := carried[key]
	return v, ok
}

// Filer is a listener or lock file that can be duplicated for a successor.
type Filer interface {
	File() (*os.File, error)
}

// SocketFile is a listening socket, as a Filer: named name, it
// duplicates the socket for a successor.
func SocketFile(c syscall.Conn, name string) Filer { return socketFile{c, name} }

// socketFile duplicates a listening socket for a successor. Unlike the
// listener's own File method, whose file os/exec would put in blocking
// mode — and with it the listener, which shares the mode — it leaves the
// socket non-blocking.
type socketFile struct {
	syscall.Conn
	name string
}

func (s socketFile) File() (f *os.File, err error) {
	rc, err := s.SyscallConn()
	if err != nil {
		return nil, err
	}
	if cerr := rc.Control(func(fd uintptr) { f, err = dupFile(fd, s.name) }); cerr != nil {
		return nil, cerr
	}
	return f, err
}

// dupFile duplicates descriptor fd (close-on-exec) as a file named name.
func dupFile(fd uintptr, name string) (*os.File, error) {
	nfd, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// Remember records a socket (or lock file) made under key.
func Remember(key string, f Filer) {
	socketsMu.Lock()
	defer socketsMu.Unlock()
	sockets[key] = append(sockets[key], f)
}

// Forget drops a socket that was closed.
func Forget(key string, f Filer) {
	socketsMu.Lock()
	defer socketsMu.Unlock()
	list := sockets[key]
	for i, g := range list {
		if g == f {
			sockets[key] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(sockets[key]) == 0 {
		delete(sockets, key)
	}
}

// Take returns a socket (or lock file) the predecessor handed over under
// key, or nil. Each is taken once.
func Take(key string) *os.File {
	handoverOnce.Do(readHandover)
	socketsMu.Lock()
	defer socketsMu.Unlock()
	list := handoverFiles[key]
	if len(list) == 0 {
		return nil
	}
	handoverFiles[key] = list[1:]
	return list[0]
}

// readHandover reads, once, what $TORSION_HANDOVER says was handed over,
// and removes the variable so that processes torsion starts do not read it.
func readHandover() {
	carried = map[string]string{}
	for _, line := range strings.Split(os.Getenv(carryEnv), "\n") {
		if k, v, ok := strings.Cut(line, "\t"); ok {
			carried[k] = v
		}
	}
	os.Unsetenv(carryEnv)
	keys := os.Getenv(handoverEnv)
	os.Unsetenv(handoverEnv)
	handoverFiles = map[string][]*os.File{}
	if keys == "" {
		return
	}
	for i, key := range strings.Split(keys, "\n") {
		f := os.NewFile(uintptr(3+i), key)
		if f == nil {
			continue
		}
		handoverFiles[key] = append(handoverFiles[key], f)
	}
}

// CloseUnclaimed closes what the predecessor handed over and nothing took
// (an endpoint the new command line no longer has). A successor calls it
// once it has started.
func CloseUnclaimed() {
	handoverOnce.Do(readHandover)
	socketsMu.Lock()
	defer socketsMu.Unlock()
	for key, list := range handoverFiles {
		for _, f := range list {
			f.Close()
		}
		delete(handoverFiles, key)
	}
}

// HandOver adds duplicates of every listening socket this process holds
// (those made by the tcp, ssl, sni, unix, udp and systemd kinds and the
// kinds wrapping them) to cmd, for a successor that will serve them: its
// ExtraFiles and its environment. It returns the files added, which the
// caller closes once cmd has started.
func HandOver(cmd *exec.Cmd) ([]*os.File, error) {
	if len(cmd.ExtraFiles) != 0 {
		return nil, errors.New("handing over: the sockets must be the first of ExtraFiles")
	}
	socketsMu.Lock()
	defer socketsMu.Unlock()
	var files []*os.File
	var keys []string
	for key, list := range sockets {
		for _, s := range list {
			f, err := s.File()
			if errors.Is(err, net.ErrClosed) {
				continue // a datagram socket closed since (they are not wrapped to be forgotten)
			}
			if err != nil {
				for _, f := range files {
					f.Close()
				}
				return nil, fmt.Errorf("handing over %s: %w", key, err)
			}
			files = append(files, f)
			keys = append(keys, key)
		}
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, files...)
	cmd.Env = append(cmd.Env, handoverEnv+"="+strings.Join(keys, "\n"))
	var values []string
	for key, value := range carry {
		values = append(values, key+"\t"+value())
	}
	cmd.Env = append(cmd.Env, carryEnv+"="+strings.Join(values, "\n"))
	return files, nil
}

// HandedOver marks this process's sockets as belonging to its successor:
// closing them no longer removes Unix socket files or their lock files.
func HandedOver() {
	handedOver.Store(true)
	socketsMu.Lock()
	defer socketsMu.Unlock()
	for _, list := range sockets {
		for _, s := range list {
			if sf, ok := s.(socketFile); ok {
				if ul, ok := sf.Conn.(*net.UnixListener); ok {
					ul.SetUnlinkOnClose(false)
				}
			}
		}
	}
}

// LockFile is a Unix socket's lock file, as a Filer: handed over with the
// socket, the successor's copy holds the same flock.
func LockFile(f *os.File) Filer { return lockFile{f} }

type lockFile struct{ f *os.File }

func (l lockFile) File() (*os.File, error) { return dupFile(l.f.Fd(), l.f.Name()) }

// Done reports whether HandedOver has run: the sockets belong to the
// successor, and a Unix socket's file and lock stay when it is closed.
func Done() bool { return handedOver.Load() }
