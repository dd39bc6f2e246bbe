package membership_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/membership/membertest"
)

// partitionTest splits 10 nodes whose only well-known member is node 1 into
// {1..5} and {6..10}, waits until each side lists only itself, keeps the
// partition for 20 s (past GossipToTheDeadTime, so memberlist stops talking
// to the other side), heals, and returns the cluster.
func partitionTest(t *testing.T, rejoin time.Duration) *cluster {
	nw := &membertest.Network{}
	c := newCluster(t)
	for i := 1; i <= 10; i++ {
		cfg := memConfig(t, nw, i, "10.0.0.1:4000")
		cfg.RejoinInterval = rejoin
		c.join(i, cfg)
	}
	c.waitUntil(5*time.Second, "10 nodes converge", func() bool { return c.converged(seq(1, 10)...) })
	var a, b []netip.AddrPort
	for i := 1; i <= 10; i++ {
		if i <= 5 {
			a = append(a, addr(i))
		} else {
			b = append(b, addr(i))
		}
	}
	nw.Partition(a, b)
	c.waitUntil(30*time.Second, "two sides", func() bool { return c.converged(seq(1, 5)...) && c.converged(seq(6, 10)...) })
	hold := time.NewTimer(20 * time.Second)
	<-hold.C
	nw.Heal()
	return c
}

func TestPartitionHeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := partitionTest(t, 0)
		defer c.close()
		// Side {6..10} retries node 1 with backoff capped at
		// RejoinMaxInterval (1 s here): one cluster within 5 s.
		d := c.waitUntil(5*time.Second, "one cluster after healing", func() bool { return c.converged(seq(1, 10)...) })
		t.Logf("one cluster %v after healing (virtual time)", d)
	})
}

// TestPartitionWithoutRejoinStaysSplit is the control: memberlist alone does
// not rejoin the sides once each has declared the other dead.
func TestPartitionWithoutRejoinStaysSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := partitionTest(t, -1)
		defer c.close()
		c.never(30*time.Second, "sides rejoined without the rejoin loop", func() bool {
			return len(c.nodes[1].Members()) > 5 || len(c.nodes[6].Members()) > 5
		})
	})
}

func TestOnlyWKARestarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		for i := 1; i <= 6; i++ {
			c.join(i, memConfig(t, nw, i, "10.0.0.1:4000"))
		}
		c.waitUntil(5*time.Second, "6 nodes converge", func() bool { return c.converged(seq(1, 6)...) })
		c.stop(1)
		c.waitUntil(10*time.Second, "WKA member gone", func() bool { return c.converged(seq(2, 6)...) })
		// Restarted with the same address and name: the others' rejoin
		// loops, retrying it since it failed, bring it back.
		c.join(1, memConfig(t, nw, 1, "10.0.0.1:4000"))
		d := c.waitUntil(10*time.Second, "everyone back", func() bool { return c.converged(seq(1, 6)...) })
		t.Logf("everyone back %v after the restart (virtual time)", d)
	})
}

func TestRestartOnNewAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		for i := 1; i <= 4; i++ {
			cfg := memConfig(t, nw, i, "10.0.0.1:4000")
			cfg.Name = fmt.Sprintf("node%d", i)
			c.join(i, cfg)
		}
		c.waitUntil(5*time.Second, "4 nodes converge", func() bool { return c.converged(seq(1, 4)...) })
		c.stop(3)
		cfg := memConfig(t, nw, 13, "10.0.0.1:4000")
		cfg.Name = "node3"
		c.join(3, cfg)
		// The others take the new address once they have declared the old
		// one dead and then hear node3 again: by its gossip at once in most
		// runs, by the periodic push-pull (15 s with the local timing) when
		// the order of probes puts the old address's death after node3's
		// join was gossiped. Virtual time: the bound costs nothing.
		c.waitUntil(40*time.Second, "node3 back on its new address", func() bool {
			for _, i := range []int{1, 2, 4} {
				ms := c.nodes[i].Members()
				k := slices.IndexFunc(ms, func(m membership.Member) bool { return m.Name == "node3" })
				if len(ms) != 4 || k < 0 || ms[k].Addr != addr(13) || ms[k].State != membership.StateAlive {
					return false
				}
			}
			return true
		})
	})
}

// TestSetWKA: two clusters that know nothing of each other become one when
// a node of one is given a well-known member of the other; a bad list is
// refused and the running one kept; with the rejoin loop off, the new list
// is tried once.
func TestSetWKA(t *testing.T) {
	for _, loop := range []bool{true, false} {
		t.Run(fmt.Sprintf("rejoin=%v", loop), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				nw := &membertest.Network{}
				c := newCluster(t)
				defer c.close()
				for i := 1; i <= 6; i++ {
					wka := "10.0.0.1:4000"
					if i > 3 {
						wka = "10.0.0.4:4000"
					}
					cfg := memConfig(t, nw, i, wka)
					if !loop {
						cfg.RejoinInterval = -1
					}
					c.join(i, cfg)
				}
				c.waitUntil(5*time.Second, "two clusters of 3", func() bool {
					return c.converged(1, 2, 3) && c.converged(4, 5, 6)
				})
				err := c.nodes[2].SetWKA([]string{"10.0.0.1:4000", "10.0.0.[5-2]:4000"})
				var ce *membership.ConfigError
				var we *membership.WKAError
				if !errors.As(err, &ce) || ce.Field != "WKA[1]" || !errors.As(err, &we) {
					t.Fatalf("SetWKA with a reversed range = %v, want a *ConfigError for WKA[1] wrapping a *WKAError", err)
				}
				if h := c.nodes[2].Health(); h.WKA != 1 {
					t.Errorf("after a refused SetWKA node 2 has %d WKA, want its 1", h.WKA)
				}
				if err := c.nodes[2].SetWKA([]string{"10.0.0.1:4000", "10.0.0.5:4000"}); err != nil {
					t.Fatalf("SetWKA: %v", err)
				}
				// Gossip spreads the merge at once, but the network drops what
				// a full receive queue cannot take, as UDP would: a member
				// that missed an alive message learns it from a push-pull
				// with a random member that knows it (one every 5 s in
				// LocalTiming), which may take a few. Virtual time: the
				// longer wait costs nothing when it converges sooner.
				c.waitUntil(40*time.Second, "one cluster of 6", func() bool { return c.converged(seq(1, 6)...) })
				if h := c.nodes[2].Health(); h.WKA != 2 || h.WKAAlive != 2 {
					t.Errorf("node 2 Health() = %+v, want 2 WKA, both alive", h)
				}
				n := c.nodes[6]
				c.stop(6)
				if err := n.SetWKA(nil); !errors.Is(err, membership.ErrClosed) {
					t.Errorf("SetWKA after Close = %v, want ErrClosed", err)
				}
			})
		})
	}
}
