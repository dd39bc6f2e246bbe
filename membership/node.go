package membership

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/go-sockaddr/template"
	"github.com/hashicorp/memberlist"
	"golang.org/x/sync/errgroup"
)

// Node is a running member of a cluster. It is created by Join and stopped
// by Leave or Close. Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	name   string
	addr   netip.AddrPort // advertised
	bind   netip.AddrPort
	local  map[netip.Addr]bool         // interface addresses, when bind is unspecified
	wka    atomic.Pointer[[]wkaTarget] // replaced whole by SetWKA
	lookup func(context.Context, string) ([]netip.Addr, error)
	ml     *memberlist.Memberlist
	tr     *countingTransport
	hub    *hub
	wake   chan struct{} // buffered 1: a member left or failed, look at the WKA list again
	drops  *foreignLog   // counts memberlist's lines about unreadable packets; nil when turned off

	mu      sync.Mutex // protects meta, props and leaving
	meta    []byte
	props   map[string]string
	leaving map[string]bool // members that sent a leave notice

	cancel    context.CancelFunc // stops the rejoin loop
	done      chan struct{}      // closed when the rejoin loop has returned
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Join starts a node and joins it to the cluster through the well-known
// members of cfg. It returns once the node listens and every well-known
// address has been tried once, whether or not any answered: a node may be the
// first of its cluster, and the rejoin loop keeps trying the well-known
// members that are not alive members (see Config.RejoinInterval) until the
// node is closed.
//
// Join returns a *ConfigError (wrapping a *WKAError for a bad WKA entry, or
// ErrMetaTooLarge) for a bad Config, ErrNoAdvertiseAddr when no address can
// be advertised, the listen error when no port of Port…Port+PortRetries is
// free (wrapping syscall.EADDRINUSE when they are taken), and ctx.Err() when
// ctx ends first; the node is then closed. The first attempts run
// JoinParallel at a time and each waits at most Timing.TCPTimeout, so Join
// returns within that for up to JoinParallel well-known addresses.
func Join(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	wka, err := parseWKAList(cfg.WKA)
	if err != nil {
		return nil, err
	}
	md := meta{Domain: cfg.Domain, SubDomain: cfg.SubDomain, Properties: cfg.Properties}
	encoded, err := md.encode()
	if err != nil {
		return nil, &ConfigError{Field: "Properties", Err: err}
	}
	bindIP, err := parseAddrOrTemplate("BindAddr", cfg.BindAddr, "0.0.0.0")
	if err != nil {
		return nil, err
	}
	advIP := bindIP
	switch {
	case cfg.AdvertiseAddr != "":
		if advIP, err = parseAddrOrTemplate("AdvertiseAddr", cfg.AdvertiseAddr, ""); err != nil {
			return nil, err
		}
		if advIP.IsUnspecified() {
			return nil, &ConfigError{Field: "AdvertiseAddr", Err: fmt.Errorf("%v cannot be reached by other nodes", advIP)}
		}
	case bindIP.IsUnspecified():
		ip, err := sockaddr.GetPrivateIP()
		if err != nil || ip == "" {
			return nil, ErrNoAdvertiseAddr
		}
		if advIP, err = netip.ParseAddr(strings.Fields(ip)[0]); err != nil {
			return nil, ErrNoAdvertiseAddr
		}
	}

	n := &Node{
		cfg:    cfg,
		log:    cfg.Logger,
		lookup: cfg.Resolve,
		hub:    newHub(cfg.EventBuffer),
		wake:   make(chan struct{}, 1),
		meta:   encoded,
		props:  cfg.Properties,
		done:   make(chan struct{}),
	}
	n.wka.Store(&wka)
	if n.lookup == nil {
		n.lookup = defaultLookup
	}
	if n.props == nil {
		n.props = map[string]string{}
	}
	bridge := logBridge{l: cfg.Logger, closed: &n.closed}
	if cfg.ForeignLogInterval > 0 {
		n.drops = newForeignLog(cfg.Logger, cfg.ForeignLogInterval)
		bridge.foreign = n.drops
	}
	mlLog := log.New(bridge, "", 0)
	tr, port, err := n.listen(bindIP, mlLog)
	if err != nil {
		n.stopForeignLog()
		return nil, err
	}
	n.tr = tr
	n.bind = netip.AddrPortFrom(bindIP, uint16(port))
	if bindIP.IsUnspecified() && cfg.Transport == nil {
		n.local = localAddrs()
	}
	n.addr = netip.AddrPortFrom(advIP.Unmap(), uint16(port))
	n.name = cfg.Name
	if n.name == "" {
		n.name = n.addr.String()
	}

	mc := memberlist.DefaultLANConfig()
	cfg.Timing.apply(mc)
	mc.Name = n.name
	mc.Transport = tr
	mc.Label = cfg.Domain
	mc.BindAddr = bindIP.String()
	mc.BindPort = port
	mc.AdvertiseAddr = n.addr.Addr().String()
	mc.AdvertisePort = port
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = cfg.SecretKey
	}
	d := &delegate{n: n}
	mc.Delegate = d
	mc.Events = d
	mc.Alive = d
	mc.Merge = d
	mc.Logger = mlLog
	mc.DNSConfigPath = "" // names are resolved here, never by memberlist
	// No LZW compression of what is sent: each compressed packet allocates
	// a fresh 64 KiB table, and at 200 members the garbage collector then
	// takes most of the CPU. Gossip packets are filled to the UDP size limit
	// before compression, so it only saves bytes on the wire; compressed
	// messages from other nodes are still read.
	mc.EnableCompression = false
	n.ml, err = memberlist.Create(mc)
	if err != nil {
		tr.Shutdown()
		n.stopForeignLog()
		return nil, fmt.Errorf("membership: start %s: %w", n.name, err)
	}
	n.log.Debug("membership: node started", "name", n.name, "addr", n.addr, "domain", cfg.Domain, "subDomain", cfg.SubDomain)

	addrs, errs := resolve(ctx, n.wkaList(), n.lookup)
	for _, err := range errs {
		n.log.Warn("membership: well-known member not resolved", "err", err)
	}
	joined := n.tryJoin(ctx, n.others(addrs))
	if err := ctx.Err(); err != nil {
		n.ml.Shutdown()
		n.hub.close()
		n.stopForeignLog()
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go n.run(loopCtx, len(joined) > 0)
	return n, nil
}

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

// parseAddrOrTemplate parses an IP address or a go-sockaddr template that
// yields one; empty s means def.
func parseAddrOrTemplate(field, s, def string) (netip.Addr, error) {
	if s == "" {
		s = def
	}
	expr := s
	if strings.Contains(s, "{{") {
		out, err := template.Parse(s)
		if err != nil {
			return netip.Addr{}, &ConfigError{Field: field, Err: fmt.Errorf("template %q: %w", expr, err)}
		}
		f := strings.Fields(out)
		if len(f) == 0 {
			return netip.Addr{}, &ConfigError{Field: field, Err: fmt.Errorf("template %q yields no address", expr)}
		}
		s = f[0]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, &ConfigError{Field: field, Err: fmt.Errorf("%q is not an IP address or a go-sockaddr template", expr)}
	}
	if a.Zone() != "" {
		return netip.Addr{}, &ConfigError{Field: field, Err: fmt.Errorf("zoned address %q is not supported", expr)}
	}
	return a.Unmap(), nil
}

// listen opens the transport on the first free port of
// Port…Port+PortRetries and returns it with the port used.
func (n *Node) listen(ip netip.Addr, logger *log.Logger) (*countingTransport, int, error) {
	first, last := n.cfg.Port, n.cfg.Port+n.cfg.PortRetries
	var err error
	for port := first; port <= last; port++ {
		var tr memberlist.NodeAwareTransport
		used := port
		if n.cfg.Transport != nil {
			tr, err = n.cfg.Transport(netip.AddrPortFrom(ip, uint16(port)))
		} else {
			var nt *memberlist.NetTransport
			nt, err = openNet(ip, port, logger)
			if err == nil {
				tr, used = nt, nt.GetAutoBindPort()
			}
		}
		if err == nil {
			if port != first {
				n.log.Info("membership: port taken, using the next free one", "port", first, "used", used)
			}
			return &countingTransport{NodeAwareTransport: tr}, used, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if first != last {
		return nil, 0, fmt.Errorf("membership: listen on %v ports %d to %d: %w", ip, first, last, err)
	}
	return nil, 0, fmt.Errorf("membership: listen on %v: %w", netip.AddrPortFrom(ip, uint16(first)), err)
}

// openNet opens memberlist's UDP and TCP transport. memberlist does not wrap
// the cause of a failed listen, so a fixed port is first tried here, where
// EADDRINUSE can be recognised.
func openNet(ip netip.Addr, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	if port != 0 {
		ap := netip.AddrPortFrom(ip, uint16(port))
		tl, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
		if err != nil {
			return nil, err
		}
		ul, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		tl.Close()
		if err != nil {
			return nil, err
		}
		ul.Close()
	}
	return memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{ip.String()},
		BindPort:  port,
		Logger:    logger,
	})
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
			for _, a := range n.resolveWKA(ctx, *wka) {
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
				addrs, resolvedFor, resolvedAt = n.resolveWKA(ctx, *wka), wka, now
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
// resolving host names within Timing.TCPTimeout; names that do not resolve
// are logged at Debug and left out (the next resolution tries again).
func (n *Node) resolveWKA(ctx context.Context, wka []wkaTarget) []netip.AddrPort {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timing.TCPTimeout)
	defer cancel()
	addrs, errs := resolve(ctx, wka, n.lookup)
	for _, err := range errs {
		n.log.Debug("membership: well-known member not resolved", "err", err)
	}
	return n.others(addrs)
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

// Name returns the node's name in the cluster.
func (n *Node) Name() string { return n.name }

// Addr returns the address the node advertises, with the port it listens on
// (which may be past Config.Port when that was taken).
func (n *Node) Addr() netip.AddrPort { return n.addr }

// Local returns the node as the other members see it.
func (n *Node) Local() Member {
	n.mu.Lock()
	props := maps.Clone(n.props)
	n.mu.Unlock()
	return Member{Name: n.name, Domain: n.cfg.Domain, SubDomain: n.cfg.SubDomain, Addr: n.addr, Properties: props, State: StateAlive}
}

// Members returns the members this node believes alive, self included,
// sorted by name: the members of the Joined and Updated events not followed
// by Left or Failed. The result is a copy the caller may keep. After Close,
// Members returns nil.
func (n *Node) Members() []Member {
	if n.closed.Load() {
		return nil
	}
	ms := n.hub.snapshot()
	for i := range ms {
		ms[i].Properties = maps.Clone(ms[i].Properties)
	}
	return ms
}

// SetProperties replaces the node's advertised properties; the other members
// see an Updated event. It returns once the update has been gossiped to a
// few members, or after Timing.TCPTimeout (the update then still spreads
// with gossip and push-pull). It returns an error wrapping ErrMetaTooLarge,
// and changes nothing, when the properties do not fit, and ErrClosed after
// Close.
func (n *Node) SetProperties(p map[string]string) error {
	if n.closed.Load() {
		return ErrClosed
	}
	for k := range p {
		if err := validProperty(k); err != nil {
			return err
		}
	}
	props := maps.Clone(p)
	if props == nil {
		props = map[string]string{}
	}
	b, err := meta{Domain: n.cfg.Domain, SubDomain: n.cfg.SubDomain, Properties: props}.encode()
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.meta, n.props = b, props
	n.mu.Unlock()
	if err := n.ml.UpdateNode(n.cfg.Timing.TCPTimeout); err != nil {
		n.log.Debug("membership: property update not yet gossiped", "err", err)
	}
	return nil
}

// Leave tells the cluster the node is leaving, waits until the message has
// been gossiped or ctx ends (with no deadline, at most Timing.TCPTimeout),
// and closes the node. The others see a Left event rather than Failed: each
// member first gets a notice over a stream (JoinParallel at a time, within
// half the time), then memberlist's leave message is gossiped. It returns
// ErrClosed when the node was already closed.
func (n *Node) Leave(ctx context.Context) error {
	if n.closed.Load() {
		return ErrClosed
	}
	// Stop the rejoin loop so it does not join again; Close waits for it.
	n.cancel()
	timeout := n.cfg.Timing.TCPTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 || ctx.Err() != nil {
		return errors.Join(fmt.Errorf("membership: leave: %w", context.Cause(ctx)), n.Close())
	}
	start := time.Now()
	// Announce the departure in the metadata first, and give the update
	// half the time to spread: memberlist's leave message replaces it in
	// the gossip queue, and the others tell Left from Failed by it.
	var err error
	n.mu.Lock()
	b, merr := meta{Domain: n.cfg.Domain, SubDomain: n.cfg.SubDomain, Properties: n.props, Leaving: true}.encode()
	if merr == nil {
		n.meta = b
	}
	n.mu.Unlock()
	if merr == nil {
		if uerr := n.ml.UpdateNode(timeout / 2); uerr != nil {
			n.log.Debug("membership: leave announcement not fully gossiped", "err", uerr)
		}
	}
	n.noticeLeave(timeout / 2)
	if lerr := n.ml.Leave(timeout - time.Since(start)); lerr != nil {
		err = fmt.Errorf("membership: leave: %w", lerr)
	}
	return errors.Join(err, n.Close())
}

// leaveNotice starts the user message a leaving node sends every member
// directly, followed by its name: gossip gives no order between the
// metadata update and memberlist's leave message, a direct stream does.
const leaveNotice = 'L'

// noticeLeave tells every member over a stream, JoinParallel at a time and
// within d, that this node is leaving.
func (n *Node) noticeLeave(d time.Duration) {
	msg := append([]byte{leaveNotice}, n.name...)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(n.cfg.JoinParallel)
	for _, m := range n.hub.snapshot() {
		if m.Name == n.name || ctx.Err() != nil {
			continue
		}
		to := &memberlist.Node{Name: m.Name, Addr: m.Addr.Addr().AsSlice(), Port: m.Addr.Port()}
		g.Go(func() error {
			if err := n.ml.SendReliable(to, msg); err != nil {
				n.log.Debug("membership: leave notice not sent", "member", m.Name, "err", err)
			}
			return nil
		})
	}
	g.Wait()
}

// Close stops the node at once, without telling the cluster, which sees it
// fail; use Leave to depart gracefully. It stops every goroutine the node
// started before it returns, and ends Watch calls with ErrClosed. Close is
// idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.cancel()
		// Shut memberlist down before waiting for the rejoin loop: closing
		// the transport ends a join or state exchange in flight, which
		// memberlist would otherwise let run up to Timing.TCPTimeout.
		if err := n.ml.Shutdown(); err != nil {
			n.closeErr = fmt.Errorf("membership: close: %w", err)
		}
		<-n.done
		n.hub.close()
		n.stopForeignLog()
	})
	return n.closeErr
}

// stopForeignLog logs the pending counts of unreadable packets and stops
// their timer.
func (n *Node) stopForeignLog() {
	if n.drops != nil {
		n.drops.stop()
	}
}

// Health holds figures about a node and its view of the cluster.
type Health struct {
	// Members is the number of members the node believes alive, self
	// included: len(Members()).
	Members int
	// Score is memberlist's awareness score: 0 when the node's own probes
	// are answered in time, up to Timing's multiplier limit when they are
	// not — a sign the node itself is slow or cut off (Lifeguard, section
	// 4.3). The node then probes less often.
	Score int
	// WKA is the number of well-known addresses other than the node's own,
	// and WKAAlive how many of them are alive members. Host names are not
	// counted.
	WKA, WKAAlive int
	// PacketBytes is the number of bytes the node has sent as UDP packets
	// (probes, acks, gossip).
	PacketBytes int64
	// StreamBytes is the number of bytes written and read on streams the
	// node opened (joins, push-pulls, TCP probes). Summed over a cluster,
	// PacketBytes plus StreamBytes counts every byte once.
	StreamBytes int64
	// DroppedEvents is the number of events dropped for Watch subscribers
	// that fell behind.
	DroppedEvents int64
}

// Health returns the node's current figures.
func (n *Node) Health() Health {
	h := Health{
		Members:       n.hub.count(),
		Score:         n.ml.GetHealthScore(),
		PacketBytes:   n.tr.packets.Load(),
		StreamBytes:   n.tr.streams.Load(),
		DroppedEvents: n.hub.droppedEvents(),
	}
	for _, t := range n.wkaList() {
		if t.host != "" || t.addr == n.addr || t.addr == n.bind {
			continue
		}
		h.WKA++
		if n.present(t.addr) {
			h.WKAAlive++
		}
	}
	return h
}

// delegate receives memberlist's callbacks for a node.
type delegate struct{ n *Node }

// NodeMeta returns the encoded domain, sub-domain and properties, which
// SetProperties keeps within the limit.
func (d *delegate) NodeMeta(limit int) []byte {
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	return d.n.meta
}

// NotifyMsg records leave notices.
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) < 2 || b[0] != leaveNotice {
		return
	}
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	if d.n.leaving == nil {
		d.n.leaving = make(map[string]bool)
	}
	if len(d.n.leaving) < 4096 { // bounded: entries go at the member's leave or return
		d.n.leaving[string(b[1:])] = true
	}
}

// noticed reports and forgets whether name sent a leave notice.
func (n *Node) noticed(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	ok := n.leaving[name]
	delete(n.leaving, name)
	return ok
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// check refuses a member that does not advertise this node's domain.
func (d *delegate) check(p *memberlist.Node) error {
	if metaDomainIs(p.Meta, d.n.cfg.Domain) {
		return nil
	}
	md, err := decodeMeta(p.Meta)
	if err != nil {
		return fmt.Errorf("membership: member %s: %w", p.Name, err)
	}
	return fmt.Errorf("membership: member %s is in domain %q, not %q", p.Name, md.Domain, d.n.cfg.Domain)
}

// NotifyAlive refuses members of another domain.
func (d *delegate) NotifyAlive(p *memberlist.Node) error { return d.check(p) }

// NotifyMerge refuses to join a cluster that holds a member of another
// domain.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := d.check(p); err != nil {
			return err
		}
	}
	return nil
}

func (d *delegate) NotifyJoin(p *memberlist.Node) {
	d.n.noticed(p.Name) // a member back after leaving starts afresh
	if m, _, ok := memberOf(p, StateAlive); ok && m.Domain == d.n.cfg.Domain {
		d.n.hub.publish(Event{Type: Joined, Member: m})
	}
}

// NotifyUpdate publishes Updated, except for the update that announces a
// Leave: the Left event follows.
func (d *delegate) NotifyUpdate(p *memberlist.Node) {
	if m, md, ok := memberOf(p, StateAlive); ok && m.Domain == d.n.cfg.Domain && !md.Leaving {
		d.n.hub.publish(Event{Type: Updated, Member: m})
	}
}

// NotifyLeave publishes Left when the member announced its departure,
// Failed otherwise. A departure is known from any of three signs: the
// member's leave notice, the Leaving flag of its last metadata, or
// memberlist's state Left, which it sets when the dead message came from
// the member itself (its leave message, directly, by gossip or in a
// push-pull).
func (d *delegate) NotifyLeave(p *memberlist.Node) {
	if m, md, ok := memberOf(p, StateFailed); ok && m.Domain == d.n.cfg.Domain {
		e := Event{Type: Failed, Member: m}
		if d.n.noticed(p.Name) || md.Leaving || p.State == memberlist.StateLeft {
			e.Type, e.Member.State = Left, StateLeft
		}
		d.n.hub.publish(e)
	}
	select {
	case d.n.wake <- struct{}{}:
	default:
	}
}

// countingTransport counts the bytes a node sends, and closes the streams it
// dialled when it shuts down.
type countingTransport struct {
	memberlist.NodeAwareTransport
	packets atomic.Int64 // bytes written as packets
	streams atomic.Int64 // bytes written and read on dialled streams

	mu    sync.Mutex // protects conns and down
	conns map[*countingConn]struct{}
	down  bool
}

// track wraps a dialled stream, or closes it when the transport is down.
func (t *countingTransport) track(c net.Conn) (net.Conn, error) {
	cc := &countingConn{Conn: c, t: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.down {
		c.Close()
		return nil, net.ErrClosed
	}
	if t.conns == nil {
		t.conns = make(map[*countingConn]struct{})
	}
	t.conns[cc] = struct{}{}
	return cc, nil
}

// Shutdown closes the dialled streams still open and shuts the transport
// down.
func (t *countingTransport) Shutdown() error {
	t.mu.Lock()
	t.down = true
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return t.NodeAwareTransport.Shutdown()
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.packets.Add(int64(len(b)))
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.packets.Add(int64(len(b)))
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return t.track(c)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return t.track(c)
}

type countingConn struct {
	net.Conn
	t *countingTransport
}

func (c *countingConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	c.t.streams.Add(int64(k))
	return k, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.t.streams.Add(int64(k))
	return k, err
}

func (c *countingConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.conns, c)
	c.t.mu.Unlock()
	return c.Conn.Close()
}

// logBridge turns memberlist's log lines, "[LEVEL] memberlist: message",
// into slog records at the matching level. Lines about packets and streams
// memberlist could not read go to foreign, which counts them per source
// (memberlist writes one per packet, and anyone who reaches the port can
// send packets); a line that follows one of those about the same stream is
// logged at Debug. Once the node is closed, memberlist's goroutines that
// are still ending report the closed transport ("use of closed network
// connection") as errors; those are the shutdown itself, not a fault, so
// whatever memberlist logs after Close is logged at Debug.
type logBridge struct {
	l       *slog.Logger
	closed  *atomic.Bool // nil: never closed
	foreign *foreignLog  // nil: every line is logged
}

func (b logBridge) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			switch msg[1:i] {
			case "TRACE", "DEBUG":
				level = slog.LevelDebug
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			msg = strings.TrimSpace(msg[i+1:])
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	if b.foreign != nil && level > slog.LevelDebug {
		switch kind := classify(msg); kind {
		case unreadPacket, unreadStream:
			if !b.l.Enabled(context.Background(), slog.LevelWarn) || b.foreign.add(kind, msg) {
				return len(p), nil
			}
		case unreadFollowUp:
			level = slog.LevelDebug
		}
	}
	if level > slog.LevelDebug && b.closed != nil && b.closed.Load() {
		level = slog.LevelDebug
	}
	if !b.l.Enabled(context.Background(), level) {
		return len(p), nil
	}
	b.l.Log(context.Background(), level, msg, "component", "memberlist")
	return len(p), nil
}
