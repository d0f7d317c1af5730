//go:build !linux

package sched

// Set reports ErrUnsupported, except for Normal, which is what the process
// has.
func Set(p Policy) error {
	if p == Normal {
		return nil
	}
	return ErrUnsupported
}

// Get reports ErrUnsupported.
func Get(tid int) (Policy, error) { return "", ErrUnsupported }
