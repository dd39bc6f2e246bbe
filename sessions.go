package carbonlb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/membership"
)

// SessionSyncConfig configures a [SessionSync]. The zero value is ready to
// use.
type SessionSyncConfig struct {
	// MaxSessions bounds the session table, as balancer.Config.MaxSessions
	// does the built-in one. Zero means 1,048,576.
	MaxSessions int
	// StateTimeout bounds the fetch of one instance's table when Run
	// starts (membership.Node.RequestState). Zero means 60 seconds.
	StateTimeout time.Duration
	// Applied, when not nil, is called with every change that came from
	// another instance, after it was applied; fromState tells a change of
	// the table fetched at start from one broadcast as it happened. It is
	// called on membership's goroutines, never concurrently with itself
	// for broadcasts, and must not block. Meant for measurements and
	// tests.
	Applied func(c balancer.SessionChange, fromState bool)
	// Logger receives a record when Run has fetched a table (Info) or could
	// not (Warn). Nil means slog.Default().
	Logger *slog.Logger
}

// SessionSync shares the learned sessions (balancer.StickyLearn) of the
// balancer instances of one cluster: every session one instance learns,
// moves, refreshes or forgets is broadcast to the others
// ([membership.Node.Broadcast]), and an instance that starts fetches the
// live table of one that runs ([membership.Node.RequestState]), so a client
// may reach any instance, and an instance may restart, without losing its
// session. It joins a [balancer.SessionTable], the balancer's side, to a
// [membership.Node], the cluster's; neither knows the other.
//
// Use it in three steps: its Table is the balancer's Config.Sessions, it is
// the membership Config.Messages of the instance's node, and Run runs once
// the node has joined:
//
//	sync := carbonlb.NewSessionSync(carbonlb.SessionSyncConfig{})
//	cfg.Sessions = sync.Table() // cfg: the balancer.Config, in StickyLearn
//	lb, err := balancer.New(cfg)
//	…
//	mc.Messages = sync // mc: the node's membership.Config
//	node, err := membership.Join(ctx, mc)
//	…
//	go sync.Run(ctx, node)
//
// Replication is best effort and never slows a request: a change is encoded
// and queued on the request's goroutine; when the node's queue is full
// (membership.Config.MessageQueue) the change is not sent and counted as
// shed (Stats), and that session is known to this instance alone until it
// is refreshed (a busy session is sent again each quarter of its TTL). A
// datagram lost on the network loses its changes the same way. Expiry is
// not sent: each instance expires a session after the same TTL.
//
// Changes are accepted from any member that takes messages. With
// membership's SecretKey set, only members holding the key can send any;
// without it, anyone who reaches the cluster port can pin sessions, so
// set a key whenever the cluster port is reachable from outside.
//
// Its methods are safe for concurrent use.
type SessionSync struct {
	table   *balancer.SessionTable
	timeout time.Duration
	applied func(balancer.SessionChange, bool)
	logger  *slog.Logger
	node    atomic.Pointer[membership.Node]
	ready   chan struct{} // closed once Run has fetched a table or found none to fetch
	once    sync.Once     // closes ready

	sent, shed, unsent, received, rejected atomic.Uint64
	stateSessions, statePieces             atomic.Uint64
}

// SessionSyncStats counts what a SessionSync sent and received.
type SessionSyncStats struct {
	Sent     uint64 // changes queued for the other instances
	Shed     uint64 // changes not sent: the node's message queue was full
	Unsent   uint64 // changes made before Run had a node, or too large for a message
	Received uint64 // changes received in broadcasts and applied
	Rejected uint64 // messages or state records that did not decode
	// StateSessions and StatePieces count the sessions and pieces of the
	// tables fetched from other instances.
	StateSessions, StatePieces uint64
	// Sessions is the number of sessions in the table.
	Sessions int
}

var _ membership.MessageHandler = (*SessionSync)(nil)

// NewSessionSync returns a SessionSync with an empty table.
func NewSessionSync(cfg SessionSyncConfig) *SessionSync {
	s := &SessionSync{timeout: cfg.StateTimeout, applied: cfg.Applied, logger: cfg.Logger, ready: make(chan struct{})}
	if s.timeout <= 0 {
		s.timeout = time.Minute
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.table = balancer.NewSessionTable(cfg.MaxSessions, s.changed)
	return s
}

// Table returns the session table to give the balancer as
// balancer.Config.Sessions.
func (s *SessionSync) Table() *balancer.SessionTable { return s.table }

// Ready returns a channel closed once Run has fetched another instance's
// table, or found no instance to fetch one from, or tried them all. An
// instance that serves before then routes the sessions it has not yet
// received as unknown ones: report it unhealthy to whatever sends it
// clients until Ready is closed.
func (s *SessionSync) Ready() <-chan struct{} { return s.ready }

// Stats returns the counts so far.
func (s *SessionSync) Stats() SessionSyncStats {
	return SessionSyncStats{
		Sent: s.sent.Load(), Shed: s.shed.Load(), Unsent: s.unsent.Load(),
		Received: s.received.Load(), Rejected: s.rejected.Load(),
		StateSessions: s.stateSessions.Load(), StatePieces: s.statePieces.Load(),
		Sessions: s.table.Len(),
	}
}

// changed broadcasts a change of the table; it runs on request goroutines.
func (s *SessionSync) changed(c balancer.SessionChange) {
	n := s.node.Load()
	if n == nil {
		s.unsent.Add(1)
		return
	}
	// Broadcast copies the message: it can be built on the stack (a
	// session id past the array's size takes the heap).
	var buf [192]byte
	b := appendChange(append(buf[:0], syncVersion), c)
	switch err := n.Broadcast(b); {
	case err == nil:
		s.sent.Add(1)
	case errors.Is(err, membership.ErrMessageQueueFull):
		s.shed.Add(1)
	default: // too large, node closed
		s.unsent.Add(1)
	}
}

// HandleMessage applies a change another instance broadcast. It implements
// membership.MessageHandler.
func (s *SessionSync) HandleMessage(from string, msg []byte) {
	if len(msg) < 1 || msg[0] != syncVersion {
		s.rejected.Add(1)
		return
	}
	c, rest, err := readChange(msg[1:])
	if err != nil || len(rest) != 0 {
		s.rejected.Add(1)
		return
	}
	if s.table.Apply(widen(c)) != nil {
		s.rejected.Add(1)
		return
	}
	s.received.Add(1)
	if s.applied != nil {
		s.applied(c, false)
	}
}

// widen lengthens a received session's lifetime by a quarter: the
// instance that serves a session reports its refreshes only when they move
// its expiry by a quarter of the TTL (balancer.NewSessionTable), so the
// others must not expire it sooner than it does. A session forgotten is
// forgotten everywhere, not left to expire.
func widen(c balancer.SessionChange) balancer.SessionChange {
	if c.Backend != "" {
		c.TTL = min(c.TTL+c.TTL/4, maxSyncTTL)
	}
	return c
}

// State sends the live table in pieces. It implements
// membership.MessageHandler.
func (s *SessionSync) State(emit func(piece []byte) bool) {
	piece := make([]byte, 0, membership.MaxStatePiece)
	piece = append(piece, syncVersion)
	var rec []byte
	for c := range s.table.All() {
		rec = appendChange(rec[:0], c)
		if len(rec) > membership.MaxStatePiece-1 {
			continue // cannot be sent; Apply refuses such ids anyway
		}
		if len(piece)+len(rec) > membership.MaxStatePiece {
			if !emit(piece) {
				return
			}
			piece = append(piece[:0], syncVersion)
		}
		piece = append(piece, rec...)
	}
	if len(piece) > 1 {
		emit(piece)
	}
}

// MergeState applies a piece of another instance's table. It implements
// membership.MessageHandler.
func (s *SessionSync) MergeState(from string, piece []byte) {
	if len(piece) < 1 || piece[0] != syncVersion {
		s.rejected.Add(1)
		return
	}
	s.statePieces.Add(1)
	for b := piece[1:]; len(b) > 0; {
		c, rest, err := readChange(b)
		if err != nil {
			s.rejected.Add(1)
			return
		}
		b = rest
		if s.table.Apply(widen(c)) != nil {
			s.rejected.Add(1)
			continue
		}
		s.stateSessions.Add(1)
		if s.applied != nil {
			s.applied(c, true)
		}
	}
}

// Run sends this instance's changes through node and fetches the table of
// one other instance that takes messages (trying each in turn until one
// answers; none when it is the first), then closes Ready. From then on,
// when another instance appears that this one had not seen (it started
// later, or was out of reach), Run fetches its table too, so instances
// that learned sessions apart, as two started at once or the two sides of
// a healed partition do, end up with each other's. Run returns when ctx
// is done or node is closed, with ctx.Err() or membership.ErrClosed as
// membership.Node.Watch does; changes stop being sent when it returns.
// The node must have been joined with this SessionSync as its membership
// Config.Messages, and Run may run once at a time.
func (s *SessionSync) Run(ctx context.Context, node *membership.Node) error {
	if node == nil {
		return errors.New("carbonlb: SessionSync.Run: nil node")
	}
	if !s.node.CompareAndSwap(nil, node) {
		return errors.New("carbonlb: SessionSync.Run: already running")
	}
	defer s.node.Store(nil)
	defer s.once.Do(func() { close(s.ready) })
	seen := make(map[string]bool) // the message peers whose table is in
	peers := node.MessagePeers()
	for _, p := range peers {
		seen[p.Name] = true
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	for _, p := range peers {
		if s.fetch(ctx, node, p.Name) == nil || ctx.Err() != nil {
			break
		}
	}
	s.once.Do(func() { close(s.ready) })
	return node.Watch(ctx, func(e membership.Event) {
		m := e.Member
		switch {
		case m.Name == node.Name():
		case e.Type == membership.Left || e.Type == membership.Failed:
			delete(seen, m.Name) // back later, it is new again
		case e.Type == membership.Resync:
			clear(seen) // some departures may have been missed
			for _, p := range node.MessagePeers() {
				seen[p.Name] = true
			}
		case (e.Type == membership.Joined || e.Type == membership.Updated) && m.Messages && !seen[m.Name]:
			seen[m.Name] = true
			s.fetch(ctx, node, m.Name)
		}
	})
}

// fetch merges the table of instance name into this one's.
func (s *SessionSync) fetch(ctx context.Context, node *membership.Node, name string) error {
	start, before := time.Now(), s.stateSessions.Load()
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	err := node.RequestState(rctx, name)
	cancel()
	switch {
	case err == nil:
		s.logger.Info("sessions fetched", "from", name, "sessions", s.stateSessions.Load()-before,
			"took", time.Since(start).Round(time.Millisecond))
	case ctx.Err() == nil:
		s.logger.Warn("sessions not fetched", "from", name, "err", err)
	}
	return err
}

// The encoding of a change, in a broadcast message (the version byte, then
// one change) and in a state piece (the version byte, then changes back
// to back): a kind byte, then for a pin the remaining TTL in seconds, the
// pool, the backend and the session id, for a forget the pool and the id;
// each string is its length as a uvarint, then its bytes.
const (
	syncVersion = 1
	kindPin     = 'P'
	kindForget  = 'F'
)

// maxSyncTTL caps a received TTL: a day is beyond any session's idle
// lifetime, and a peer must not pin a session forever.
const maxSyncTTL = 24 * time.Hour

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendChange(b []byte, c balancer.SessionChange) []byte {
	if c.Backend == "" {
		b = append(b, kindForget)
		b = appendString(b, c.Pool)
		return appendString(b, c.ID)
	}
	b = append(b, kindPin)
	b = binary.AppendUvarint(b, uint64((c.TTL+time.Second-1)/time.Second))
	b = appendString(b, c.Pool)
	b = appendString(b, c.Backend)
	return appendString(b, c.ID)
}

var errBadChange = errors.New("malformed session change")

func readUvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, errBadChange // truncated, or over 64 bits
	}
	return v, b[n:], nil
}

func readString(b []byte) (string, []byte, error) {
	n, b, err := readUvarint(b)
	if err != nil || n == 0 || n > uint64(len(b)) {
		return "", nil, errBadChange
	}
	return string(b[:n]), b[n:], nil
}

// readChange decodes one change and returns the bytes after it. Every
// string must be non-empty.
func readChange(b []byte) (c balancer.SessionChange, rest []byte, err error) {
	if len(b) == 0 {
		return c, nil, errBadChange
	}
	kind, b := b[0], b[1:]
	switch kind {
	case kindPin:
		var ttl uint64
		if ttl, b, err = readUvarint(b); err != nil {
			return c, nil, err
		}
		c.TTL = maxSyncTTL
		if ttl < uint64(maxSyncTTL/time.Second) {
			c.TTL = time.Duration(ttl) * time.Second
		}
		if c.Pool, b, err = readString(b); err != nil {
			return c, nil, err
		}
		if c.Backend, b, err = readString(b); err != nil {
			return c, nil, err
		}
	case kindForget:
		if c.Pool, b, err = readString(b); err != nil {
			return c, nil, err
		}
	default:
		return c, nil, fmt.Errorf("%w: kind %#x", errBadChange, kind)
	}
	if c.ID, b, err = readString(b); err != nil {
		return c, nil, err
	}
	return c, b, nil
}
