package membership

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/sync/errgroup"
)

// Leave tells the cluster the node is leaving, waits until the message has
// been gossiped, no other member is alive, or ctx ends (with no deadline,
// at most Timing.TCPTimeout), and closes the node. The others see a Left
// event rather than Failed: the node first announces its departure in its
// metadata, each member then gets a notice over a stream (JoinParallel at
// a time, within half the time), then memberlist's leave message is
// gossiped. A message counts as gossiped once memberlist has sent it as
// many times as it retransmits one (Timing.RetransmitMult scaled by the
// cluster size). A node with no other alive member — the last of its
// cluster, or one of several stopped together — returns at once.
//
// Leave returns ErrClosed when the node was already closed, and an error
// wrapping ctx's error when ctx ended, or the time was up, before the leave
// message was gossiped while other members were still alive; the node is
// closed in every case.
func (n *Node) Leave(ctx context.Context) error {
	if n.closed.Load() {
		return ErrClosed
	}
	// Stop the rejoin loop so it does not join again; Close waits for it.
	n.cancel()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.Timing.TCPTimeout)
		defer cancel()
	}
	if ctx.Err() != nil {
		return errors.Join(fmt.Errorf("membership: leave: %w", context.Cause(ctx)), n.Close())
	}
	deadline, _ := ctx.Deadline()
	half := time.Until(deadline) / 2
	// Announce the departure in the metadata first, and give the update
	// half the time to spread: memberlist's leave message replaces it in
	// the gossip queue, and the others tell Left from Failed by it.
	n.mu.Lock()
	b, merr := meta{Domain: n.cfg.Domain, SubDomain: n.cfg.SubDomain, Properties: n.props, Leaving: true}.encode()
	if merr == nil {
		n.meta = b
	}
	n.mu.Unlock()
	if merr == nil {
		// memberlist waits for its broadcast without regard to members
		// that leave meanwhile (it gossips to none in state Left, so the
		// wait of several nodes stopped together runs to its timeout):
		// it is given no time, and awaitGossip waits instead.
		n.ml.UpdateNode(time.Nanosecond)
		actx, cancel := context.WithTimeout(ctx, half)
		if err := n.awaitGossip(actx); err != nil {
			n.log.Debug("membership: leave announcement not fully gossiped", "err", err)
		}
		cancel()
	}
	n.noticeLeave(ctx, half)
	var err error
	n.ml.Leave(time.Nanosecond) // as UpdateNode above
	if gerr := n.awaitGossip(ctx); gerr != nil {
		err = fmt.Errorf("membership: leave: leave message not gossiped to the members still alive: %w", gerr)
	}
	return errors.Join(err, n.Close())
}

// awaitGossip waits until memberlist has sent what it had queued for gossip
// as many times as it retransmits a message, until no member other than
// the node is alive, or until ctx ends, which it then returns the cause of.
func (n *Node) awaitGossip(ctx context.Context) error {
	start := n.sent.Load()
	// The signal wakes one waiter; a second (Leave called twice at once)
	// looks again every gossip round.
	tick := time.NewTicker(n.cfg.Timing.GossipInterval)
	defer tick.Stop()
	for {
		alive := n.ml.NumMembers()
		if alive <= 1 || n.sent.Load()-start >= int64(retransmitLimit(n.cfg.Timing.RetransmitMult, alive)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-n.gossip:
		case <-tick.C:
		}
	}
}

// retransmitLimit is how many times memberlist sends a broadcast in a
// cluster of n members: mult × ceil(log10(n+1)), as memberlist's own
// retransmitLimit.
func retransmitLimit(mult, n int) int {
	return mult * int(math.Ceil(math.Log10(float64(n+1))))
}

// leaveNotice starts the user message a leaving node sends every member
// directly, followed by its name: gossip gives no order between the
// metadata update and memberlist's leave message, a direct stream does.
const leaveNotice = 'L'

// noticeLeave tells every member over a stream, JoinParallel at a time and
// within d or until ctx ends, that this node is leaving.
func (n *Node) noticeLeave(ctx context.Context, d time.Duration) {
	msg := append([]byte{leaveNotice}, n.name...)
	ctx, cancel := context.WithTimeout(ctx, d)
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
