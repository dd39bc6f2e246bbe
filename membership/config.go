package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a node. Fill one from DefaultConfig or DefaultLocalConfig
// and pass it to Join, which validates and copies it; a Config is not used
// after Join returns.
//
// The fields map one to one to the clustering section of a Carbon node's
// axis2.xml: domain, localMemberHost (AdvertiseAddr), localMemberPort (Port),
// the well-known members (WKA), and the properties, subDomain among them.
type Config struct {
	// Name is the node's name, unique in the cluster. Empty means the
	// advertised address as host:port, which changes when the port does.
	Name string

	// Domain is the cluster the node belongs to ("wso2.esb.domain").
	// Required. It becomes memberlist's cluster label, so packets and streams
	// of another domain are dropped unread, and it is advertised, so a member
	// that announces another domain is refused. At most 255 bytes.
	Domain string

	// SubDomain is the node's role in the domain: SubDomainWorker,
	// SubDomainMgt, or anything else. Empty means none.
	SubDomain string

	// BindAddr is the IP address to listen on, a go-sockaddr template such
	// as "{{ GetPrivateIP }}", or a host name that Resolve looks up at each
	// Join (the first address it returns): Carbon's localMemberBindAddress,
	// else its localMemberHost. Empty means "0.0.0.0", every IPv4
	// interface.
	BindAddr string

	// AdvertiseAddr is the IP address, go-sockaddr template or host name
	// (looked up with Resolve at each Join, the first address it returns)
	// other nodes reach this one at: Carbon's localMemberHost. Empty means
	// BindAddr when that is a single address; when BindAddr is 0.0.0.0 or
	// [::], the first private IP address of the host, and Join returns
	// ErrNoAdvertiseAddr when there is none.
	AdvertiseAddr string

	// Port is the TCP and UDP port for cluster messages: Carbon's
	// localMemberPort. Zero means any free port (for tests); DefaultConfig
	// sets 4000.
	Port int

	// PortRetries is how many following ports Join tries when Port is taken,
	// as Carbon increments localMemberPort. The port used is
	// Node.Addr().Port() and Health().Port; a move is logged at Warn, since
	// nodes whose WKA names Port then reach whatever holds it. Zero means
	// only Port.
	PortRetries int

	// WKA lists the well-known members, each an expression ParseWKA accepts:
	// "10.0.0.4:4000", "[fd00::4]:4000", "mgr.example.com:4100" or a range of
	// the last octet, "192.168.1.2-10:4000" (as the Carbon guides write it)
	// or "10.0.0.[1-10]:4000". Empty means the node waits to be
	// joined by others. An address equal to the node's own is skipped.
	WKA []string

	// Resolve looks up the IP addresses of WKA host names, and of BindAddr
	// and AdvertiseAddr when they are host names. It is called for every
	// join attempt, so a changed name is followed: for WKA by the running
	// node, for BindAddr and AdvertiseAddr by the next Join. Its type lets a
	// program pass a method value such as a caching hosts-then-DNS
	// resolver's LookupAddr. Nil means net.DefaultResolver.LookupNetIP with
	// network "ip".
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)

	// Properties are advertised to every member: PropHTTPPort,
	// PropHTTPSPort, PropBackendServerURL, PropMgtConsoleURL and anything
	// else. Domain, SubDomain and Properties must fit in MaxMetaSize bytes
	// once encoded. Nil means none.
	Properties map[string]string

	// SecretKey enables memberlist's AES-GCM encryption of every packet and
	// stream: 16, 24 or 32 bytes for AES-128, -192 or -256. A node with
	// another key (or none) can neither join nor read gossip. Nil means no
	// encryption.
	SecretKey []byte

	// Timing holds the protocol periods and timeouts. The zero value means
	// LANTiming().
	Timing Timing

	// RejoinInterval is the first delay before a well-known member that is
	// not an alive member is tried again; each failure doubles it, with
	// jitter, up to RejoinMaxInterval, and it starts over once the member is
	// back. Zero means 200ms. A negative value turns the rejoin loop off:
	// the well-known members are tried once, by Join.
	RejoinInterval time.Duration

	// RejoinMaxInterval caps the delay between attempts at one well-known
	// member. Zero means 30s.
	RejoinMaxInterval time.Duration

	// JoinParallel bounds how many well-known addresses are tried at once
	// (a range expands to many). Zero means 8.
	JoinParallel int

	// EventBuffer is how many events wait for a slow Watch subscriber before
	// its queue is replaced by one Resync event. Zero means 1024.
	EventBuffer int

	// Logger receives the node's log and memberlist's, with memberlist's
	// levels ([DEBUG], [INFO], [WARN], [ERR]) mapped to slog levels, except
	// its lines about packets and streams it could not read, which are
	// counted (see ForeignLogInterval); what memberlist logs after Close,
	// the errors of its ending goroutines on the closed transport, is logged
	// at Debug. Nil means slog.Default().
	Logger *slog.Logger

	// ForeignLogInterval is how often the node logs, at Warn, what
	// memberlist dropped unread: packets and streams of another cluster
	// label or none, that do not decrypt with SecretKey, of an unknown
	// message type or that do not decode. Each interval gets one line per
	// source address, "membership: dropped unreadable cluster messages",
	// with the counts of packets and streams and memberlist's first reason.
	// memberlist itself logs one line per packet at Error, so anyone who can
	// reach Port could otherwise fill the log. A stream that ends before
	// its first byte from the address of a member (one stopping while it
	// dialled) is logged at Debug instead. The first line comes one
	// interval after the first such packet; Close logs what is pending. Zero
	// means 10s. A negative value turns the counting off: memberlist's lines
	// are logged one by one. The same interval paces the line that counts
	// the packets memberlist dropped because its handler queue was full
	// (Health.HandlerQueueDropped), which it also logs one per packet.
	ForeignLogInterval time.Duration

	// Messages, when set, makes the node a message peer: it receives what
	// other message peers send with Node.Broadcast, and answers
	// Node.RequestState, through the handler's methods (see
	// MessageHandler for when they are called). The node advertises it in
	// its metadata (Member.Messages), so that the others send it messages.
	// Nil means the node takes no messages: Broadcast and RequestState
	// return ErrNoMessages, and what other nodes send it is dropped.
	Messages MessageHandler

	// MessageQueue bounds, in bytes, the messages Broadcast holds before
	// they go out, those being sent included; each message counts its
	// length plus one or two bytes of framing. A Broadcast that would pass
	// it is refused with ErrMessageQueueFull. Zero means 1 MiB, enough for
	// about a second of 1,000 messages of 1 KiB each when the network
	// stalls.
	MessageQueue int

	// Transport, when set, is called instead of opening UDP and TCP sockets,
	// with the bind address and each port tried; an error wrapping
	// syscall.EADDRINUSE moves on to the next port, as a taken socket does.
	// membertest.Network.Bind fits here. Nil means memberlist's
	// NetTransport on real sockets.
	Transport func(addr netip.AddrPort) (memberlist.NodeAwareTransport, error)
}

// Timing holds the protocol periods and timeouts of the SWIM engine and the
// push-pull exchanges this package adds after a join. The trade-offs of each
// are documented on memberlist.Config.
type Timing struct {
	// ProbeInterval is how often a node probes a random member.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for an ack before asking
	// IndirectChecks other members to probe.
	ProbeTimeout time.Duration
	// IndirectChecks is how many members probe on a node's behalf.
	IndirectChecks int
	// SuspicionMult scales the time a suspect member has to refute the
	// suspicion: SuspicionMult × log10(members) × ProbeInterval, the least
	// time before it is declared failed. SuspicionMult−2 independent
	// confirmations bring the timeout down to that least time.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout with no
	// confirmation, as a multiple of the least.
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often a node gossips queued messages to
	// GossipNodes random members.
	GossipInterval time.Duration
	// GossipNodes is the gossip fan-out.
	GossipNodes int
	// RetransmitMult scales how many times a message is gossiped:
	// RetransmitMult × ceil(log10(members+1)).
	RetransmitMult int
	// GossipToTheDeadTime is how long failed members still get gossip, so
	// that a wrongly failed one learns of it and refutes.
	GossipToTheDeadTime time.Duration
	// PushPullInterval is the period of full-state exchanges with a random
	// member, scaled up by memberlist beyond 32 members.
	PushPullInterval time.Duration
	// TCPTimeout bounds a stream: a join, a push-pull, a TCP probe.
	TCPTimeout time.Duration
	// DeadNodeReclaimTime is how long after a member failed its name can be
	// taken by a node at another address (a restart on a new address).
	DeadNodeReclaimTime time.Duration
	// SyncAfterJoin are delays, counted from a successful join, after which
	// the node exchanges full state with one alive well-known member. When
	// many nodes join at once, the well-known members learn of every one of
	// them at its join, but the early joiners only learn of the later ones
	// by gossip, whose queues are then long; these exchanges bound that
	// tail. Each delay gets ±20% jitter. Nil means none.
	SyncAfterJoin []time.Duration
}

// LANTiming returns the timing for a local network, the default. It is
// memberlist's DefaultLANConfig with probes twice as often (a dead member
// is first probed sooner, so it is declared dead in under 6 s at 50
// members instead of 8 to 11 s), a shorter reclaim time for the names of
// failed members, and full-state exchanges after a join.
func LANTiming() Timing {
	return Timing{
		ProbeInterval:           500 * time.Millisecond, // memberlist: 1s; the wait for the first probe of a dead member was most of the detection time
		ProbeTimeout:            250 * time.Millisecond, // memberlist: 500ms; a LAN round trip is under a millisecond
		IndirectChecks:          3,                      // memberlist LAN default
		SuspicionMult:           4,                      // memberlist LAN default: least suspicion 3.4s at 50 members, 4.6s at 200
		SuspicionMaxTimeoutMult: 6,                      // memberlist LAN default: a wrongly suspected member has up to 6 times that to refute
		GossipInterval:          200 * time.Millisecond, // memberlist LAN default
		GossipNodes:             3,                      // memberlist LAN default
		RetransmitMult:          4,                      // memberlist LAN default
		GossipToTheDeadTime:     30 * time.Second,       // memberlist LAN default
		PushPullInterval:        30 * time.Second,       // memberlist LAN default
		TCPTimeout:              10 * time.Second,       // memberlist LAN default
		DeadNodeReclaimTime:     time.Second,            // memberlist: never; a restarted node may come back on a new address
		SyncAfterJoin: []time.Duration{ // memberlist: none, the next push-pull is up to PushPullInterval away
			250 * time.Millisecond,
			750 * time.Millisecond,
			1500 * time.Millisecond,
			3 * time.Second,
		},
	}
}

// LocalTiming returns a fast timing for nodes on one host, such as tests on
// 127.0.0.1: failures are detected in about a second.
func LocalTiming() Timing {
	return Timing{
		ProbeInterval:           200 * time.Millisecond, // five probes a second
		ProbeTimeout:            100 * time.Millisecond, // loopback answers in microseconds
		IndirectChecks:          1,                      // as memberlist's DefaultLocalConfig
		SuspicionMult:           3,                      // 0.6s to 1.2s of suspicion for up to 100 members
		SuspicionMaxTimeoutMult: 4,                      // a shorter bound than LANTiming's 6
		GossipInterval:          50 * time.Millisecond,  // gossip four times as often as LAN
		GossipNodes:             3,                      // memberlist default
		RetransmitMult:          3,                      // a little more than memberlist's local 2: tests lose packets on purpose
		GossipToTheDeadTime:     5 * time.Second,        // long enough to refute a false failure
		PushPullInterval:        5 * time.Second,        // a full-state exchange every five seconds
		TCPTimeout:              time.Second,            // as memberlist's DefaultLocalConfig
		DeadNodeReclaimTime:     100 * time.Millisecond, // a restart may take the name at once
		SyncAfterJoin: []time.Duration{ // as LANTiming, five times faster
			50 * time.Millisecond,
			150 * time.Millisecond,
			300 * time.Millisecond,
			600 * time.Millisecond,
		},
	}
}

// DefaultConfig returns the configuration of a LAN node in domain, to be
// completed with WKA, SubDomain, Properties and, on hosts with several
// addresses, AdvertiseAddr.
func DefaultConfig(domain string) Config {
	return Config{
		Domain:             domain,
		BindAddr:           "0.0.0.0",              // every IPv4 interface; advertise the private IP
		Port:               4000,                   // Carbon's default localMemberPort
		PortRetries:        100,                    // Carbon increments a taken port; try 4000–4100
		Timing:             LANTiming(),            // memberlist LAN, tuned; see LANTiming
		RejoinInterval:     200 * time.Millisecond, // first retry of an absent WKA member
		RejoinMaxInterval:  30 * time.Second,       // retries back off to twice a minute
		JoinParallel:       8,                      // eight addresses of a range at once
		EventBuffer:        1024,                   // events a slow subscriber may lag behind
		ForeignLogInterval: 10 * time.Second,       // one line per source of unreadable packets every 10s
		MessageQueue:       1 << 20,                // 1 MiB of Broadcast messages waiting to go out
	}
}

// DefaultLocalConfig returns the configuration of a node on 127.0.0.1 with a
// free port and LocalTiming, for tests and single-host setups.
func DefaultLocalConfig(domain string) Config {
	c := DefaultConfig(domain)
	c.BindAddr = "127.0.0.1"                 // loopback only
	c.Port = 0                               // any free port
	c.PortRetries = 0                        // no need with any free port
	c.Timing = LocalTiming()                 // see LocalTiming
	c.RejoinInterval = 50 * time.Millisecond // retry fast
	c.RejoinMaxInterval = time.Second        // and never wait long
	return c
}

// ErrNoAdvertiseAddr is returned by Join when the node listens on every
// interface, AdvertiseAddr is empty, and the host has no private IP address
// to advertise.
var ErrNoAdvertiseAddr = errors.New("membership: bind address listens on every interface and no private IP address was found to advertise; set Config.AdvertiseAddr")

// ConfigError is returned by Join for a Config field that is not valid.
type ConfigError struct {
	Field string // the Config field, e.g. "Port" or "WKA[1]"
	Err   error  // what is wrong
}

// Error returns "membership: config Field: reason".
func (e *ConfigError) Error() string {
	return fmt.Sprintf("membership: config %s: %v", e.Field, e.Err)
}

// Unwrap returns Err.
func (e *ConfigError) Unwrap() error { return e.Err }

// withDefaults returns a copy of c with zero fields set from DefaultConfig
// (their documented meaning), or the first invalid field.
func (c Config) withDefaults() (Config, error) {
	bad := func(field, format string, args ...any) (Config, error) {
		return Config{}, &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	if c.Domain == "" {
		return bad("Domain", "required")
	}
	if len(c.Domain) > 255 {
		return bad("Domain", "%d bytes, at most 255", len(c.Domain))
	}
	if strings.ContainsFunc(c.Domain, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return bad("Domain", "%q has a control character", c.Domain)
	}
	if c.Port < 0 || c.Port > 65535 {
		return bad("Port", "%d is not a port (0 to 65535)", c.Port)
	}
	if c.PortRetries < 0 || c.Port+c.PortRetries > 65535 {
		return bad("PortRetries", "%d retries from port %d pass 65535", c.PortRetries, c.Port)
	}
	if c.Port == 0 && c.PortRetries > 0 {
		return bad("PortRetries", "%d retries with port 0 (any free port)", c.PortRetries)
	}
	if c.Port == 0 && c.Transport != nil {
		return bad("Port", "a Transport needs a port other than 0")
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return bad("SecretKey", "%d bytes, want 16, 24 or 32", len(c.SecretKey))
	}
	for k := range c.Properties {
		if err := validProperty(k); err != nil {
			return bad("Properties", "%v", err)
		}
	}
	c.Properties = maps.Clone(c.Properties)
	c.WKA = append([]string(nil), c.WKA...)
	c.SecretKey = append([]byte(nil), c.SecretKey...)
	// Zero fields take their values from DefaultConfig, where each default
	// is written once.
	def := DefaultConfig(c.Domain)
	if c.BindAddr == "" {
		c.BindAddr = def.BindAddr
	}
	if c.Timing.isZero() {
		c.Timing = def.Timing
	}
	if err := c.Timing.validate(); err != nil {
		return bad("Timing", "%v", err)
	}
	c.Timing.SyncAfterJoin = append([]time.Duration(nil), c.Timing.SyncAfterJoin...)
	if c.RejoinInterval == 0 {
		c.RejoinInterval = def.RejoinInterval
	}
	if c.RejoinMaxInterval == 0 {
		c.RejoinMaxInterval = def.RejoinMaxInterval
	}
	if c.RejoinMaxInterval < 0 {
		return bad("RejoinMaxInterval", "%v is negative", c.RejoinMaxInterval)
	}
	if c.JoinParallel < 0 {
		return bad("JoinParallel", "%d is negative", c.JoinParallel)
	}
	if c.JoinParallel == 0 {
		c.JoinParallel = def.JoinParallel
	}
	if c.EventBuffer < 0 {
		return bad("EventBuffer", "%d is negative", c.EventBuffer)
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = def.EventBuffer
	}
	if c.ForeignLogInterval == 0 {
		c.ForeignLogInterval = def.ForeignLogInterval
	}
	if c.MessageQueue < 0 {
		return bad("MessageQueue", "%d is negative", c.MessageQueue)
	}
	if c.MessageQueue == 0 {
		c.MessageQueue = def.MessageQueue
	}
	if c.Resolve == nil {
		c.Resolve = defaultLookup
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func (t Timing) isZero() bool {
	return t.ProbeInterval == 0 && t.ProbeTimeout == 0 && t.IndirectChecks == 0 &&
		t.SuspicionMult == 0 && t.SuspicionMaxTimeoutMult == 0 && t.GossipInterval == 0 &&
		t.GossipNodes == 0 && t.RetransmitMult == 0 && t.GossipToTheDeadTime == 0 &&
		t.PushPullInterval == 0 && t.TCPTimeout == 0 && t.DeadNodeReclaimTime == 0 &&
		t.SyncAfterJoin == nil
}

func (t Timing) validate() error {
	pos := []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", t.ProbeInterval}, {"ProbeTimeout", t.ProbeTimeout},
		{"GossipInterval", t.GossipInterval}, {"PushPullInterval", t.PushPullInterval},
		{"TCPTimeout", t.TCPTimeout},
	}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("%s is %v, must be positive", p.name, p.v)
		}
	}
	if t.ProbeTimeout > t.ProbeInterval {
		return fmt.Errorf("ProbeTimeout %v is longer than ProbeInterval %v", t.ProbeTimeout, t.ProbeInterval)
	}
	if t.SuspicionMult < 1 || t.SuspicionMaxTimeoutMult < 1 || t.GossipNodes < 1 || t.RetransmitMult < 1 || t.IndirectChecks < 0 {
		return errors.New("SuspicionMult, SuspicionMaxTimeoutMult, GossipNodes and RetransmitMult must be at least 1, IndirectChecks at least 0")
	}
	if t.GossipToTheDeadTime < 0 || t.DeadNodeReclaimTime < 0 {
		return errors.New("GossipToTheDeadTime and DeadNodeReclaimTime must not be negative")
	}
	for _, d := range t.SyncAfterJoin {
		if d <= 0 {
			return fmt.Errorf("SyncAfterJoin holds %v, must be positive", d)
		}
	}
	return nil
}

// apply copies the timing into a memberlist configuration.
func (t Timing) apply(c *memberlist.Config) {
	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.IndirectChecks = t.IndirectChecks
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.GossipInterval = t.GossipInterval
	c.GossipNodes = t.GossipNodes
	c.RetransmitMult = t.RetransmitMult
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
	c.PushPullInterval = t.PushPullInterval
	c.TCPTimeout = t.TCPTimeout
	c.DeadNodeReclaimTime = t.DeadNodeReclaimTime
	if c.DeadNodeReclaimTime == 0 {
		// memberlist reads zero as never; this package reads it as at once.
		c.DeadNodeReclaimTime = time.Nanosecond
	}
}
