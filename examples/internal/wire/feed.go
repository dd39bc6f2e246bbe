package wire

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/membership"
)

// Backends is the part of *balancer.Balancer a Feed writes to.
type Backends interface {
	SetBackends(pool string, backends []balancer.Backend) error
}

var _ Backends = (*balancer.Balancer)(nil)

// Feed keeps a balancer's pools equal to the alive members of a cluster, as
// seen by one membership node. Its methods are safe for concurrent use.
type Feed struct {
	lb     Backends
	scheme string
	logger *slog.Logger

	mu      sync.Mutex
	members map[string]membership.Member  // alive members by name; guarded by mu
	pools   map[string][]balancer.Backend // last backends set per pool; guarded by mu
	changed chan struct{}                 // closed and replaced when pools change; guarded by mu
}

// NewFeed returns a Feed that sets lb's pools. scheme is "http" (the
// members' PropHTTPPort; "" means "http") or "https" (PropHTTPSPort). Nil
// logger means slog.Default().
func NewFeed(lb Backends, scheme string, logger *slog.Logger) *Feed {
	if scheme == "" {
		scheme = "http"
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Feed{lb: lb, scheme: scheme, logger: logger,
		members: make(map[string]membership.Member), pools: make(map[string][]balancer.Backend),
		changed: make(chan struct{})}
}

// Run applies node's events until ctx is done or the node is closed, and
// returns Watch's error. Run it on its own goroutine. The node itself is
// never a backend, even when it advertises ports (a balancer configured from
// a Carbon axis2.xml may): a balancer must not send requests to itself.
func (f *Feed) Run(ctx context.Context, node *membership.Node) error {
	self := node.Name()
	others := func(ms []membership.Member) []membership.Member {
		return slices.DeleteFunc(ms, func(m membership.Member) bool { return m.Name == self })
	}
	return node.Watch(ctx, func(e membership.Event) {
		switch {
		case e.Type == membership.Resync:
			f.Reset(others(node.Members()))
		case e.Member.Name != self:
			f.Apply(e)
		}
	})
}

// Apply applies one membership event.
func (f *Feed) Apply(e membership.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := e.Member
	touched := map[string]bool{m.Pool(): true}
	if old, ok := f.members[m.Name]; ok {
		touched[old.Pool()] = true
	}
	switch e.Type {
	case membership.Joined, membership.Updated:
		f.members[m.Name] = m
	case membership.Left, membership.Failed:
		delete(f.members, m.Name)
	default:
		return
	}
	for pool := range touched {
		f.sync(pool)
	}
}

// Reset replaces the members by alive, as after a Resync event.
func (f *Feed) Reset(alive []membership.Member) {
	f.mu.Lock()
	defer f.mu.Unlock()
	touched := make(map[string]bool)
	for _, m := range f.members {
		touched[m.Pool()] = true
	}
	clear(f.members)
	for _, m := range alive {
		f.members[m.Name] = m
		touched[m.Pool()] = true
	}
	for pool := range touched {
		f.sync(pool)
	}
}

// sync sets the backends of pool from the members. f.mu is held.
func (f *Feed) sync(pool string) {
	var bes []balancer.Backend
	for _, m := range f.members {
		if m.Pool() != pool {
			continue
		}
		if b, ok := MemberBackend(m, f.scheme); ok {
			bes = append(bes, b)
		}
	}
	slices.SortFunc(bes, func(a, b balancer.Backend) int { return cmp.Compare(a.ID, b.ID) })
	if old, had := f.pools[pool]; had == (len(bes) > 0) && slices.EqualFunc(bes, old, sameBackend) {
		return // nothing changed
	}
	if err := f.lb.SetBackends(pool, bes); err != nil {
		f.logger.Warn("pool not updated", "pool", pool, "err", err)
		return
	}
	if len(bes) == 0 {
		delete(f.pools, pool)
	} else {
		f.pools[pool] = bes
	}
	f.logger.Info("pool updated", "pool", pool, "backends", len(bes))
	close(f.changed)
	f.changed = make(chan struct{})
}

func sameBackend(a, b balancer.Backend) bool {
	return a.ID == b.ID && a.URL == b.URL && maps.Equal(a.Metadata, b.Metadata)
}

// Pools returns the backends the Feed has set, by pool. The result is a copy.
func (f *Feed) Pools() map[string][]balancer.Backend {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]balancer.Backend, len(f.pools))
	for k, v := range f.pools {
		out[k] = slices.Clone(v)
	}
	return out
}

// Wait returns nil once cond holds for the pools (checked now and after each
// change), or ctx's error.
func (f *Feed) Wait(ctx context.Context, cond func(pools map[string][]balancer.Backend) bool) error {
	for {
		f.mu.Lock()
		ch := f.changed
		f.mu.Unlock()
		if cond(f.Pools()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// MemberBackend turns a member into a backend of its pool: ID the member's
// name, URL scheme://address:port with the member's cluster address and its
// PropHTTPPort ("http") or PropHTTPSPort ("https"), and the member's
// properties as metadata. ok is false for a member without that port, such
// as a balancer that is itself a member.
func MemberBackend(m membership.Member, scheme string) (b balancer.Backend, ok bool) {
	key := membership.PropHTTPPort
	if scheme == "https" {
		key = membership.PropHTTPSPort
	}
	port, err := strconv.ParseUint(m.Properties[key], 10, 16)
	if err != nil || port == 0 {
		return b, false
	}
	meta := maps.Clone(m.Properties)
	if meta == nil {
		meta = make(map[string]string)
	}
	if m.SubDomain != "" {
		meta["subDomain"] = m.SubDomain
	}
	return balancer.Backend{
		ID:       m.Name,
		URL:      scheme + "://" + netip.AddrPortFrom(m.Addr.Addr(), uint16(port)).String(),
		Metadata: meta,
	}, true
}

// LoopbackTiming is membership.LocalTiming made to tolerate a busy machine
// (end-to-end tests under the race detector, sharing two cores with other
// test binaries) without taking a live member for a failed one: probes
// every second with an 800ms timeout, and a longer suspicion. A crashed
// member is still gone from every list in a few seconds, so a
// demonstration on one host takes seconds.
func LoopbackTiming() membership.Timing {
	t := membership.LocalTiming()
	t.ProbeInterval = time.Second
	t.ProbeTimeout = 800 * time.Millisecond
	t.SuspicionMult = 4
	t.TCPTimeout = 2 * time.Second
	return t
}
