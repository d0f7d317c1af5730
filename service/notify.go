package service

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// notifier tells systemd how the service is doing (sd_notify), for units
// of Type=notify: READY=1 once started, RELOADING=1 and READY=1 around a
// reload, STOPPING=1 when the stop begins, and WATCHDOG=1 at half the
// interval of WatchdogSec=. Without $NOTIFY_SOCKET it does nothing.
type notifier struct {
	socket   string // $NOTIFY_SOCKET as found
	addr     *net.UnixAddr
	watchdog time.Duration // 0: no watchdog
}

// newNotifier reads $NOTIFY_SOCKET and $WATCHDOG_USEC, and removes them so
// that processes the service starts do not notify in its name.
func newNotifier() *notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	usec, wpid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	os.Unsetenv("NOTIFY_SOCKET")
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	if path == "" {
		return &notifier{}
	}
	n := &notifier{socket: path}
	if path[0] == '@' { // the abstract namespace
		path = "\x00" + path[1:]
	}
	n.addr = &net.UnixAddr{Name: path, Net: "unixgram"}
	if us, err := strconv.ParseInt(usec, 10, 64); err == nil && us > 0 && (wpid == "" || wpid == strconv.Itoa(os.Getpid())) {
		n.watchdog = time.Duration(us) * time.Microsecond
	}
	return n
}

// send sends a state, such as "READY=1".
func (n *notifier) send(state string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// reloadingState is the state sent as a reload begins.
func reloadingState() string {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000)
}
