//go:build !linux

package workers

// residentBytes is not measured outside Linux.
func residentBytes(pid int) (int64, bool) { return 0, false }
