package membership

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks for a node.
type delegate struct{ n *Node }

// NodeMeta returns the encoded domain, sub-domain and properties, which
// SetProperties keeps within the limit.
func (d *delegate) NodeMeta(limit int) []byte {
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	return d.n.meta
}

// NotifyMsg records leave notices and hands the node's other user
// messages, application messages and state transfers, to the messenger,
// which drops and counts what it cannot read. memberlist calls it from its
// packet handler and from the goroutine of each stream, concurrently.
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) == 0 || b[0] != leaveNotice {
		d.n.msgs.receive(b)
		return
	}
	if len(b) < 2 {
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

// GetBroadcasts has nothing to add to memberlist's packets. memberlist
// asks once per packet it sends with room left, after it has put its own
// queued broadcasts in; counting the calls tells Leave how many times those
// have gone out.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	d.n.sent.Add(1)
	d.n.signalGossip()
	return nil
}

// LocalState has no state of the node's own to exchange.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState has nothing to merge.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

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
			d.n.noteLeft(p.Name, time.Now())
		}
		d.n.hub.publish(e)
	}
	if p.Name != d.n.name {
		now := time.Now()
		d.n.mu.Lock()
		d.n.departed = now
		if ip, ok := netip.AddrFromSlice(p.Addr); ok {
			d.n.noteGone(ip.Unmap(), now)
		}
		d.n.mu.Unlock()
	}
	select {
	case d.n.wake <- struct{}{}:
	default:
	}
	d.n.signalGossip()
}

// signalGossip wakes a Leave waiting for its broadcasts to go out.
func (n *Node) signalGossip() {
	select {
	case n.gossip <- struct{}{}:
	default:
	}
}
