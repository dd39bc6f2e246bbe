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

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
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
	bindIP, err := parseAddrOrTemplate("BindAddr", cfg.BindAddr)
	if err != nil {
		return nil, err
	}
	advIP := bindIP
	switch {
	case cfg.AdvertiseAddr != "":
		if advIP, err = parseAddrOrTemplate("AdvertiseAddr", cfg.AdvertiseAddr); err != nil {
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
