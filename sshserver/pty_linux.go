package sshserver

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// pty is a pseudo-terminal: torsion holds the master, the command gets
// the terminal.
type pty struct {
	master *os.File
	name   string
}

func openPTY() (*pty, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil { // unlockpt
		m.Close()
		return nil, err
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN) // ptsname
	if err != nil {
		m.Close()
		return nil, err
	}
	return &pty{master: m, name: fmt.Sprintf("/dev/pts/%d", n)}, nil
}

// openTTY opens the terminal side, for the command.
func (p *pty) openTTY() (*os.File, error) {
	return os.OpenFile(p.name, os.O_RDWR|syscall.O_NOCTTY, 0)
}

// resize tells the terminal its size (window-change).
func (p *pty) resize(cols, rows uint32) {
	unix.IoctlSetWinsize(int(p.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols)})
}

// chown gives the terminal to a user, as login(1) does.
func (p *pty) chown(uid, gid int) { os.Chown(p.name, uid, gid) }
