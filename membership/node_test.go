package membership_test

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/membership/membertest"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

// never fails the test when cond holds at any event within d.
func (c *cluster) never(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if cond() {
			c.t.Fatalf("%s within %v", what, d)
		}
		select {
		case <-c.signal:
		case <-deadline.C:
			return
		}
	}
}

// names returns the names node i lists.
func (c *cluster) names(i int) []string {
	var out []string
	for _, m := range c.nodes[i].Members() {
		out = append(out, m.Name)
	}
	return out
}

func hasEvent(evs []membership.Event, t membership.EventType, name string) bool {
	return slices.ContainsFunc(evs, func(e membership.Event) bool { return e.Type == t && e.Member.Name == name })
}

func TestJoinThroughOneWKA(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		for i := 1; i <= 5; i++ {
			c.join(i, memConfig(t, nw, i, "10.0.0.1:4000"))
		}
		c.waitUntil(5*time.Second, "5 nodes converge", func() bool { return c.converged(seq(1, 5)...) })
		want := []string{"10.0.0.1:4000", "10.0.0.2:4000", "10.0.0.3:4000", "10.0.0.4:4000", "10.0.0.5:4000"}
		for i := 1; i <= 5; i++ {
			if diff := cmp.Diff(want, c.names(i)); diff != "" {
				t.Errorf("node %d Members() mismatch (-want +got):\n%s", i, diff)
			}
		}
		m := c.nodes[3].Members()[0]
		if m.Domain != testDomain || m.SubDomain != "worker" || m.Addr != addr(1) || m.Pool() != testDomain+"/worker" {
			t.Errorf("node 3 sees node 1 as %+v", m)
		}
		for i := 2; i <= 5; i++ {
			if !hasEvent(c.seen(1), membership.Joined, addr(i).String()) {
				t.Errorf("node 1 saw no Joined event for node %d", i)
			}
		}
		if h := c.nodes[2].Health(); h.Members != 5 || h.WKA != 1 || h.WKAAlive != 1 {
			t.Errorf("node 2 Health() = %+v, want 5 members and its one WKA alive", h)
		}
	})
}

func TestJoinThroughRange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		// Only 4 of the 10 addresses of the range have a node; 2 and 4
		// start late and are found by the rejoin loop.
		for _, i := range []int{1, 3, 5, 7} {
			c.join(i, memConfig(t, nw, i, "10.0.0.[1-10]:4000"))
			if i == 3 {
				c.join(2, memConfig(t, nw, 2, "10.0.0.[1-10]:4000"))
			}
		}
		c.waitUntil(5*time.Second, "5 nodes converge", func() bool { return c.converged(1, 2, 3, 5, 7) })
		if h := c.nodes[7].Health(); h.WKA != 9 || h.WKAAlive != 4 {
			t.Errorf("node 7 Health() = %+v, want 4 of 9 WKA alive", h)
		}
	})
}

func TestOtherDomainRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		c.join(1, memConfig(t, nw, 1))
		c.join(2, memConfig(t, nw, 2, "10.0.0.1:4000"))
		other := memConfig(t, nw, 3, "10.0.0.1:4000", "10.0.0.2:4000")
		other.Domain = "wso2.as.domain"
		c.join(3, other)
		c.waitUntil(5*time.Second, "nodes 1 and 2 converge", func() bool { return c.converged(1, 2) })
		c.never(10*time.Second, "a node of another domain is listed", func() bool {
			return len(c.nodes[1].Members()) != 2 || len(c.nodes[2].Members()) != 2 || len(c.nodes[3].Members()) != 1
		})
		if h := c.nodes[3].Health(); h.WKAAlive != 0 {
			t.Errorf("node of another domain: Health() = %+v, want no WKA alive", h)
		}
	})
}

func TestOtherKeyRefused(t *testing.T) {
	key := func(b byte) []byte { return slices.Repeat([]byte{b}, 32) }
	for _, tc := range []struct {
		name       string
		key, other []byte
	}{
		{"different key", key(1), key(2)},
		{"no key", key(1), nil},
		{"key against none", nil, key(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				nw := &membertest.Network{}
				c := newCluster(t)
				defer c.close()
				a := memConfig(t, nw, 1)
				a.SecretKey = tc.key
				c.join(1, a)
				b := memConfig(t, nw, 2, "10.0.0.1:4000")
				b.SecretKey = tc.key
				c.join(2, b)
				x := memConfig(t, nw, 3, "10.0.0.1:4000", "10.0.0.2:4000")
				x.SecretKey = tc.other
				c.join(3, x)
				c.waitUntil(5*time.Second, "nodes with the key converge", func() bool { return c.converged(1, 2) })
				c.never(10*time.Second, "a node with another key is listed", func() bool {
					return len(c.nodes[1].Members()) != 2 || len(c.nodes[3].Members()) != 1
				})
			})
		})
	}
}

func TestFailedNodeDetected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 50
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		for i := 1; i <= n; i++ {
			c.join(i, memConfig(t, nw, i, "10.0.0.1:4000", "10.0.0.2:4000"))
		}
		c.waitUntil(10*time.Second, "50 nodes converge", func() bool { return c.converged(seq(1, n)...) })
		gone := addr(17).String()
		c.stop(17)
		rest := slices.DeleteFunc(seq(1, n), func(i int) bool { return i == 17 })
		d := c.waitUntil(10*time.Second, "stopped node gone from every list", func() bool { return c.converged(rest...) })
		t.Logf("stopped node gone from 49 lists in %v (virtual time)", d)
		c.waitUntil(time.Second, "Failed event at every node", func() bool {
			for _, i := range rest {
				if !hasEvent(c.seen(i), membership.Failed, gone) {
					return false
				}
			}
			return true
		})
		for _, i := range rest {
			if hasEvent(c.seen(i), membership.Left, gone) {
				t.Errorf("node %d saw a Left event for a node that did not leave", i)
			}
		}
	})
}

func TestLeaveSeenAsLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		for i := 1; i <= 5; i++ {
			c.join(i, memConfig(t, nw, i, "10.0.0.1:4000"))
		}
		c.waitUntil(5*time.Second, "5 nodes converge", func() bool { return c.converged(seq(1, 5)...) })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.nodes[4].Leave(ctx); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		if err := c.nodes[4].Leave(ctx); !errors.Is(err, membership.ErrClosed) {
			t.Errorf("second Leave = %v, want ErrClosed", err)
		}
		delete(c.nodes, 4)
		c.waitUntil(5*time.Second, "left node gone", func() bool { return c.converged(1, 2, 3, 5) })
		c.waitUntil(time.Second, "Left event at every node", func() bool {
			for _, i := range []int{1, 2, 3, 5} {
				if !hasEvent(c.seen(i), membership.Left, addr(4).String()) && !hasEvent(c.seen(i), membership.Failed, addr(4).String()) {
					return false
				}
			}
			return true
		})
		for _, i := range []int{1, 2, 3, 5} {
			if !hasEvent(c.seen(i), membership.Left, addr(4).String()) {
				t.Errorf("node %d saw no Left event", i)
			}
			if hasEvent(c.seen(i), membership.Failed, addr(4).String()) {
				t.Errorf("node %d saw a Failed event for a node that left", i)
			}
		}
	})
}

func TestPropertyUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		for i := 1; i <= 4; i++ {
			cfg := memConfig(t, nw, i, "10.0.0.1:4000")
			cfg.Properties = map[string]string{membership.PropHTTPPort: "9763"}
			c.join(i, cfg)
		}
		c.waitUntil(5*time.Second, "4 nodes converge", func() bool { return c.converged(seq(1, 4)...) })
		want := map[string]string{membership.PropHTTPPort: "9764", membership.PropHTTPSPort: "9444"}
		if err := c.nodes[3].SetProperties(want); err != nil {
			t.Fatalf("SetProperties: %v", err)
		}
		name := addr(3).String()
		c.waitUntil(5*time.Second, "update seen everywhere", func() bool {
			for i := 1; i <= 4; i++ {
				ms := c.nodes[i].Members()
				k := slices.IndexFunc(ms, func(m membership.Member) bool { return m.Name == name })
				if k < 0 || !maps.Equal(ms[k].Properties, want) {
					return false
				}
			}
			return true
		})
		c.waitUntil(time.Second, "Updated event at every node", func() bool {
			for _, i := range []int{1, 2, 4} {
				if !hasEvent(c.seen(i), membership.Updated, name) {
					return false
				}
			}
			return true
		})
		for _, i := range []int{1, 2, 4} {
			evs := c.seen(i)
			k := slices.IndexFunc(evs, func(e membership.Event) bool { return e.Type == membership.Updated && e.Member.Name == name })
			if k < 0 {
				t.Errorf("node %d saw no Updated event", i)
			} else if diff := cmp.Diff(want, evs[k].Member.Properties); diff != "" {
				t.Errorf("node %d Updated properties mismatch (-want +got):\n%s", i, diff)
			}
		}
		if diff := cmp.Diff(want, c.nodes[3].Local().Properties); diff != "" {
			t.Errorf("Local().Properties mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestClusterWithLossAndLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		if err := nw.SetLoss(0.1); err != nil {
			t.Fatal(err)
		}
		nw.SetLatency(5 * time.Millisecond)
		c := newCluster(t)
		defer c.close()
		for i := 1; i <= 8; i++ {
			c.join(i, memConfig(t, nw, i, "10.0.0.1:4000", "10.0.0.2:4000"))
		}
		c.waitUntil(10*time.Second, "8 nodes converge with 10% loss", func() bool { return c.converged(seq(1, 8)...) })
		// Probing goes on for 10 s of virtual time: packets are lost, and
		// the cluster holds.
		c.never(10*time.Second, "a member lost at 10% loss", func() bool { return !c.converged(seq(1, 8)...) })
		if st := nw.Stats(); st.Dropped == 0 {
			t.Errorf("no packet dropped in 10s at 10%% loss: %+v", st)
		}
	})
}

func TestWatchOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		cfg := memConfig(t, nw, 1)
		cfg.EventBuffer = 2
		n1 := c.join(1, cfg)

		// A subscriber that blocks on its first event until released.
		release := make(chan struct{})
		got := make(chan membership.Event, 100)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		watchDone := make(chan error, 1)
		go func() {
			first := true
			watchDone <- n1.Watch(ctx, func(e membership.Event) {
				if first {
					first = false
					<-release
				}
				got <- e
			})
		}()
		for i := 2; i <= 6; i++ {
			c.join(i, memConfig(t, nw, i, "10.0.0.1:4000"))
		}
		c.waitUntil(5*time.Second, "6 nodes converge", func() bool { return c.converged(seq(1, 6)...) })
		close(release)
		var types []membership.EventType
		for len(types) < 2 {
			types = append(types, (<-got).Type)
		}
		if diff := cmp.Diff([]membership.EventType{membership.Joined, membership.Resync}, types); diff != "" {
			t.Errorf("slow subscriber events mismatch (-want +got):\n%s", diff)
		}
		if h := n1.Health(); h.DroppedEvents == 0 {
			t.Errorf("Health().DroppedEvents = 0 after an overflow")
		}
		cancel()
		if err := <-watchDone; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch after cancel = %v, want context.Canceled", err)
		}
	})
}

func TestPortRetryOnNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		c.join(1, memConfig(t, nw, 1))
		cfg := memConfig(t, nw, 1) // the same address: 4000 is taken
		cfg.PortRetries = 2
		n := c.join(2, cfg)
		if got, want := n.Addr(), netip.MustParseAddrPort("10.0.0.1:4001"); got != want {
			t.Errorf("Addr() = %v, want %v", got, want)
		}
		cfg.PortRetries = 0
		if _, err := membership.Join(context.Background(), cfg); err == nil {
			t.Errorf("Join on a taken port without retries: no error")
		}
	})
}

// sentTypes counts the message types of the packets some transports send.
type sentTypes struct {
	mu     sync.Mutex
	types  map[byte]int
	total  int
	want   int           // packets to record before enough is closed
	enough chan struct{} // closed once want packets were recorded
}

func (s *sentTypes) record(b []byte) {
	const hasLabelMsg = 244 // memberlist's label header: 244, length, label
	if len(b) >= 2 && b[0] == hasLabelMsg {
		b = b[min(2+int(b[1]), len(b)):]
	}
	const hasCrcMsg = 12 // memberlist's checksum header: 12, 4 bytes of CRC-32
	if len(b) >= 5 && b[0] == hasCrcMsg {
		b = b[5:]
	}
	if len(b) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.types[b[0]]++
	s.total++
	if s.total == s.want {
		close(s.enough)
	}
}

// typeRecorder is a transport that records the message type of every
// packet it sends.
type typeRecorder struct {
	memberlist.NodeAwareTransport
	sent *sentTypes
}

func (r typeRecorder) WriteTo(b []byte, addr string) (time.Time, error) {
	r.sent.record(b)
	return r.NodeAwareTransport.WriteTo(b, addr)
}

func (r typeRecorder) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	r.sent.record(b)
	return r.NodeAwareTransport.WriteToAddress(b, a)
}

// Packets go out uncompressed: LZW compression allocates a 64 KiB table per
// packet, which at a few hundred members costs most of the CPU.
func TestPacketsNotCompressed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		sent := &sentTypes{types: make(map[byte]int), want: 300, enough: make(chan struct{})}
		c := newCluster(t)
		defer c.close()
		for i := 1; i <= 5; i++ {
			cfg := memConfig(t, nw, i, "10.0.0.1:4000")
			// Repetitive metadata: the gossip of alive messages compresses.
			cfg.Properties = map[string]string{"padding": strings.Repeat("x", 300)}
			cfg.Transport = func(a netip.AddrPort) (memberlist.NodeAwareTransport, error) {
				tr, err := nw.Bind(a)
				if err != nil {
					return nil, err
				}
				return typeRecorder{NodeAwareTransport: tr, sent: sent}, nil
			}
			c.join(i, cfg)
		}
		c.waitUntil(5*time.Second, "5 nodes converge", func() bool { return c.converged(seq(1, 5)...) })
		timeout := time.NewTimer(time.Minute)
		defer timeout.Stop()
		select {
		case <-sent.enough:
		case <-timeout.C:
			t.Fatalf("fewer than %d packets sent within a minute", sent.want)
		}
		sent.mu.Lock()
		defer sent.mu.Unlock()
		const compressMsg = 9 // memberlist's message type of a compressed payload
		if n := sent.types[compressMsg]; n > 0 {
			t.Errorf("%d of %d packets sent were compressed; want none (message types: %v)", n, sent.total, sent.types)
		}
	})
}
