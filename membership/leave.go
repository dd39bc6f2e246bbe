package membership

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/sync/errgroup"
)

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
