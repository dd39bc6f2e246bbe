package membership_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/membership/membertest"
	"github.com/google/go-cmp/cmp"
)

// TestMembertestCloseNoWait: a test in a synctest bubble may end right after
// Close, whatever memberlist was doing: a probe of a stopped member waiting
// for its ack, a dial waiting out the latency, packets lost. synctest.Test
// panics if any goroutine is left.
func TestMembertestCloseNoWait(t *testing.T) {
	const runs = 100
	for r := range runs {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				nw := &membertest.Network{}
				switch r % 4 {
				case 1:
					nw.SetLatency(time.Millisecond)
				case 2:
					if err := nw.SetLoss(0.2); err != nil {
						t.Fatal(err)
					}
				case 3:
					nw.SetLatency(3 * time.Millisecond)
					if err := nw.SetLoss(0.1); err != nil {
						t.Fatal(err)
					}
				}
				c := newCluster(t)
				for i := 1; i <= 3; i++ {
					c.join(i, memConfig(t, nw, i, "10.0.0.1:4000"))
				}
				c.waitUntil(10*time.Second, "3 nodes converge", func() bool { return c.converged(1, 2, 3) })
				if r%2 == 0 {
					c.stop(3) // the others' probes of it go unanswered
				}
				// Close at any point of the probe cycle, one node after
				// the other as deferred Closes do.
				<-time.After(time.Duration(r) * 7 * time.Millisecond)
				for i, n := range c.nodes {
					if err := n.Close(); err != nil {
						t.Errorf("Close node %d: %v", i, err)
					}
				}
				c.wg.Wait()
			})
		})
	}
}

// TestLeaveAlone: Leave with no other alive member returns at once, and
// nodes stopped together do not wait for each other.
func TestLeaveAlone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes int
	}{
		{"last node", 1},
		{"two stopped together", 2},
		{"three stopped together", 3},
		{"five stopped together", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				nw := &membertest.Network{}
				c := newCluster(t)
				defer c.close()
				for i := 1; i <= tc.nodes; i++ {
					c.join(i, memConfig(t, nw, i, "10.0.0.1:4000"))
				}
				c.waitUntil(5*time.Second, "nodes converge", func() bool { return c.converged(seq(1, tc.nodes)...) })
				timing := membership.LocalTiming()
				// Without a deadline Leave may take Timing.TCPTimeout;
				// stopped together, each is done well within half of it.
				limit := timing.TCPTimeout / 2
				if tc.nodes == 1 {
					limit = timing.GossipInterval // nothing to wait for
				}
				type result struct {
					took time.Duration
					err  error
				}
				results := make([]result, tc.nodes)
				var wg sync.WaitGroup
				for i := 1; i <= tc.nodes; i++ {
					n := c.nodes[i]
					wg.Go(func() {
						start := time.Now()
						err := n.Leave(context.Background())
						results[i-1] = result{time.Since(start), err}
					})
				}
				wg.Wait()
				for i, r := range results {
					if r.err != nil || r.took > limit {
						t.Errorf("node %d: Leave = %v after %v, want nil within %v", i+1, r.err, r.took, limit)
					}
				}
				clear(c.nodes)
			})
		})
	}
}

// TestPeerShutdownQuiet: the members of a node that leaves log nothing above
// Debug about it; a stream that ends before its first byte is a member's
// stream cut short when it comes from a member's address, logged at Debug,
// and a foreign one otherwise, counted at Warn.
func TestPeerShutdownQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		recs := map[int]*recorder{}
		for i := 1; i <= 3; i++ {
			cfg := memConfig(t, nw, i, "10.0.0.1:4000")
			recs[i] = &recorder{}
			cfg.Logger = slog.New(recs[i])
			c.join(i, cfg)
		}
		c.waitUntil(5*time.Second, "3 nodes converge", func() bool { return c.converged(1, 2, 3) })

		// Node 3 dials node 1 from another port of its address and closes
		// the stream at once, as a node stopping while it dials does; a
		// host that is no member does the same.
		for _, from := range []string{"10.0.0.3:4001", "10.0.0.9:4000"} {
			tr, err := nw.NewTransport(netip.MustParseAddrPort(from))
			if err != nil {
				t.Fatal(err)
			}
			conn, err := tr.DialTimeout(addr(1).String(), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.Close()
			synctest.Wait() // node 1 has read the stream and logged
			tr.Shutdown()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.nodes[3].Leave(ctx); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		delete(c.nodes, 3)
		c.waitUntil(5*time.Second, "node 3 gone", func() bool { return c.converged(1, 2) })
		// The foreign stream's count is logged an interval after it came.
		<-time.After(membership.DefaultConfig(testDomain).ForeignLogInterval)

		var loud []string
		for _, i := range []int{1, 2} {
			for _, r := range recs[i].records() {
				if r.Level <= slog.LevelDebug {
					continue
				}
				a := attrs(r)
				if r.Message == "membership: dropped unreadable cluster messages" && a["from"] == "10.0.0.9" {
					continue
				}
				loud = append(loud, fmt.Sprintf("node %d: %v %s %v", i, r.Level, r.Message, a))
			}
		}
		if diff := cmp.Diff([]string(nil), loud); diff != "" {
			t.Errorf("lines above Debug at the members of a node that left (-want +got):\n%s", diff)
		}
		var foreign []string
		for _, r := range recs[1].records() {
			if a := attrs(r); r.Message == "membership: dropped unreadable cluster messages" {
				foreign = append(foreign, fmt.Sprintf("%v from=%s streams=%s", r.Level, a["from"], a["streams"]))
			}
		}
		if diff := cmp.Diff([]string{"WARN from=10.0.0.9 streams=1"}, foreign); diff != "" {
			t.Errorf("foreign streams counted at node 1 (-want +got):\n%s", diff)
		}
	})
}

// TestLeaveAloneRealUDP: three nodes on real sockets stopped together all
// leave without error, none waiting out its deadline for the others.
func TestLeaveAloneRealUDP(t *testing.T) {
	c := newCluster(t)
	defer c.close()
	for i := 1; i <= 3; i++ {
		cfg := localConfig(t)
		if i > 1 {
			cfg.WKA = []string{c.nodes[1].Addr().String()}
		}
		c.join(i, cfg)
	}
	c.waitUntil(10*time.Second, "3 nodes converge over UDP/TCP", func() bool { return c.converged(1, 2, 3) })
	const deadline = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	errs := make([]error, 3)
	took := make([]time.Duration, 3)
	var wg sync.WaitGroup
	for i := 1; i <= 3; i++ {
		n := c.nodes[i]
		wg.Go(func() {
			start := time.Now()
			errs[i-1] = n.Leave(ctx)
			took[i-1] = time.Since(start)
		})
	}
	wg.Wait()
	clear(c.nodes)
	for i := range errs {
		if errs[i] != nil || took[i] >= deadline/2 {
			t.Errorf("node %d: Leave = %v after %v, want nil well within the %v deadline", i+1, errs[i], took[i], deadline)
		}
	}
	t.Logf("Leave took %v", took)
}
