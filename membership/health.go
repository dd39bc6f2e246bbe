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
