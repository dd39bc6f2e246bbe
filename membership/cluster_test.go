package membership_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/membership/membertest"
)

var logLevel = flag.String("membership.log", "", "log level for the nodes under test (debug, info, warn, error); empty means no log")

const testDomain = "wso2.esb.domain"

func testLogger(t testing.TB) *slog.Logger {
	if *logLevel == "" {
		return slog.New(slog.DiscardHandler)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(*logLevel)); err != nil {
		t.Fatalf("-membership.log: %v", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// addr returns the membertest address of node i: 10.0.0.i:4000.
func addr(i int) netip.AddrPort {
	return netip.MustParseAddrPort(fmt.Sprintf("10.0.0.%d:4000", i))
}

// memConfig is the configuration of node i on network nw.
func memConfig(t testing.TB, nw *membertest.Network, i int, wka ...string) membership.Config {
	cfg := membership.DefaultLocalConfig(testDomain)
	cfg.BindAddr = addr(i).Addr().String()
	cfg.Port = int(addr(i).Port())
	cfg.Transport = nw.Bind
	cfg.WKA = wka
	cfg.SubDomain = membership.SubDomainWorker
	cfg.Logger = testLogger(t).With("node", i)
	return cfg
}

// cluster is a set of nodes under test with a shared signal of their events.
type cluster struct {
	t      testing.TB
	nodes  map[int]*membership.Node
	mu     sync.Mutex
	events map[int][]membership.Event // per node, in order
	signal chan struct{}              // buffered 1: some node saw an event
	wg     sync.WaitGroup
}

// newCluster returns an empty cluster.
func newCluster(t testing.TB) *cluster {
	return &cluster{t: t, nodes: make(map[int]*membership.Node), events: make(map[int][]membership.Event), signal: make(chan struct{}, 1)}
}

// join starts node i with cfg and watches its events.
func (c *cluster) join(i int, cfg membership.Config) *membership.Node {
	c.t.Helper()
	n, err := membership.Join(context.Background(), cfg)
	if err != nil {
		c.t.Fatalf("Join node %d: %v", i, err)
	}
	c.add(i, n)
	return n
}

func (c *cluster) add(i int, n *membership.Node) {
	c.nodes[i] = n
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		n.Watch(context.Background(), func(e membership.Event) {
			c.mu.Lock()
			c.events[i] = append(c.events[i], e)
			c.mu.Unlock()
			select {
			case c.signal <- struct{}{}:
			default:
			}
		})
	}()
}

// stop closes node i without leaving and forgets it.
func (c *cluster) stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].Close(); err != nil {
		c.t.Errorf("Close node %d: %v", i, err)
	}
	delete(c.nodes, i)
}

// close closes every node, all at once, and waits for the watchers. Close
// returns once every goroutine of its node has ended, so in a synctest
// bubble the test may end right after.
func (c *cluster) close() {
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() {
			if err := n.Close(); err != nil {
				c.t.Errorf("Close node %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	c.wg.Wait()
}

// seen returns the events node i has seen.
func (c *cluster) seen(i int) []membership.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]membership.Event(nil), c.events[i]...)
}

// waitUntil waits for cond to hold, re-checking it at every event any node
// sees, and fails the test when it does not hold within d.
func (c *cluster) waitUntil(d time.Duration, what string, cond func() bool) time.Duration {
	c.t.Helper()
	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-c.signal:
		case <-deadline.C:
			c.t.Fatalf("%s: not within %v", what, d)
		}
	}
	return time.Since(start)
}

// converged reports whether every node lists exactly the nodes of want.
func (c *cluster) converged(want ...int) bool {
	names := make(map[string]bool)
	for _, i := range want {
		n := c.nodes[i]
		if n == nil {
			return false
		}
		names[n.Name()] = true
	}
	for _, i := range want {
		ms := c.nodes[i].Members()
		if len(ms) != len(want) {
			return false
		}
		for _, m := range ms {
			if !names[m.Name] || m.State != membership.StateAlive {
				return false
			}
		}
	}
	return true
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}
