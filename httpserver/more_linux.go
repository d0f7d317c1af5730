package httpserver

import "syscall"

// writeMore writes p to c with MSG_MORE, so that the kernel holds it back
// until the data that follows at once (a file's sendfile) and sends them
// in the same segments: on loopback each send costs the receiver's
// processing too, and a small head sent alone cost as much as 100 KiB of
// file.
func writeMore(c syscall.Conn, p []byte) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	written := 0
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			n, err := syscall.SendmsgN(int(fd), p[written:], nil, nil, syscall.MSG_MORE)
			if err == syscall.EAGAIN {
				return false // wait until the socket can take more
			}
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				werr = err
				return true
			}
			written += n
		}
		return true
	})
	if werr != nil {
		err = werr
	}
	return written, err
}
