package h1

import (
	"testing"
)

// skipStdClient skips a test of Transport's own behaviour when it is built
// with the balancer_stdclient tag (or for a platform where it is off):
// every request then goes through its Fallback, net/http's Transport.
func skipStdClient(t testing.TB) {
	t.Helper()
	if !Enabled {
		t.Skip("tests the balancer's own HTTP/1.1 client; in this build requests go through net/http's Transport")
	}
}
