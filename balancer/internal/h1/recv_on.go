//go:build (linux || darwin || freebsd || netbsd || openbsd || dragonfly) && !balancer_stdclient

package h1

import "syscall"

// Enabled says whether Transport sends requests itself. It does on the
// platforms whose sockets it can inspect before reusing a connection (recv
// with MSG_PEEK and MSG_DONTWAIT), unless built with the balancer_stdclient
// tag: then every request goes through its Fallback, net/http's Transport,
// so that the balancer's test suite can check that the two behave alike.
const Enabled = true

// recvNow receives from the socket fd into p without waiting; with peek the
// bytes stay queued. It returns the bytes received (0: the peer closed),
// whether the receive would have blocked (nothing waiting), and whether it
// could be made at all (false on any other error).
func recvNow(fd uintptr, p []byte, peek bool) (n int, wouldBlock, ok bool) {
	flags := syscall.MSG_DONTWAIT
	if peek {
		flags |= syscall.MSG_PEEK
	}
	for {
		n, _, err := syscall.Recvfrom(int(fd), p, flags)
		switch {
		case err == nil:
			return n, false, true
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			return 0, true, true
		}
		return 0, false, false
	}
}
