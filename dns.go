package carbonlb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/carbonlb/carbonlb/hosts"
	"github.com/carbonlb/carbonlb/membership"
)

// Records is the part of a [hosts.Server] a [Zone] writes to.
type Records interface {
	Set(name string, addrs ...netip.Addr) error
	Remove(name string) bool
}

var _ Records = (*hosts.Server)(nil)

// ZoneConfig configures a [Zone].
type ZoneConfig struct {
	// Zone is the DNS domain the names are made in, such as
	// "esb.cluster.example.com": the zone of the hosts.Server, or a name
	// below it. Required.
	Zone string

	// Balancers is the name that answers with the live balancer instances
	// (see IsBalancer), such as "lb.esb.cluster.example.com": the name
	// clients, a fronting DNS or CNAMEs of the service hosts point at.
	// It must be inside Zone. Empty means "lb." + Zone.
	Balancers string

	// Name returns the name member m is published under, or "" for none;
	// it must be inside Zone. The members that Name gives one name answer
	// with their addresses. Nil means the default naming:
	//
	//   - a balancer instance (IsBalancer): Balancers;
	//   - a member that announces an HTTP or HTTPS port, of sub-domain S:
	//     S.Zone, such as "worker.esb.cluster.example.com" and
	//     "mgt.esb.cluster.example.com", the names of the pools
	//     "domain/worker" and "domain/mgt";
	//   - such a member without a sub-domain: Zone itself;
	//   - any other member (of a sub-domain, announcing no port, such as a
	//     sidecar whose backend is down): no name.
	//
	// Name is called with the Zone's lock held and must not call the Zone.
	Name func(m membership.Member) string

	// Logger receives an Info record per name set or removed and, from
	// Run, an Error record per name the Records refused. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Zone keeps a DNS zone's records equal to the live members of a cluster,
// so that the host names users and nodes reach the cluster by follow it
// instead of being hand-edited into hosts files on every node: each name
// (see ZoneConfig.Name) answers with the cluster addresses of the live
// members it names, and is removed when its last member leaves or fails.
//
// A [hosts.Server] serves the records over DNS; the members' addresses are
// those the cluster reaches them at (membership.Member.Addr), which are
// those their HTTP ports listen on in the Carbon deployments, where
// localMemberHost is the host's address. Only the names a change touches
// are set, and only when their addresses change. A name the Records
// refused is set again at the next change.
//
// Its methods are safe for concurrent use.
type Zone struct {
	records Records
	logger  *slog.Logger

	mu      sync.Mutex              // protects the fields below
	roster  roster                  // the live members, by name
	names   map[string][]netip.Addr // the addresses last set per name, none empty
	stale   map[string]bool         // names whose last Set or Remove failed
	changed chan struct{}           // closed and replaced when names change
}

// NewZone returns a Zone that sets records. It returns an error for nil
// records, a missing Zone, or a Balancers name outside it.
func NewZone(records Records, cfg ZoneConfig) (*Zone, error) {
	if records == nil {
		return nil, errors.New("carbonlb: NewZone: nil Records")
	}
	zone := canonical(cfg.Zone)
	if zone == "" {
		return nil, errors.New("carbonlb: NewZone: Zone is required")
	}
	lb := canonical(cfg.Balancers)
	if lb == "" {
		lb = "lb." + zone
	}
	if !inZone(lb, zone) {
		return nil, fmt.Errorf("carbonlb: NewZone: Balancers %q is outside the zone %q", cfg.Balancers, cfg.Zone)
	}
	name := cfg.Name
	if name == nil {
		name = func(m membership.Member) string { return defaultName(m, zone, lb) }
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Zone{
		records: records,
		logger:  logger,
		roster:  newRoster(func(m membership.Member) string { return canonical(name(m)) }),
		names:   make(map[string][]netip.Addr),
		stale:   make(map[string]bool),
		changed: make(chan struct{}),
	}, nil
}

// defaultName is ZoneConfig.Name's default.
func defaultName(m membership.Member, zone, balancers string) string {
	switch {
	case IsBalancer(m):
		return balancers
	case !serves(m):
		return ""
	case m.SubDomain != "":
		return strings.ToLower(m.SubDomain) + "." + zone
	}
	return zone
}

// serves reports whether m announces an HTTP or HTTPS port.
func serves(m membership.Member) bool {
	_, h := memberPort(m, "http")
	_, s := memberPort(m, "https")
	return h || s
}

// canonical returns name in lower case without a trailing dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
}

// inZone reports whether the canonical name is zone or below it.
func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// Run applies node's events until ctx is done or the node is closed, and
// returns Watch's error (ctx's error or membership.ErrClosed). The caller
// owns the goroutine Run runs on, typically `go zone.Run(ctx, node)`.
//
// Unlike a Feed's, the node itself is published like any member: a
// balancer instance that runs the Zone answers under the balancers' name
// with the others. On a Resync event, Run replaces the members by
// node.Members(). The names the Records refuse are logged at Error.
func (z *Zone) Run(ctx context.Context, node *membership.Node) error {
	return node.Watch(ctx, func(e membership.Event) {
		var err error
		if e.Type == membership.Resync {
			err = z.Reset(node.Members())
		} else {
			err = z.Apply(e)
		}
		if err != nil {
			z.logger.Error("carbonlb: DNS name not updated", "err", err)
		}
	})
}

// Apply applies one membership event: Joined and Updated add or replace the
// member, Left and Failed remove it; other events are ignored. It sets the
// names the member had and has, and any name the Records refused before.
// The error joins the Records' errors, one per name refused.
func (z *Zone) Apply(e membership.Event) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.sync(z.roster.apply(e))
}

// Reset replaces the members by alive, as after a Resync event, and sets
// every name whose addresses changed. The error is as Apply's.
func (z *Zone) Reset(alive []membership.Member) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.sync(z.roster.reset(alive))
}

// sync sets the touched names and the stale ones from the members. z.mu is
// held.
func (z *Zone) sync(touched []string) error {
	names := dedup(append(touched, slices.Collect(maps.Keys(z.stale))...))
	var errs []error
	changed := false
	for _, name := range names {
		var addrs []netip.Addr
		for _, m := range z.roster.in(name) {
			addrs = append(addrs, m.Addr.Addr().Unmap().WithZone(""))
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		addrs = slices.Compact(addrs)
		if !z.stale[name] && slices.Equal(addrs, z.names[name]) {
			continue
		}
		if len(addrs) == 0 {
			z.records.Remove(name)
			delete(z.names, name)
			z.logger.Info("carbonlb: DNS name removed", "name", name)
		} else {
			if err := z.records.Set(name, addrs...); err != nil {
				z.stale[name] = true
				errs = append(errs, fmt.Errorf("carbonlb: DNS name %q: %w", name, err))
				continue
			}
			z.names[name] = addrs
			z.logger.Info("carbonlb: DNS name set", "name", name, "addrs", addrs)
		}
		delete(z.stale, name)
		changed = true
	}
	if changed {
		close(z.changed)
		z.changed = make(chan struct{})
	}
	return errors.Join(errs...)
}

// Names returns the names the Zone has set, in lower case without a
// trailing dot, with their addresses in ascending order. The result is a
// copy.
func (z *Zone) Names() map[string][]netip.Addr {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.namesLocked()
}

func (z *Zone) namesLocked() map[string][]netip.Addr {
	out := make(map[string][]netip.Addr, len(z.names))
	for k, v := range z.names {
		out[k] = slices.Clone(v)
	}
	return out
}

// Wait returns nil once cond holds for the names the Zone has set (checked
// now and after each change), or ctx's error. cond gets a copy.
func (z *Zone) Wait(ctx context.Context, cond func(names map[string][]netip.Addr) bool) error {
	for {
		z.mu.Lock()
		ch, names := z.changed, z.namesLocked()
		z.mu.Unlock()
		if cond(names) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
