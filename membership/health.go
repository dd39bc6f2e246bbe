package membership

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
	// and WKAAlive how many of them are alive members. A host name counts
	// as the addresses it last resolved to (at Join, and in the rejoin loop
	// every RejoinInterval); one that did not resolve counts as none.
	WKA, WKAAlive int
	// Port is the port the node listens on, and ConfiguredPort the
	// Config.Port it was given (0: any free port). They differ when the
	// configured port was taken and PortRetries moved the node: well-known
	// member lists that name the configured port then reach whatever holds
	// it, not this node.
	Port, ConfiguredPort int
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
	// HandlerQueueDropped is the number of packets memberlist dropped
	// unread because its handler queue was full (its HandoffQueueDepth,
	// 1024 packets): gossip or message datagrams came faster than the node
	// handled them. They are logged at Warn once per
	// Config.ForeignLogInterval.
	HandlerQueueDropped int64

	// The counters of application messages (Config.Messages); for a node
	// without them, all stay zero but MessagesDropped and
	// StateRequestsRefused.

	// MessagesSent is the number of Broadcast messages the node sent out,
	// each counted once whatever the number of peers it went to; messages
	// flushed while the node had no message peer are not counted.
	MessagesSent int64
	// MessagesReceived is the number of messages handed to
	// MessageHandler.HandleMessage.
	MessagesReceived int64
	// MessagesShed is the number of Broadcast calls refused with
	// ErrMessageQueueFull.
	MessagesShed int64
	// MessagesDropped is the number of user messages — a datagram of
	// Broadcast messages, or one message of a state transfer — the node
	// dropped unread: one that does not parse, of an unknown type, from a
	// node that is not a message peer (or to a node that is not one), or
	// that belongs to no request or answer in progress (a late answer to a
	// request that ended, say).
	MessagesDropped int64
	// StateRequestsServed is the number of RequestState calls of other
	// members this node answered in full, and StateRequestsRefused the
	// number it refused (two answers were already running, or the node
	// takes no messages) or cut short (the requester gave up or stopped
	// acknowledging, a piece was too large, Close).
	StateRequestsServed, StateRequestsRefused int64
}

// Health returns the node's current figures.
func (n *Node) Health() Health {
	h := Health{
		Members:        n.hub.count(),
		Score:          n.ml.GetHealthScore(),
		PacketBytes:    n.tr.packets.Load(),
		StreamBytes:    n.tr.streams.Load(),
		DroppedEvents:  n.hub.droppedEvents(),
		Port:           int(n.addr.Port()),
		ConfiguredPort: n.cfg.Port,

		HandlerQueueDropped:  n.overflow.total.Load(),
		MessagesSent:         n.msgs.sent.Load(),
		MessagesReceived:     n.msgs.received.Load(),
		MessagesShed:         n.msgs.shed.Load(),
		MessagesDropped:      n.msgs.dropped.Load(),
		StateRequestsServed:  n.msgs.served.Load(),
		StateRequestsRefused: n.msgs.refused.Load(),
	}
	if r := n.resolved.Load(); r != nil && r.from == n.wka.Load() {
		h.WKA = len(r.addrs)
		for _, a := range r.addrs {
			if n.present(a) {
				h.WKAAlive++
			}
		}
		return h
	}
	// The list from SetWKA has not been resolved yet: count its addresses.
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
