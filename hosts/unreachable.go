//go:build !windows && !plan9

package hosts

import (
	"errors"
	"syscall"
)

// isUnreachable reports whether err says that a server cannot be reached:
// its port is closed (ECONNREFUSED, over UDP from an ICMP port unreachable
// reply), or there is no route to it.
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}
