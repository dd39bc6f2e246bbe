// Package leakcheck fails a test when goroutines started during it outlive
// it. The example programs' end-to-end tests use it to show that every
// server, cluster node and balancer they start is stopped by its Close.
package leakcheck

import (
	"runtime"
	"testing"
	"time"
)

// Grace is how long Check waits for goroutines to end after the test's
// cleanup. memberlist's probe timers end within a probe interval of Close,
// and a goroutine that has returned is counted for a moment while the
// runtime retires it; a leaked goroutine stays for ever.
const Grace = 5 * time.Second

// Check records the number of running goroutines and registers a cleanup,
// run after the test's later cleanups, that fails t when more are still
// running after Grace. Call it first in the test, before anything starts.
func Check(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() { Wait(t, before) })
}

// Wait fails t when more than n goroutines still run after Grace, with a
// dump of every goroutine's stack.
func Wait(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(Grace)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines outlive the test, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
			return
		}
		<-tick.C
	}
}
