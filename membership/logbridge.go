package membership

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// logBridge turns memberlist's log lines, "[LEVEL] memberlist: message",
// into slog records at the matching level. Lines about packets and streams
// memberlist could not read go to foreign, which counts them per source
// (memberlist writes one per packet, and anyone who reaches the port can
// send packets); a line that follows one of those about the same stream is
// logged at Debug. Once the node is closed, memberlist's goroutines that
// are still ending report the closed transport ("use of closed network
// connection") as errors; those are the shutdown itself, not a fault, so
// whatever memberlist logs after Close is logged at Debug. A stream that
// ended before its first byte reads to memberlist as one without a cluster
// label; a member that shuts down while it dials sends one, so when it
// comes from the address of a member, or of one that left or failed within
// Timing.GossipToTheDeadTime, its line is logged at Debug, not counted
// (from any other address, a port scan say, it is counted as foreign).
// Lines about packets dropped because memberlist's handler queue was full
// go to the node's overflowLog.
type logBridge struct {
	l       *slog.Logger
	closed  *atomic.Bool         // nil: never closed
	foreign *foreignLog          // nil: every line is logged
	node    atomic.Pointer[Node] // set once the node listens; nil: no stream is known to be a member's
}

// suspectLine and suspectEnd frame memberlist's line about a member whose
// probe went unanswered: "Suspect <name> has failed, no acks received".
const (
	suspectLine = "Suspect "
	suspectEnd  = " has failed, no acks received"
)

// emptyStreamLine starts memberlist's line about a stream without a label,
// as it logs one that ended before its first byte.
const emptyStreamLine = `discarding stream with unacceptable label "": from=`

// Write logs one of memberlist's lines.
func (b *logBridge) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			switch msg[1:i] {
			case "TRACE", "DEBUG":
				level = slog.LevelDebug
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			msg = strings.TrimSpace(msg[i+1:])
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	if level > slog.LevelDebug && strings.HasPrefix(msg, handlerQueueFullLine) {
		if n := b.node.Load(); n != nil && n.overflow.add(msg) {
			return len(p), nil
		}
	}
	if level > slog.LevelDebug && strings.HasPrefix(msg, emptyStreamLine) {
		if n := b.node.Load(); n != nil && n.memberEmptyStream(msg[len(emptyStreamLine):]) {
			level = slog.LevelDebug
		}
	}
	if level == slog.LevelInfo && strings.HasPrefix(msg, suspectLine) && strings.HasSuffix(msg, suspectEnd) {
		// A member that left stops answering probes; one in flight as it
		// went reports it as suspect, which is the departure, not a fault.
		if n := b.node.Load(); n != nil && n.departing(msg[len(suspectLine):len(msg)-len(suspectEnd)]) {
			level = slog.LevelDebug
		}
	}
	if b.foreign != nil && level > slog.LevelDebug {
		switch kind := classify(msg); kind {
		case unreadPacket, unreadStream:
			if !b.l.Enabled(context.Background(), slog.LevelWarn) || b.foreign.add(kind, msg) {
				return len(p), nil
			}
		case unreadFollowUp:
			level = slog.LevelDebug
		}
	}
	if level > slog.LevelDebug && b.closed != nil && b.closed.Load() {
		level = slog.LevelDebug
	}
	if !b.l.Enabled(context.Background(), level) {
		return len(p), nil
	}
	b.l.Log(context.Background(), level, msg, "component", "memberlist")
	return len(p), nil
}

// memberEmptyStream reports whether a stream from the address from
// (host:port), still open, ended before its first byte and came from the
// address of a member other than the node, or of one that left or failed
// within Timing.GossipToTheDeadTime: that member shut down while it
// dialled.
func (n *Node) memberEmptyStream(from string) bool {
	if n.tr == nil || !n.tr.emptyStream(from) {
		return false
	}
	ap, err := netip.ParseAddrPort(from)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, m := range n.hub.snapshot() {
		if m.Name != n.name && m.Addr.Addr() == ip {
			return true
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	at, ok := n.gone[ip]
	return ok && time.Since(at) <= n.cfg.Timing.GossipToTheDeadTime
}

// departing reports whether member name sent a leave notice, or left
// within Timing.GossipToTheDeadTime.
func (n *Node) departing(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.leaving[name] {
		return true
	}
	at, ok := n.left[name]
	return ok && time.Since(at) <= n.cfg.Timing.GossipToTheDeadTime
}

// noteLeft records that member name left, for departing, bounded as
// noteGone's record is.
func (n *Node) noteLeft(name string, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.left == nil {
		n.left = make(map[string]time.Time)
	}
	oldest := ""
	for k, at := range n.left {
		if now.Sub(at) > n.cfg.Timing.GossipToTheDeadTime {
			delete(n.left, k)
		} else if oldest == "" || at.Before(n.left[oldest]) {
			oldest = k
		}
	}
	if len(n.left) >= 4096 {
		delete(n.left, oldest)
	}
	n.left[name] = now
}

// noteGone records that the member at ip left or failed, for
// memberEmptyStream. n.mu is held. The record is bounded: entries older
// than Timing.GossipToTheDeadTime are dropped, and past 4096 addresses the
// oldest goes.
func (n *Node) noteGone(ip netip.Addr, now time.Time) {
	if n.gone == nil {
		n.gone = make(map[netip.Addr]time.Time)
	}
	var oldest netip.Addr
	for a, at := range n.gone {
		if now.Sub(at) > n.cfg.Timing.GossipToTheDeadTime {
			delete(n.gone, a)
		} else if !oldest.IsValid() || at.Before(n.gone[oldest]) {
			oldest = a
		}
	}
	if len(n.gone) >= 4096 {
		delete(n.gone, oldest)
	}
	n.gone[ip] = now
}
