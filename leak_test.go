package carbonlb_test

import (
	"runtime"
	"testing"
	"time"
)

// leakGrace is how long checkLeaks waits for goroutines to end after a
// test: memberlist's timers end within a probe interval of Close, and a
// goroutine that has returned is counted for a moment while the runtime
// retires it; a leaked goroutine stays for ever.
const leakGrace = 5 * time.Second

// checkLeaks records the number of goroutines and registers a cleanup, run
// after the test's later cleanups, that fails t when more are still running
// after leakGrace. Call it first in the test, before anything starts.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(leakGrace)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines outlive the test, want at most %d:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			<-tick.C
		}
	})
}
