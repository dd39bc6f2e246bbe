package carbonlb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/membership"
)

// Backends is the part of a [balancer.Balancer] a [Feed] writes to.
type Backends interface {
	SetBackends(pool string, backends []balancer.Backend) error
}

var _ Backends = (*balancer.Balancer)(nil)

// FeedConfig configures a [Feed]. The zero value is ready to use.
type FeedConfig struct {
	// Scheme is the scheme the balancer speaks to the members in, which
	// picks the port property a member's backend URL is made from (see
	// MemberBackend): "http" uses membership.PropHTTPPort, "https"
	// membership.PropHTTPSPort. Empty means each member's HTTP port, or
	// its HTTPS port when it announces no HTTP port. A member without the
	// port is not a backend.
	Scheme string

	// Logger receives an Info record per pool set and, from Run, an Error
	// record per pool that the balancer refused. Nil means slog.Default().
	Logger *slog.Logger
}

// Feed keeps a balancer's pools equal to the live members of a cluster: each
// member with an HTTP or HTTPS port is a backend (see [MemberBackend]) of
// the pool [membership.Member.Pool] names, "domain/subDomain".
//
// Only the pools a change touches are set, and only when their backends
// differ from those set last, so the balancer keeps each backend's health
// state, sessions and statistics; a pool whose last member left is set
// empty. A pool the balancer refused (SetBackends returned an error) is set
// again at the next change.
//
// Its methods are safe for concurrent use.
type Feed struct {
	lb     Backends
	scheme string
	logger *slog.Logger

	mu      sync.Mutex                    // protects the fields below
	roster  roster                        // the live members, by pool
	pools   map[string][]balancer.Backend // the backends last set per pool, none empty
	stale   map[string]bool               // pools whose last SetBackends failed
	changed chan struct{}                 // closed and replaced when pools change
}

// NewFeed returns a Feed that sets lb's pools. It returns an error for a
// nil lb or a Scheme other than "", "http" and "https".
func NewFeed(lb Backends, cfg FeedConfig) (*Feed, error) {
	if lb == nil {
		return nil, errors.New("carbonlb: NewFeed: nil Backends")
	}
	switch cfg.Scheme {
	case "", "http", "https":
	default:
		return nil, fmt.Errorf("carbonlb: NewFeed: scheme %q: want http, https or empty", cfg.Scheme)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Feed{
		lb:      lb,
		scheme:  cfg.Scheme,
		logger:  logger,
		roster:  newRoster(membership.Member.Pool),
		pools:   make(map[string][]balancer.Backend),
		stale:   make(map[string]bool),
		changed: make(chan struct{}),
	}, nil
}

// Run applies node's events until ctx is done or the node is closed, and
// returns Watch's error (ctx's error or membership.ErrClosed). The caller
// owns the goroutine Run runs on, typically `go feed.Run(ctx, node)`.
//
// On a Resync event, Run replaces the members by node.Members(). The node
// itself is never a backend, even when it announces ports (a balancer
// configured from a Carbon axis2.xml may): a balancer must not send
// requests to itself. The pools the balancer refuses are logged at Error.
func (f *Feed) Run(ctx context.Context, node *membership.Node) error {
	self := node.Name()
	return node.Watch(ctx, func(e membership.Event) {
		var err error
		switch {
		case e.Type == membership.Resync:
			err = f.Reset(slices.DeleteFunc(node.Members(), func(m membership.Member) bool { return m.Name == self }))
		case e.Member.Name != self:
			err = f.Apply(e)
		}
		if err != nil {
			f.logger.Error("carbonlb: pool not updated", "err", err)
		}
	})
}

// Apply applies one membership event: Joined and Updated add or replace the
// member, Left and Failed remove it; other events are ignored. It sets the
// pools the member left and joined, and any pool the balancer refused
// before. The error joins the balancer's errors, one per pool refused.
func (f *Feed) Apply(e membership.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sync(f.roster.apply(e))
}

// Reset replaces the members by alive, as after a Resync event, and sets
// every pool whose backends changed. The error is as Apply's.
func (f *Feed) Reset(alive []membership.Member) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sync(f.roster.reset(alive))
}

// sync sets the backends of the touched pools and the stale ones from the
// members. f.mu is held.
func (f *Feed) sync(touched []string) error {
	pools := dedup(append(touched, slices.Collect(maps.Keys(f.stale))...))
	var errs []error
	changed := false
	for _, pool := range pools {
		var bes []balancer.Backend
		for _, m := range f.roster.in(pool) {
			if b, ok := MemberBackend(m, f.scheme); ok {
				bes = append(bes, b)
			}
		}
		slices.SortFunc(bes, func(a, b balancer.Backend) int { return cmp.Compare(a.ID, b.ID) })
		if dup := dropSharedRoutes(bes); len(dup) > 0 {
			f.logger.Warn("carbonlb: members of one pool give the same jvmRoute: their sessions are routed by the learned table only",
				"pool", pool, "routes", dup)
		}
		old, had := f.pools[pool]
		if !f.stale[pool] && had == (len(bes) > 0) && slices.EqualFunc(bes, old, sameBackend) {
			continue // nothing changed
		}
		if err := f.lb.SetBackends(pool, bes); err != nil {
			f.stale[pool] = true
			errs = append(errs, fmt.Errorf("carbonlb: pool %q: %w", pool, err))
			continue
		}
		delete(f.stale, pool)
		if len(bes) == 0 {
			delete(f.pools, pool)
		} else {
			f.pools[pool] = bes
		}
		f.logger.Info("carbonlb: pool set", "pool", pool, "backends", len(bes))
		changed = true
	}
	if changed {
		close(f.changed)
		f.changed = make(chan struct{})
	}
	return errors.Join(errs...)
}

func sameBackend(a, b balancer.Backend) bool {
	return a.ID == b.ID && a.URL == b.URL && a.Route == b.Route && maps.Equal(a.Metadata, b.Metadata)
}

// dropSharedRoutes clears the routes that more than one backend gives (two
// nodes misconfigured with one jvmRoute), which the balancer would refuse
// for the whole pool, and returns them.
func dropSharedRoutes(bes []balancer.Backend) []string {
	count := make(map[string]int)
	for _, b := range bes {
		if b.Route != "" {
			count[b.Route]++
		}
	}
	var dup []string
	for i := range bes {
		if r := bes[i].Route; r != "" && count[r] > 1 {
			if !slices.Contains(dup, r) {
				dup = append(dup, r)
			}
			bes[i].Route = ""
		}
	}
	return dup
}

// Pools returns the backends the Feed has set, by pool; an empty pool is
// absent. The result is a copy.
func (f *Feed) Pools() map[string][]balancer.Backend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.poolsLocked()
}

func (f *Feed) poolsLocked() map[string][]balancer.Backend {
	out := make(map[string][]balancer.Backend, len(f.pools))
	for k, v := range f.pools {
		out[k] = slices.Clone(v)
	}
	return out
}

// Wait returns nil once cond holds for the pools the Feed has set (checked
// now and after each change), or ctx's error. cond gets a copy, and is not
// called concurrently with itself by one Wait.
func (f *Feed) Wait(ctx context.Context, cond func(pools map[string][]balancer.Backend) bool) error {
	for {
		f.mu.Lock()
		ch, pools := f.changed, f.poolsLocked()
		f.mu.Unlock()
		if cond(pools) {
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
// name, URL scheme://address:port with the member's cluster address
// (bracketed when it is IPv6, its zone escaped as RFC 6874 says) and the port of scheme, and the member's
// properties, plus "subDomain", as metadata. scheme is "http"
// (membership.PropHTTPPort), "https" (membership.PropHTTPSPort), or empty
// for the HTTP port, else the HTTPS one. ok is false for a member without
// that port (or with one that is not a port number), such as a balancer
// that is itself a member, for a member marked as a balancer (PropRole is
// RoleBalancer) whatever ports it announces, and for any other scheme.
func MemberBackend(m membership.Member, scheme string) (b balancer.Backend, ok bool) {
	if m.Properties[PropRole] == RoleBalancer || scheme != "" && scheme != "http" && scheme != "https" {
		return b, false
	}
	port, ok := memberPort(m, scheme)
	if !ok {
		if scheme != "" {
			return b, false
		}
		if port, ok = memberPort(m, "https"); !ok {
			return b, false
		}
		scheme = "https"
	}
	if scheme == "" {
		scheme = "http"
	}
	meta := maps.Clone(m.Properties)
	if meta == nil {
		meta = make(map[string]string)
	}
	if m.SubDomain != "" {
		meta["subDomain"] = m.SubDomain
	}
	host := netip.AddrPortFrom(m.Addr.Addr(), port).String()
	if m.Addr.Addr().Zone() != "" {
		host = strings.Replace(host, "%", "%25", 1) // RFC 6874
	}
	b = balancer.Backend{ID: m.Name, URL: scheme + "://" + host, Metadata: meta}
	if r := m.Properties[PropRoute]; r != "" && !strings.ContainsAny(r, " \t\r\n;,=\"\\/?#") {
		b.Route = r // a route a session id cannot carry is left out
	}
	return b, true
}

// memberPort returns m's port for scheme: its HTTPS port for "https", its
// HTTP port otherwise.
func memberPort(m membership.Member, scheme string) (uint16, bool) {
	key := membership.PropHTTPPort
	if scheme == "https" {
		key = membership.PropHTTPSPort
	}
	p, err := strconv.ParseUint(m.Properties[key], 10, 16)
	if err != nil || p == 0 {
		return 0, false
	}
	return uint16(p), true
}

// PropRoute is the member property that carries a node's route: Tomcat's
// jvmRoute (catalina-server.xml's Engine, carbonconf.Identity.JVMRoute),
// which suffixes every session id the node issues. MemberBackend makes it
// the backend's balancer.Backend.Route, so the balancer routes a session by
// it with no table, across balancer restarts and instances.
const PropRoute = "jvmRoute"

// PropRole is the member property that names a member's role in the
// cluster. Its one value with a meaning here is RoleBalancer.
const PropRole = "role"

// RoleBalancer, as a member's PropRole, marks a balancer instance that is a
// cluster member: it is never a backend (see MemberBackend), and a [Zone]
// publishes it under the balancers' name.
const RoleBalancer = "balancer"

// IsBalancer reports whether m is a balancer instance rather than an
// application node: a member whose PropRole is RoleBalancer, or one that
// announces neither an HTTP nor an HTTPS port and has no sub-domain, as the
// Elastic Load Balancer of the Carbon guides and the balancers of this
// module's examples join their cluster. (A member of a sub-domain without a
// port is an application node that serves nothing for now, such as a
// sidecar whose backend is down.)
func IsBalancer(m membership.Member) bool {
	if m.Properties[PropRole] == RoleBalancer {
		return true
	}
	_, h := memberPort(m, "http")
	_, s := memberPort(m, "https")
	return !h && !s && m.SubDomain == ""
}
