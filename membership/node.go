package membership

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// Node is a running member of a cluster. It is created by Join and stopped
// by Leave or Close. Its methods are safe for concurrent use.
type Node struct {
	cfg      Config
	log      *slog.Logger
	name     string
	addr     netip.AddrPort // advertised
	bind     netip.AddrPort
	local    map[netip.Addr]bool         // interface addresses, when bind is unspecified
	wka      atomic.Pointer[[]wkaTarget] // replaced whole by SetWKA
	resolved atomic.Pointer[resolution]  // what a list last resolved to, for Health
	lookup   func(context.Context, string) ([]netip.Addr, error)
	ml       *memberlist.Memberlist
	tr       *countingTransport
	hub      *hub
	wake     chan struct{} // buffered 1: a member left or failed, look at the WKA list again
	sent     atomic.Int64  // packets memberlist sent with room for broadcasts (see delegate.GetBroadcasts)
	gossip   chan struct{} // buffered 1: sent grew, or a member left or failed
	drops    *foreignLog   // counts memberlist's lines about unreadable packets; nil when turned off
	overflow *overflowLog  // counts memberlist's lines about packets its full handler queue dropped
	msgs     *messenger    // application messages: Broadcast, RequestState

	mu       sync.Mutex // protects meta, props, leaving, departed and gone
	meta     []byte
	props    map[string]string
	leaving  map[string]bool          // members that sent a leave notice
	departed time.Time                // when a member last left or failed
	gone     map[netip.Addr]time.Time // addresses of members that left or failed, and when
	left     map[string]time.Time     // names of members that left, and when (logBridge)

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
// BindAddr and AdvertiseAddr given as host names are looked up with
// Config.Resolve here, at each Join, so a name that starts resolving later
// works for a later Join and a changed address is taken by the next one; a
// running node keeps the addresses it started with.
//
// Join returns a *ConfigError (wrapping a *WKAError for a bad WKA entry,
// ErrMetaTooLarge, or the resolver's error for a BindAddr or AdvertiseAddr
// host name that does not resolve) for a bad Config, ErrNoAdvertiseAddr when no address can
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
	md := meta{Domain: cfg.Domain, SubDomain: cfg.SubDomain, Properties: cfg.Properties, Messages: cfg.Messages != nil}
	encoded, err := md.encode()
	if err != nil {
		return nil, &ConfigError{Field: "Properties", Err: err}
	}
	bindIP, err := hostAddr(ctx, "BindAddr", cfg.BindAddr, cfg.Resolve, cfg.Timing.TCPTimeout)
	if err != nil {
		return nil, err
	}
	advIP := bindIP
	switch {
	case cfg.AdvertiseAddr != "":
		if advIP, err = hostAddr(ctx, "AdvertiseAddr", cfg.AdvertiseAddr, cfg.Resolve, cfg.Timing.TCPTimeout); err != nil {
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
		gossip: make(chan struct{}, 1),
		meta:   encoded,
		props:  cfg.Properties,
		done:   make(chan struct{}),

		overflow: &overflowLog{l: cfg.Logger, interval: cfg.ForeignLogInterval},
	}
	n.wka.Store(&wka)
	if n.props == nil {
		n.props = map[string]string{}
	}
	bridge := &logBridge{l: cfg.Logger, closed: &n.closed}
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
	bridge.node.Store(n)
	n.bind = netip.AddrPortFrom(bindIP, uint16(port))
	if bindIP.IsUnspecified() && cfg.Transport == nil {
		n.local = localAddrs()
	}
	n.addr = netip.AddrPortFrom(advIP.Unmap(), uint16(port))
	n.name = cfg.Name
	if n.name == "" {
		n.name = n.addr.String()
	}
	n.msgs = newMessenger(n)

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
		n.msgs.wait()
		n.stopForeignLog()
		return nil, fmt.Errorf("membership: start %s: %w", n.name, err)
	}
	n.log.Debug("membership: node started", "name", n.name, "addr", n.addr, "domain", cfg.Domain, "subDomain", cfg.SubDomain)

	list := n.wka.Load()
	addrs, errs := resolve(ctx, *list, n.lookup)
	for _, err := range errs {
		n.log.Warn("membership: well-known member not resolved", "err", err)
	}
	joined := n.tryJoin(ctx, n.keepResolved(list, addrs))
	if err := ctx.Err(); err != nil {
		n.shutdown()
		n.msgs.wait()
		n.hub.close()
		n.stopForeignLog()
		return nil, err
	}
	n.msgs.start()
	loopCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go n.run(loopCtx, len(joined) > 0)
	return n, nil
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
	return Member{Name: n.name, Domain: n.cfg.Domain, SubDomain: n.cfg.SubDomain, Addr: n.addr, Properties: props, State: StateAlive, Messages: n.cfg.Messages != nil}
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
	b, err := meta{Domain: n.cfg.Domain, SubDomain: n.cfg.SubDomain, Properties: props, Messages: n.cfg.Messages != nil}.encode()
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

// Close stops the node at once, without telling the cluster, which sees it
// fail; use Leave to depart gracefully. It ends Watch calls with ErrClosed,
// and returns only once every goroutine the node started has ended,
// memberlist's included: a probe memberlist sent to a member that did not
// answer waits for its ack until its probe interval is over, and memberlist
// does not stop it at shutdown, so while the node has other members Close
// waits that long — Timing.ProbeInterval, scaled up by Health().Score as
// memberlist scales it. A node with no other member for that long returns at
// once. So a test in a testing/synctest bubble can end right after Close.
// It ends RequestState calls with ErrClosed, drops the messages Broadcast
// still queues, and waits for the MessageHandler.State calls in progress
// (their emit then returns false); the handler is not called once Close
// has returned. Close is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.cancel()
		n.msgs.halt() // ends state answers and RequestState calls waiting
		// Shut memberlist down before waiting for the rejoin loop: closing
		// the transport ends a join or state exchange in flight, which
		// memberlist would otherwise let run up to Timing.TCPTimeout.
		n.closeErr = n.shutdown()
		<-n.done
		n.msgs.wait()
		n.hub.close()
		n.stopForeignLog()
	})
	return n.closeErr
}

// shutdown shuts memberlist down and waits until its goroutines have ended.
//
// memberlist.Shutdown closes the transport and stops its tickers but waits
// for none of its goroutines. Those reading packets and streams return at
// once, and the transport closes every stream still open, which ends the
// handlers of accepted streams, push-pulls and TCP probes; a dial after
// shutdown fails at once. What remains is the probe in flight, if any: it
// waits on a timer for its ack (ProbeTimeout, then the probe interval
// scaled by the awareness score the probe started with, which can only
// have grown since), and the TCP probe it started ends by the same time.
// No probe is in flight when the node has had no other member for that
// long: memberlist probes only members it does not hold dead or left.
func (n *Node) shutdown() error {
	span := n.cfg.Timing.ProbeInterval * time.Duration(n.ml.GetHealthScore()+1)
	end := time.Now().Add(span)
	if n.ml.NumMembers() <= 1 {
		n.mu.Lock()
		end = n.departed.Add(span) // zero departed: long past
		n.mu.Unlock()
	}
	var err error
	if serr := n.ml.Shutdown(); serr != nil {
		err = fmt.Errorf("membership: close: %w", serr)
	}
	if d := time.Until(end); d > 0 {
		t := time.NewTimer(d)
		<-t.C
	}
	return err
}

// stopForeignLog logs the pending counts of unreadable packets and of
// packets memberlist's full handler queue dropped, and stops their timers.
func (n *Node) stopForeignLog() {
	if n.drops != nil {
		n.drops.stop()
	}
	n.overflow.stop()
}
