//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly) || balancer_stdclient

package balancer

// useH1 says whether h1Transport sends requests itself. It does not on
// platforms whose sockets it cannot inspect before reusing a connection,
// nor when the package is built with the balancer_stdclient tag (so that
// the test suite can run through net/http's Transport): every request then
// goes to its fallback, net/http's Transport.
const useH1 = false

// recvNow is never called when useH1 is false.
func recvNow(fd uintptr, p []byte, peek bool) (n int, wouldBlock, ok bool) {
	return 0, false, false
}
