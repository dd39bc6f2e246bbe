package membership

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// MessageHandler receives a node's application messages (Config.Messages).
// The node does not interpret them: what they mean is the program's
// business.
type MessageHandler interface {
	// HandleMessage is called with one message another member sent with
	// Broadcast; from is that member's name. Calls are never concurrent
	// with each other or with MergeState. It must not block: it runs on
	// the goroutine that reads the cluster's packets. It must not keep msg
	// after it returns. msg holds at most MaxMessageSize bytes.
	HandleMessage(from string, msg []byte)

	// State calls emit with the node's application state, in pieces of at
	// most MaxStatePiece bytes, for a member that asked with RequestState.
	// It stops early when emit returns false: the asking member gave up or
	// is gone, a piece was too large, or the node is closing. Each piece
	// reaches the asking member's MergeState on its own, so each must make
	// sense alone. emit sends the piece before it returns, so State may
	// reuse the slice; it may block while the asking member catches up.
	// emit must be called on State's goroutine only, and not after State
	// returns. State is called on a goroutine of its own, at most a couple
	// at a time, and may run concurrently with HandleMessage and
	// MergeState. Close waits for State calls in progress, so State should
	// return soon after emit reports false.
	State(emit func(piece []byte) bool)

	// MergeState is called with each piece of the state a member (from)
	// sent in answer to this node's RequestState, in the order State
	// emitted them. Calls are never concurrent with each other or with
	// HandleMessage, and should not block for long: HandleMessage waits
	// meanwhile. It must not keep piece after it returns. piece holds at
	// most MaxStatePiece bytes.
	MergeState(from string, piece []byte)
}

// MaxMessageSize is the size in bytes of the largest message Broadcast
// takes: small enough that a message and its framing fit in one UDP
// datagram with memberlist's, a cluster label and encryption.
const MaxMessageSize = 1024

// MaxStatePiece is the size in bytes of the largest piece
// MessageHandler.State may emit.
const MaxStatePiece = 64 << 10

// Errors of Broadcast and RequestState.
var (
	// ErrMessageTooLarge is returned by Broadcast, wrapped, for a message
	// of more than MaxMessageSize bytes.
	ErrMessageTooLarge = errors.New("membership: message too large")
	// ErrMessageQueueFull is returned by Broadcast when the queue holds
	// Config.MessageQueue bytes; the message is shed.
	ErrMessageQueueFull = errors.New("membership: message queue full")
	// ErrNoMessages is returned by Broadcast and RequestState on a node
	// whose Config.Messages is nil.
	ErrNoMessages = errors.New("membership: node takes no messages (Config.Messages is nil)")
	// ErrNotMessagePeer is wrapped by the error of RequestState when the
	// member named is not, or is no longer, a live member that takes
	// messages.
	ErrNotMessagePeer = errors.New("membership: not a message peer")
	// ErrStateRefused is wrapped by the error of RequestState when the
	// member refused the request (it already answers as many as it runs at
	// once, or takes no messages) or stopped its answer before the end.
	ErrStateRefused = errors.New("membership: state request refused")
)

// The type bytes that start the node's user messages, after leaveNotice:
// each is followed by the sender's name (a uvarint length and its bytes),
// then by its body.
const (
	msgBatch        = 'B' // frames: a uvarint length and that many bytes, one or more
	msgStateRequest = 'Q' // request id (8 bytes, big-endian)
	msgStatePiece   = 'P' // request id, uvarint sequence number, the piece
	msgStateEnd     = 'E' // request id, uvarint number of pieces sent
	msgStateRefused = 'R' // request id, one byte of reason
	msgStateAck     = 'A' // request id, uvarint number of pieces merged
	msgStateCancel  = 'C' // request id
)

const (
	// udpBufferSize is memberlist's UDPBufferSize in DefaultLANConfig, the
	// datagram size the node keeps to (Join does not change it).
	udpBufferSize = 1400

	// maxBatch is the size in bytes of the largest batch a node accepts.
	// A batch the node sends is at most one datagram, or one message with
	// its header when a message alone does not fit; a stream could carry
	// more, and this bounds how long one batch holds MergeState back.
	maxBatch = 64 << 10
)

// batchBudget returns the size in bytes a batch may take so that its
// datagram fits in udpBufferSize: memberlist adds a user-message type byte
// and a checksum header, a cluster label header when label is set, and
// encryption's header, padding and tag (version 0, the largest).
func batchBudget(label string, encrypted bool) int {
	b := udpBufferSize - 1 - 5
	if label != "" {
		b -= 2 + len(label)
	}
	if encrypted {
		b -= 45
	}
	return b
}

// messenger carries a node's application messages: the Broadcast queue
// and the goroutine that flushes it, the state requests the node waits on
// and the state answers it runs, and their counters.
type messenger struct {
	n      *Node
	h      MessageHandler // Config.Messages; nil: the node takes no messages
	limit  int            // Config.MessageQueue
	budget int            // batchBudget for the node
	header []byte         // msgBatch and the node's name, the start of every batch

	mu      sync.Mutex // protects pending, spare and queued
	pending []byte     // framed messages waiting for the flush goroutine
	spare   []byte     // the buffer of the last flush, reused by the next
	queued  int        // bytes in pending and in the flush in progress

	kick     chan struct{}  // buffered 1: pending stopped being empty, or passed a batch's worth
	stop     chan struct{}  // closed by halt
	haltOnce sync.Once      // closes stop
	wg       sync.WaitGroup // the flush goroutine and the state answers

	// The flush goroutine's own buffers, reused from one flush to the next.
	targets []memberlist.Node
	batch   []byte

	deliver     sync.Mutex // held while HandleMessage or MergeState runs; protects deliverDown
	deliverDown bool       // set by wait: the handler is not called again

	smu      sync.Mutex               // protects requests, answers and down
	requests map[uint64]*stateRequest // this node's RequestState calls, by id
	answers  map[uint64]*stateAnswer  // the answers this node runs, by request id
	down     bool                     // set by wait: no answer starts

	sent, received, shed, dropped atomic.Int64 // see Health
	served, refused               atomic.Int64 // see Health
}

// newMessenger returns the messenger of node n, whose name, Domain,
// SecretKey and Messages are set. start starts its flush goroutine.
func newMessenger(n *Node) *messenger {
	return &messenger{
		n:        n,
		h:        n.cfg.Messages,
		limit:    n.cfg.MessageQueue,
		budget:   batchBudget(n.cfg.Domain, len(n.cfg.SecretKey) > 0),
		header:   appendHeader(nil, msgBatch, n.name),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		requests: make(map[uint64]*stateRequest),
		answers:  make(map[uint64]*stateAnswer),
	}
}

// start starts the flush goroutine when the node takes messages.
func (m *messenger) start() {
	if m.h == nil {
		return
	}
	m.wg.Add(1)
	go m.flushLoop()
}

// halt tells the flush goroutine, the state answers and the RequestState
// calls to end, without waiting for them.
func (m *messenger) halt() { m.haltOnce.Do(func() { close(m.stop) }) }

// wait halts m and waits until its goroutines have ended; once it returns,
// the handler is not called again.
func (m *messenger) wait() {
	m.halt()
	m.smu.Lock()
	m.down = true
	m.smu.Unlock()
	m.wg.Wait()
	m.deliver.Lock()
	m.deliverDown = true
	m.deliver.Unlock()
}

// Broadcast queues msg for every live message peer but this node (see
// MessagePeers); it copies msg. It never blocks: when the queue holds
// Config.MessageQueue bytes it returns ErrMessageQueueFull and counts the
// message as shed (Health.MessagesShed). It returns an error wrapping
// ErrMessageTooLarge for a message of more than MaxMessageSize bytes,
// ErrNoMessages when Config.Messages is nil, and ErrClosed after Close.
//
// Delivery is best effort: messages go as UDP datagrams through memberlist,
// encrypted and labelled like the rest of the node's traffic when
// SecretKey and Domain are set, and a datagram lost is not sent again.
// A message goes at once when the node's sending goroutine is idle;
// messages queued while it sends are packed into as few datagrams as fit,
// each within memberlist's UDP budget of 1,400 bytes less its own, the
// label's and encryption's overhead, and go with its next flush. Messages
// from one node usually arrive in the order it sent them, but neither order
// nor arrival is promised. Messages queued at Close may be dropped.
//
// Broadcast is safe for concurrent use and cheap enough for a request
// path: it takes a lock for a copy, allocates nothing once the queue's
// buffers have grown, and does no I/O: a goroutine of the node sends.
func (n *Node) Broadcast(msg []byte) error {
	m := n.msgs
	if m.h == nil {
		return ErrNoMessages
	}
	if len(msg) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrMessageTooLarge, len(msg), MaxMessageSize)
	}
	if n.closed.Load() {
		return ErrClosed
	}
	cost := len(msg) + uvarintLen(uint64(len(msg)))
	m.mu.Lock()
	if m.queued+cost > m.limit {
		m.mu.Unlock()
		m.shed.Add(1)
		return ErrMessageQueueFull
	}
	first := len(m.pending) == 0
	m.pending = appendFrame(m.pending, msg)
	m.queued += cost
	m.mu.Unlock()
	if first { // the sending goroutine takes all that follows with it
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// MessagePeers returns the live members, this node excluded, whose
// Config.Messages is set: those Broadcast sends to, sorted by name. The
// result is a copy the caller may keep. Safe for concurrent use.
func (n *Node) MessagePeers() []Member {
	var out []Member
	for _, mb := range n.Members() {
		if mb.Messages && mb.Name != n.name {
			out = append(out, mb)
		}
	}
	return out
}

// flushLoop sends what Broadcast queues as soon as it can: a message that
// finds the goroutine idle goes at once, alone, and the messages queued
// while it sends go together in the next flush. So a message waits for no
// timer, and under load batches fill by themselves: the datagrams per
// second stay bounded by how fast the goroutine sends, not by the rate of
// messages.
func (m *messenger) flushLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case <-m.kick:
		}
		m.flush()
	}
}

// flush sends the queued messages to every message peer, packed into
// batches of at most m.budget bytes (a message that does not fit in an
// empty batch goes alone). It runs on the flush goroutine only.
func (m *messenger) flush() {
	m.mu.Lock()
	buf := m.pending
	m.pending, m.spare = m.spare[:0], nil
	m.mu.Unlock()
	if len(buf) > 0 {
		m.targets = m.peers(m.targets[:0])
		var sent int64
		for rest := buf; len(rest) > 0; {
			batch := append(m.batch[:0], m.header...)
			k := 0
			for len(rest) > 0 {
				l, w := binary.Uvarint(rest) // framed by Broadcast
				size := w + int(l)
				if k > 0 && len(batch)+size > m.budget {
					break
				}
				batch = append(batch, rest[:size]...)
				rest = rest[size:]
				k++
			}
			m.batch = batch
			if len(m.targets) > 0 {
				sent += int64(k)
			}
			for i := range m.targets {
				if err := m.n.ml.SendBestEffort(&m.targets[i], batch); err != nil {
					m.debug("membership: message batch not sent", "member", m.targets[i].Name, "err", err)
				}
			}
		}
		m.sent.Add(sent)
	}
	m.mu.Lock()
	m.queued -= len(buf)
	m.spare = buf[:0]
	m.mu.Unlock()
}

// peers appends to dst the message peers other than the node, as
// memberlist addresses them.
func (m *messenger) peers(dst []memberlist.Node) []memberlist.Node {
	h := m.n.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.members {
		if p.Messages && p.Name != m.n.name {
			dst = append(dst, memberlist.Node{Name: p.Name, Addr: p.Addr.Addr().AsSlice(), Port: p.Addr.Port()})
		}
	}
	return dst
}

// peer returns the member named name when it is a message peer other than
// the node. It allocates nothing.
func (m *messenger) peer(name []byte) (Member, bool) {
	h := m.n.hub
	h.mu.Lock()
	p, ok := h.members[string(name)]
	h.mu.Unlock()
	return p, ok && p.Messages && p.Name != m.n.name
}

// receive handles one of the node's user messages other than a leave
// notice, from a datagram or a stream. What does not parse, is of an
// unknown type or comes from no message peer is dropped and counted.
func (m *messenger) receive(b []byte) {
	if err := m.dispatch(b); err != nil {
		m.dropped.Add(1)
		m.debug("membership: message dropped", "err", err)
	}
}

// dispatch hands a user message to its handler, or says why it is dropped.
func (m *messenger) dispatch(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty message")
	}
	typ := b[0]
	switch typ {
	case msgBatch:
		return m.receiveBatch(b)
	case msgStateRequest, msgStatePiece, msgStateEnd, msgStateRefused, msgStateAck, msgStateCancel:
	default:
		return fmt.Errorf("unknown message type %#x", typ)
	}
	name, body, err := splitHeader(b)
	if err != nil {
		return err
	}
	p, ok := m.peer(name)
	if !ok {
		return fmt.Errorf("message type %q from %q, not a message peer", typ, name)
	}
	return m.receiveState(typ, p, body)
}

// receiveBatch hands the messages of batch b to HandleMessage, all or
// none of them.
func (m *messenger) receiveBatch(b []byte) error {
	if m.h == nil {
		return errors.New("batch for a node that takes no messages")
	}
	name, frames, count, err := decodeBatch(b)
	if err != nil {
		return err
	}
	p, ok := m.peer(name)
	if !ok {
		return fmt.Errorf("batch from %q, not a message peer", name)
	}
	m.deliver.Lock()
	defer m.deliver.Unlock()
	if m.deliverDown {
		return nil
	}
	for rest := frames; len(rest) > 0; {
		var msg []byte
		msg, rest = nextFrame(rest)
		m.h.HandleMessage(p.Name, msg)
	}
	m.received.Add(int64(count))
	return nil
}

// debug logs at Debug, when enabled: a peer may cause one of these per
// packet.
func (m *messenger) debug(msg string, args ...any) {
	if m.n.log.Enabled(context.Background(), slog.LevelDebug) {
		m.n.log.Debug(msg, args...)
	}
}
