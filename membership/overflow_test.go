package membership

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestHandlerQueueOverflow: memberlist's line per packet dropped by its
// full handler queue is counted for Health and logged once per interval;
// with the counting off, each line passes at Warn and is still counted.
func TestHandlerQueueOverflow(t *testing.T) {
	const line = "[WARN] memberlist: handler queue full, dropping message (8) from=127.0.0.1:4000\n"
	t.Run("counted", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var buf syncBuffer
			l := textLogger(&buf)
			n := &Node{overflow: &overflowLog{l: l, interval: 10 * time.Second}}
			b := &logBridge{l: l}
			b.node.Store(n)
			for range 1000 {
				b.Write([]byte(line))
			}
			synctest.Wait()
			if got := buf.take(); got != "" {
				t.Errorf("logged at once:\n%s", got)
			}
			time.Sleep(10 * time.Second)
			synctest.Wait()
			want := `level=WARN msg="membership: dropped cluster packets, handler queue full" packets=1000 first="handler queue full, dropping message (8) from=127.0.0.1:4000" interval=10s component=memberlist
`
			if diff := cmp.Diff(want, buf.take()); diff != "" {
				t.Errorf("after the interval (-want +got):\n%s", diff)
			}
			b.Write([]byte(line))
			n.overflow.stop()
			if got := buf.take(); !strings.Contains(got, "packets=1 ") {
				t.Errorf("stop logged %q, want the pending packet", got)
			}
			if got := n.overflow.total.Load(); got != 1001 {
				t.Errorf("total = %d, want 1001", got)
			}
		})
	})
	t.Run("off", func(t *testing.T) {
		var buf syncBuffer
		l := textLogger(&buf)
		n := &Node{overflow: &overflowLog{l: l, interval: -1}}
		b := &logBridge{l: l}
		b.node.Store(n)
		for range 3 {
			b.Write([]byte(line))
		}
		n.overflow.stop()
		if got := strings.Count(buf.take(), "level=WARN msg=\"handler queue full"); got != 3 {
			t.Errorf("%d lines at Warn, want 3", got)
		}
		if got := n.overflow.total.Load(); got != 3 {
			t.Errorf("total = %d, want 3", got)
		}
	})
}
