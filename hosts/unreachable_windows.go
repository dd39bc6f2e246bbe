package hosts

import (
	"errors"
	"syscall"
)

// Winsock's codes for a refused connection and an unreachable host or
// network, which syscall does not name.
const (
	wsaECONNREFUSED syscall.Errno = 10061
	wsaEHOSTUNREACH syscall.Errno = 10065
	wsaENETUNREACH  syscall.Errno = 10051
)

// isUnreachable reports whether err says that a server cannot be reached:
// its port is closed (over UDP, from an ICMP port unreachable reply), or
// there is no route to it.
func isUnreachable(err error) bool {
	return errors.Is(err, wsaECONNREFUSED) || errors.Is(err, wsaEHOSTUNREACH) ||
		errors.Is(err, wsaENETUNREACH)
}
