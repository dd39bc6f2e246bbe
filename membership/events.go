package membership

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// EventType says what happened to a member.
type EventType int

// The event types.
const (
	// Joined: a member appeared, or came back after failing or leaving.
	Joined EventType = iota + 1
	// Updated: a member changed its properties (SetProperties) or address.
	Updated
	// Left: a member left gracefully (Leave).
	Left
	// Failed: a member stopped answering and was declared dead.
	Failed
	// Resync: the subscriber fell behind, events were dropped, and it
	// should read Members() and reconcile. Event.Member is zero.
	Resync
)

// String returns "joined", "updated", "left", "failed" or "resync".
func (t EventType) String() string {
	switch t {
	case Joined:
		return "joined"
	case Updated:
		return "updated"
	case Left:
		return "left"
	case Failed:
		return "failed"
	case Resync:
		return "resync"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is a change in the membership seen by a node.
type Event struct {
	Type   EventType
	Member Member // the member after the change; zero for Resync
}

// String describes the event: "joined 10.0.0.2:4000 (wso2.esb.domain/worker 10.0.0.2:4000)".
func (e Event) String() string {
	if e.Type == Resync {
		return "resync"
	}
	return fmt.Sprintf("%s %s (%s %v)", e.Type, e.Member.Name, e.Member.Pool(), e.Member.Addr)
}

// ErrClosed is returned by Watch, SetProperties, SetWKA and Leave on a node
// that has been closed.
var ErrClosed = errors.New("membership: node closed")

// hub keeps the node's view of the members as the events left it, and fans
// events out to subscribers without ever blocking the publisher: memberlist
// calls its event delegate with its own locks held.
type hub struct {
	size int // queue bound per subscriber

	mu      sync.Mutex                // protects the fields below
	members map[string]Member         // current members by name, as the events left them
	byAddr  map[netip.AddrPort]string // name of the member at each address
	subs    map[*subscriber]struct{}
	closed  bool
	dropped int64 // events dropped for slow subscribers, for Health
}

type subscriber struct {
	queue  []Event       // pending events; guarded by hub.mu
	signal chan struct{} // buffered 1: the queue is not empty, or the hub closed
}

func newHub(size int) *hub {
	return &hub{size: size, members: make(map[string]Member), byAddr: make(map[netip.AddrPort]string), subs: make(map[*subscriber]struct{})}
}

// publish records e and queues it for every subscriber. When a subscriber
// already has size events waiting, its queue is replaced by one Resync event.
func (h *hub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if old, ok := h.members[e.Member.Name]; ok && h.byAddr[old.Addr] == old.Name {
		delete(h.byAddr, old.Addr)
	}
	switch e.Type {
	case Joined, Updated:
		h.members[e.Member.Name] = e.Member
		h.byAddr[e.Member.Addr] = e.Member.Name
	case Left, Failed:
		delete(h.members, e.Member.Name)
	}
	for s := range h.subs {
		if len(s.queue) >= h.size {
			// Count what the subscriber will not see; a Resync at the head
			// was a notice, not a change.
			h.dropped += int64(len(s.queue)) + 1
			if s.queue[0].Type == Resync {
				h.dropped--
			}
			clear(s.queue)
			s.queue = append(s.queue[:0], Event{Type: Resync})
		} else {
			s.queue = append(s.queue, e)
		}
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
}

// subscribe registers a subscriber whose queue starts with a Joined event for
// every current member, in name order.
func (h *hub) subscribe() (*subscriber, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	s := &subscriber{signal: make(chan struct{}, 1)}
	for _, m := range h.members {
		s.queue = append(s.queue, Event{Type: Joined, Member: m})
	}
	slices.SortFunc(s.queue, func(a, b Event) int { return strings.Compare(a.Member.Name, b.Member.Name) })
	if len(s.queue) > 0 {
		s.signal <- struct{}{}
	}
	h.subs[s] = struct{}{}
	return s, nil
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// take returns and clears s's queue, and whether the hub is closed.
func (h *hub) take(s *subscriber) ([]Event, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q, h.closed
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
}

// snapshot returns the current members sorted by name. The Properties maps
// are shared: callers outside the package get copies.
func (h *hub) snapshot() []Member {
	h.mu.Lock()
	out := make([]Member, 0, len(h.members))
	for _, m := range h.members {
		out = append(out, m)
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// present reports whether a member other than self is at a.
func (h *hub) present(a netip.AddrPort, self string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	name, ok := h.byAddr[a]
	return ok && name != self
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.members)
}

func (h *hub) droppedEvents() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

// Watch calls fn for each membership event, in order, until ctx is done or
// the node is closed; it returns ctx.Err() or ErrClosed. The caller owns the
// goroutine Watch runs on (typically `go n.Watch(ctx, fn)`), and fn runs on
// it, so fn may block without holding up the cluster.
//
// The first events are a Joined event for every current member, self
// included, in name order, so a subscriber needs no separate call to
// Members to start. Events then queue for fn without bound on memberlist's
// side: the node never waits for a subscriber. When Config.EventBuffer events
// are already waiting, the queue is dropped and replaced by a single Resync
// event; a subscriber that sees Resync should read Members() and reconcile
// its view, after which the events that follow apply as usual. Events queued
// before Close are delivered before Watch returns ErrClosed.
//
// Any number of Watch calls may run at once, each with its own queue.
func (n *Node) Watch(ctx context.Context, fn func(Event)) error {
	s, err := n.hub.subscribe()
	if err != nil {
		return err
	}
	defer n.hub.unsubscribe(s)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.signal:
		}
		q, closed := n.hub.take(s)
		for _, e := range q {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fn(e)
		}
		if closed {
			// Nothing is published after close: q held the last events.
			return ErrClosed
		}
	}
}
