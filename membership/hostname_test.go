package membership_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/membership/membertest"
)

// names is a Config.Resolve of a map the test edits, as a hosts file is.
type names struct {
	mu sync.Mutex // protects m and calls
	m  map[string]netip.Addr
	// calls counts lookups per name.
	calls map[string]int
}

var errNoSuchHost = errors.New("no such host")

func (ns *names) set(name, addr string) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.m == nil {
		ns.m = map[string]netip.Addr{}
	}
	ns.m[name] = netip.MustParseAddr(addr)
}

func (ns *names) lookup(_ context.Context, name string) ([]netip.Addr, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.calls == nil {
		ns.calls = map[string]int{}
	}
	ns.calls[name]++
	a, ok := ns.m[name]
	if !ok {
		return nil, errNoSuchHost
	}
	return []netip.Addr{a}, nil
}

func (ns *names) count(name string) int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.calls[name]
}

// TestJoinMemberHostName joins nodes whose localMemberHost and
// localMemberBindAddress are host names, as seed 004's axis2.xml gives
// them: Join looks them up with Config.Resolve, an unresolvable name is a
// *ConfigError naming the field and wrapping the resolver's error, a name
// that resolves later works at the next Join, and a changed address is
// taken by the next Join.
func TestJoinMemberHostName(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		ns := &names{}
		cfg := func(i int, host string, wka ...string) membership.Config {
			c := memConfig(t, nw, i, wka...)
			c.BindAddr = host
			c.AdvertiseAddr = host
			c.Resolve = ns.lookup
			return c
		}

		// Not resolvable yet: a clear error, nothing started.
		_, err := membership.Join(context.Background(), cfg(1, "app1.esb.example.com"))
		var ce *membership.ConfigError
		if !errors.As(err, &ce) || ce.Field != "BindAddr" || !errors.Is(err, errNoSuchHost) {
			t.Fatalf("Join with an unresolvable name: %v; want a *ConfigError for BindAddr wrapping the resolver's error", err)
		}
		if want := `membership: config BindAddr: host name "app1.esb.example.com" does not resolve: no such host`; err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}

		// The name starts resolving: the next Join takes it.
		ns.set("app1.esb.example.com", "10.0.0.1")
		ns.set("app2.esb.example.com", "10.0.0.2")
		c := newCluster(t)
		defer c.close()
		n1 := c.join(1, cfg(1, "app1.esb.example.com"))
		if got, want := n1.Addr(), addr(1); got != want {
			t.Errorf("node 1 Addr() = %v, want %v", got, want)
		}
		n2 := c.join(2, cfg(2, "app2.esb.example.com", "app1.esb.example.com:4000"))
		if got, want := n2.Addr(), addr(2); got != want {
			t.Errorf("node 2 Addr() = %v, want %v", got, want)
		}
		c.waitUntil(5*time.Second, "2 nodes converge", func() bool { return c.converged(1, 2) })
		if ns.count("app2.esb.example.com") < 2 {
			t.Errorf("app2 looked up %d times, want once for BindAddr and once for AdvertiseAddr", ns.count("app2.esb.example.com"))
		}

		// Node 2 moves to another address: its next Join follows the name.
		if err := n2.Leave(context.Background()); err != nil {
			t.Fatal(err)
		}
		delete(c.nodes, 2)
		ns.set("app2.esb.example.com", "10.0.0.3")
		n3 := c.join(3, cfg(3, "app2.esb.example.com", "app1.esb.example.com:4000"))
		if got, want := n3.Addr(), addr(3); got != want {
			t.Errorf("after the move, Addr() = %v, want %v", got, want)
		}
		c.waitUntil(5*time.Second, "the moved node joins", func() bool { return c.converged(1, 3) })
	})
}

// TestJoinAddressNotAName keeps a mistyped address an address: an
// all-numeric "10.0.0" is not looked up as a host name.
func TestJoinAddressNotAName(t *testing.T) {
	nw := &membertest.Network{}
	ns := &names{}
	c := memConfig(t, nw, 1)
	c.BindAddr = "10.0.0"
	c.Resolve = ns.lookup
	_, err := membership.Join(context.Background(), c)
	var ce *membership.ConfigError
	if !errors.As(err, &ce) || ce.Field != "BindAddr" || ns.count("10.0.0") != 0 {
		t.Errorf("Join(BindAddr 10.0.0) = %v after %d lookups; want a *ConfigError for BindAddr and no lookup", err, ns.count("10.0.0"))
	}
}
