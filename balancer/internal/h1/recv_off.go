//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly) || balancer_stdclient

package h1

// Enabled says whether Transport sends requests itself. It does not on
// platforms whose sockets it cannot inspect before reusing a connection,
// nor when built with the balancer_stdclient tag (so that the balancer's
// test suite can run through net/http's Transport): every request then
// goes to its Fallback, net/http's Transport.
const Enabled = false

// recvNow is never called when Enabled is false.
func recvNow(fd uintptr, p []byte, peek bool) (n int, wouldBlock, ok bool) {
	return 0, false, false
}
