package membership

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// parseWKAList parses Config.WKA entries.
func parseWKAList(exprs []string) ([]wkaTarget, error) {
	var wka []wkaTarget
	for i, expr := range exprs {
		ts, err := parseWKA(expr)
		if err != nil {
			return nil, &ConfigError{Field: fmt.Sprintf("WKA[%d]", i), Err: err}
		}
		wka = append(wka, ts...)
	}
	return wka, nil
}

// wkaList returns the current well-known members.
func (n *Node) wkaList() []wkaTarget { return *n.wka.Load() }

// SetWKA replaces the well-known members, in the syntax of Config.WKA: the
// rejoin loop tries the new ones that are not alive members at once, and
// stops trying those no longer listed (with the loop off, the new ones are
// tried once). Members already joined stay members. Host names are resolved
// in the background, so SetWKA does not wait for the network.
// On a bad entry it returns a *ConfigError (wrapping a *WKAError) and keeps
// the running list. It returns ErrClosed after Close.
func (n *Node) SetWKA(wka []string) error {
	ts, err := parseWKAList(wka)
	if err != nil {
		return err
	}
	if n.closed.Load() {
		return ErrClosed
	}
	n.wka.Store(&ts)
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

// others drops the node's own addresses from addrs: its advertised and bound
// address and, when it listens on every interface, any local address with
// its port.
func (n *Node) others(addrs []netip.AddrPort) []netip.AddrPort {
	return slices.DeleteFunc(slices.Clone(addrs), func(a netip.AddrPort) bool {
		if a == n.addr || a == n.bind {
			return true
		}
		return n.bind.Addr().IsUnspecified() && a.Port() == n.bind.Port() && n.local[a.Addr()]
	})
}

// localAddrs returns the addresses of the host's interfaces.
func localAddrs() map[netip.Addr]bool {
	out := make(map[netip.Addr]bool)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out[p.Addr().Unmap()] = true
		}
	}
	return out
}

// tryJoin push-pulls with each address, JoinParallel at a time, and returns
// those that answered.
func (n *Node) tryJoin(ctx context.Context, addrs []netip.AddrPort) []netip.AddrPort {
	if len(addrs) == 0 {
		return nil
	}
	ok := make([]bool, len(addrs))
	var g errgroup.Group
	g.SetLimit(n.cfg.JoinParallel)
	for i, a := range addrs {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if _, err := n.ml.Join([]string{a.String()}); err != nil {
				n.log.Debug("membership: well-known member did not answer", "wka", a, "err", err)
				return nil
			}
			ok[i] = true
			return nil
		})
	}
	g.Wait()
	var joined []netip.AddrPort
	for i, a := range addrs {
		if ok[i] {
			joined = append(joined, a)
		}
	}
	return joined
}

// present reports whether a member other than the node itself is at a.
func (n *Node) present(a netip.AddrPort) bool { return n.hub.present(a, n.name) }

// jitter returns d ± 20%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d*4/5 + rand.N(d*2/5+1)
}

// run is the rejoin loop: it keeps trying the well-known addresses that are
// not alive members, each with its own capped exponential backoff, and after
// each successful join exchanges full state with a well-known member at the
// SyncAfterJoin delays.
func (n *Node) run(ctx context.Context, joined bool) {
	defer close(n.done)
	type retry struct {
		next  time.Time
		delay time.Duration
	}
	var (
		retries     = make(map[netip.AddrPort]*retry)
		syncs       []time.Time
		addrs       []netip.AddrPort
		resolvedAt  time.Time
		rejoin      = n.cfg.RejoinInterval > 0
		resolvedFor *[]wkaTarget // the list addrs was resolved from
		idle        = n.cfg.RejoinMaxInterval
		timer       = time.NewTimer(0)
		scheduleSyn = func(now time.Time) {
			syncs = syncs[:0]
			for _, d := range n.cfg.Timing.SyncAfterJoin {
				syncs = append(syncs, now.Add(jitter(d)))
			}
			slices.SortFunc(syncs, func(a, b time.Time) int { return a.Compare(b) })
		}
	)
	defer timer.Stop()
	if joined {
		scheduleSyn(time.Now())
	}
	if !rejoin {
		resolvedFor = n.wka.Load() // Join has tried these once
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-n.wake:
		}
		now := time.Now()
		for len(syncs) > 0 && !now.Before(syncs[0]) {
			syncs = syncs[1:]
			n.syncState(ctx)
		}
		if wka := n.wka.Load(); !rejoin && wka != resolvedFor {
			// The loop is off: a list from SetWKA is tried once, as Join
			// tries its own.
			resolvedFor = wka
			var absent []netip.AddrPort
			for _, a := range n.resolveWKA(ctx, wka) {
				if !n.present(a) {
					absent = append(absent, a)
				}
			}
			if ok := n.tryJoin(ctx, absent); len(ok) > 0 {
				n.log.Info("membership: joined through well-known members", "wka", ok)
				scheduleSyn(time.Now())
			}
		}
		if rejoin {
			if wka := n.wka.Load(); wka != resolvedFor || now.Sub(resolvedAt) >= n.cfg.RejoinInterval {
				addrs, resolvedFor, resolvedAt = n.resolveWKA(ctx, wka), wka, now
			}
			var due []netip.AddrPort
			for a := range retries {
				if n.present(a) || !slices.Contains(addrs, a) {
					delete(retries, a)
				}
			}
			for _, a := range addrs {
				if n.present(a) {
					continue
				}
				r := retries[a]
				if r == nil {
					r = &retry{next: now, delay: n.cfg.RejoinInterval}
					retries[a] = r
				}
				if !now.Before(r.next) {
					due = append(due, a)
				}
			}
			if len(due) > 0 {
				ok := n.tryJoin(ctx, due)
				after := time.Now()
				for _, a := range due {
					if slices.Contains(ok, a) {
						delete(retries, a)
						continue
					}
					r := retries[a]
					r.next = after.Add(jitter(r.delay))
					r.delay = min(2*r.delay, n.cfg.RejoinMaxInterval)
				}
				if len(ok) > 0 {
					n.log.Info("membership: joined through well-known members", "wka", ok)
					scheduleSyn(after)
				}
			}
		}
		// Sleep until the next sync or retry; with neither, until a member
		// leaves or fails, or RejoinMaxInterval passes (names may change).
		now = time.Now()
		next := now.Add(idle)
		if len(syncs) > 0 && syncs[0].Before(next) {
			next = syncs[0]
		}
		for _, r := range retries {
			if r.next.Before(next) {
				next = r.next
			}
		}
		timer.Reset(max(next.Sub(now), 0))
	}
}

// resolveWKA returns the addresses of wka other than the node's own,
// resolving host names within Timing.TCPTimeout, and keeps them for Health;
// names that do not resolve are logged at Debug and left out (the next
// resolution tries again).
func (n *Node) resolveWKA(ctx context.Context, wka *[]wkaTarget) []netip.AddrPort {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timing.TCPTimeout)
	defer cancel()
	addrs, errs := resolve(ctx, *wka, n.lookup)
	for _, err := range errs {
		n.log.Debug("membership: well-known member not resolved", "err", err)
	}
	return n.keepResolved(wka, addrs)
}

// resolution is the well-known addresses a list resolved to, other than the
// node's own.
type resolution struct {
	from  *[]wkaTarget // the list, as stored in Node.wka
	addrs []netip.AddrPort
}

// keepResolved drops the node's own addresses from addrs, which wka resolved
// to, keeps the rest for Health and returns them.
func (n *Node) keepResolved(wka *[]wkaTarget, addrs []netip.AddrPort) []netip.AddrPort {
	addrs = n.others(addrs)
	n.resolved.Store(&resolution{from: wka, addrs: addrs})
	return addrs
}

// syncState exchanges full state with a random alive well-known member, or
// a random alive member when no well-known member is one.
func (n *Node) syncState(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	var wka, all []netip.AddrPort
	for _, t := range n.wkaList() {
		if t.host == "" && n.present(t.addr) {
			wka = append(wka, t.addr)
		}
	}
	if len(wka) == 0 {
		for _, m := range n.hub.snapshot() {
			if m.Name != n.name {
				all = append(all, m.Addr)
			}
		}
	}
	pick := wka
	if len(pick) == 0 {
		pick = all
	}
	if len(pick) == 0 {
		return
	}
	a := pick[rand.N(len(pick))]
	if _, err := n.ml.Join([]string{a.String()}); err != nil {
		n.log.Debug("membership: state exchange failed", "member", a, "err", err)
	}
}
