// Package membership joins Go programs into a cluster through well-known
// addresses (WKA), the way WSO2 Carbon nodes do with the clustering section
// of axis2.xml, on top of hashicorp/memberlist's SWIM engine (failure
// detection, gossip, encryption, cluster labels).
//
// Each node names its domain (the cluster), its sub-domain (its role, such as
// worker or mgt), the address and port it takes cluster messages on, a few
// properties (its HTTP and HTTPS ports, its backend and console URLs), and
// one or more well-known members — addresses, host names, or a range of the
// last octet, 192.168.1.2-10:4000 as the Carbon guides write it, or
// 10.0.0.[1-10]:4000. The node's own address (AdvertiseAddr, BindAddr) may
// be a host name too, looked up with Config.Resolve at each Join:
//
//	cfg := membership.DefaultConfig("wso2.esb.domain")
//	cfg.SubDomain = membership.SubDomainWorker
//	cfg.AdvertiseAddr = "10.0.0.5"                 // localMemberHost
//	cfg.Port = 4200                                // localMemberPort
//	cfg.WKA = []string{"10.0.0.4:4100", "10.0.0.6:4200"}
//	cfg.Properties = map[string]string{membership.PropHTTPPort: "9763", membership.PropHTTPSPort: "9443"}
//	node, err := membership.Join(ctx, cfg)
//	if err != nil { … }
//	defer node.Close()
//	go node.Watch(ctx, func(e membership.Event) { … }) // e.Member.Pool() is "wso2.esb.domain/worker"
//
// # What this package adds to memberlist
//
// A node starts even when no well-known member is up, since one of them may
// be the first node. A rejoin loop then keeps trying every well-known
// address that is not an alive member, each with its own exponential backoff
// (Config.RejoinInterval, doubling with jitter up to RejoinMaxInterval), so
// the cluster re-forms after restarts and partitions without anyone acting.
// memberlist alone never rejoins nodes that a partition made declare each
// other dead. A taken port moves to the next (Config.PortRetries), as Carbon
// does. A node of another domain is refused twice over: the domain is
// memberlist's cluster label, and the domain each member advertises is
// checked. After a join the node exchanges full state with a well-known
// member a few more times (Timing.SyncAfterJoin), which bounds the time for a
// crowd of nodes joining at once to converge; LANTiming also probes twice
// as often as memberlist's LAN defaults, so that a failed node is gone from
// every list in about half the time. docs/membership.md has the
// measurements.
//
// # Events
//
// Node.Watch delivers Joined, Updated, Left and Failed events in order, first
// a Joined event for every current member. memberlist calls back with its
// locks held, so events are queued per subscriber and the cluster never
// waits for one. A subscriber that falls Config.EventBuffer events behind
// gets a single Resync event in place of its queue and should read
// Node.Members to reconcile. A member that calls Leave is seen as Left; one
// that stops answering, as Failed.
//
// # Members as backends
//
// A load balancer names its pools "domain/subDomain" (Member.Pool) and reads
// the conventional properties PropHTTPPort, PropHTTPSPort,
// PropBackendServerURL and PropMgtConsoleURL. The properties, domain and
// sub-domain share memberlist's 512-byte metadata limit (MaxMetaSize).
//
// # Application messages
//
// Nodes whose Config.Messages is set are message peers (Member.Messages,
// Node.MessagePeers). membership carries their messages without reading
// them, for a program that keeps some state in step between its instances
// — a load balancer's learned sessions, say:
//
//	cfg.Messages = handler // a MessageHandler
//	node, err := membership.Join(ctx, cfg)
//	…
//	err = node.Broadcast(msg) // to every other message peer, best effort
//	err = node.RequestState(ctx, peer.Name) // peer's State reaches handler.MergeState
//
// Broadcast queues a message of up to MaxMessageSize bytes and never
// blocks: a message goes to each peer at once when the node is not already
// sending, and those queued meanwhile go together packed in UDP datagrams;
// a full queue (Config.MessageQueue) sheds them with
// ErrMessageQueueFull. A datagram lost is lost; a node that missed some,
// or just joined, catches up with RequestState, which fetches another
// peer's state in pieces of up to MaxStatePiece bytes over streams, with
// flow control, and hands them to MergeState in order. HandleMessage and
// MergeState are never called concurrently. Messages travel like the
// rest of the node's traffic, labelled with the domain and encrypted with
// SecretKey when it is set; without a key, anyone who can reach the port
// can send messages in a member's name. What does not parse, or does not
// come from a message peer, is dropped and counted in Health.
//
// # Tests
//
// Package membertest is an in-memory network: a test runs a 50-node cluster
// in one process without sockets, cuts and heals partitions, loses and
// delays packets, and, inside a testing/synctest bubble, does so in virtual
// time. Set Config.Transport to its Network.Bind.
//
// # Concurrency and ownership
//
// A Node's methods are safe for concurrent use. Join starts the node's
// goroutines and Close (or Leave) stops them all, memberlist's included,
// before it returns: a test in a testing/synctest bubble may end right
// after Close. A probe memberlist has in flight waits out its probe
// interval, so Close may take Timing.ProbeInterval (scaled by
// Health().Score) when the node has other members. The
// package keeps no global state and never writes to stdout; it logs through
// Config.Logger. memberlist logs one line per packet it cannot read, so
// anyone who reaches the port could fill the log: those lines are counted
// per source address instead, and logged at Warn once per
// Config.ForeignLogInterval.
package membership
