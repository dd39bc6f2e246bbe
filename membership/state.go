package membership

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// A state transfer: the requester sends msgStateRequest with a random id;
// the member answers with msgStatePiece messages numbered from 0 and a
// msgStateEnd that gives their number, or with msgStateRefused. Each goes
// over a stream of its own (memberlist's SendReliable), so pieces may
// arrive out of order: the requester holds those ahead of the next and
// hands them to MergeState in order. The answer sends at most stateWindow
// pieces past the number the requester acknowledged (msgStateAck), which
// bounds what the requester holds. msgStateCancel stops an answer whose
// requester gave up. The id keeps a late piece of an old request out of a
// new one.
const (
	// stateWindow is how many pieces an answer sends ahead of the
	// requester's acknowledgement: what a requester may hold out of order
	// is stateWindow × MaxStatePiece bytes.
	stateWindow = 8
	// stateAckEvery is how many pieces a requester merges between
	// acknowledgements.
	stateAckEvery = stateWindow / 2
	// maxStateAnswers bounds the answers a node runs at once; it refuses
	// further requests.
	maxStateAnswers = 2
)

// The reasons of a msgStateRefused.
const (
	refusedBusy       = 1 // maxStateAnswers answers are running
	refusedNoMessages = 2 // the node takes no messages
	refusedStopped    = 3 // the answer stopped before its end
)

// refusal describes a msgStateRefused reason.
func refusal(reason byte) string {
	switch reason {
	case refusedBusy:
		return "member busy answering other requests"
	case refusedNoMessages:
		return "member takes no messages"
	case refusedStopped:
		return "member stopped its answer"
	}
	return fmt.Sprintf("reason %d", reason)
}

// stateRequest is a RequestState call waiting for its answer.
type stateRequest struct {
	id   uint64
	peer string        // the member asked
	m    *messenger    // for MergeState
	done chan struct{} // closed by finish
	more chan struct{} // buffered 1: next grew
	err  error         // the outcome, set by finish before it closes done
	// heard is set by the first piece or end: the member took the
	// request. Until then RequestState sends it again each probe
	// interval, as a member that has not yet heard of a node that just
	// joined drops its messages.
	heard atomic.Bool

	mu       sync.Mutex // protects the fields below; held while MergeState runs, so pieces reach it in order
	next     uint64     // pieces merged
	end      uint64     // number of pieces, once ended
	ended    bool       // msgStateEnd has come
	held     map[uint64][]byte
	finished bool
}

// finish ends the request with err (nil: every piece merged). r.mu is held.
func (r *stateRequest) finish(err error) {
	if r.finished {
		return
	}
	r.finished = true
	r.held = nil
	r.err = err
	close(r.done)
}

// piece merges piece seq, and those held after it, or holds it when it
// came early. It returns an error for a piece that is late, repeated or
// beyond the window; the last ends the request.
func (r *stateRequest) piece(seq uint64, data []byte) error {
	r.heard.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.finished:
		return errors.New("piece for a finished request")
	case seq < r.next || r.held[seq] != nil:
		return fmt.Errorf("piece %d repeated", seq)
	case seq >= r.next+stateWindow || (r.ended && seq >= r.end):
		err := fmt.Errorf("membership: state from %s: piece %d out of order (next %d)", r.peer, seq, r.next)
		r.finish(err)
		return err
	case seq > r.next:
		if r.held == nil {
			r.held = make(map[uint64][]byte, stateWindow)
		}
		r.held[seq] = append(make([]byte, 0, len(data)), data...)
		return nil
	}
	r.m.merge(r.peer, data)
	r.next++
	for {
		d, ok := r.held[r.next]
		if !ok {
			break
		}
		delete(r.held, r.next)
		r.m.merge(r.peer, d)
		r.next++
	}
	select {
	case r.more <- struct{}{}:
	default:
	}
	if r.ended && r.next == r.end {
		r.finish(nil)
	}
	return nil
}

// ending records the number of pieces; the request ends once all are
// merged.
func (r *stateRequest) ending(count uint64) error {
	r.heard.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.finished:
		return errors.New("end of a finished request")
	case r.ended:
		return errors.New("end repeated")
	case count < r.next || count > r.next+stateWindow:
		err := fmt.Errorf("membership: state from %s: %d pieces announced, %d merged", r.peer, count, r.next)
		r.finish(err)
		return err
	}
	for seq := range r.held {
		if seq >= count {
			err := fmt.Errorf("membership: state from %s: piece %d past the %d announced", r.peer, seq, count)
			r.finish(err)
			return err
		}
	}
	r.ended, r.end = true, count
	if r.next == count {
		r.finish(nil)
	}
	return nil
}

// refused ends the request with the member's refusal.
func (r *stateRequest) refused(reason byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finish(fmt.Errorf("membership: state from %s: %w: %s", r.peer, ErrStateRefused, refusal(reason)))
}

// merged returns the number of pieces merged.
func (r *stateRequest) merged() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// merge hands a piece to MergeState, unless the node is closed.
func (m *messenger) merge(from string, piece []byte) {
	m.deliver.Lock()
	defer m.deliver.Unlock()
	if !m.deliverDown {
		m.h.MergeState(from, piece)
	}
}

// RequestState asks member name, a message peer (see MessagePeers), for
// its application state: its MessageHandler.State runs there, and each
// piece it emits reaches this node's MergeState, in order. RequestState
// returns nil once the member has sent every piece and MergeState has
// returned for the last. A member that has not yet heard of this node (it
// just joined through another) drops the request, so it is sent again
// each Timing.ProbeInterval until the answer starts.
//
// Otherwise it returns ErrNoMessages when this node's Config.Messages is
// nil, ErrClosed when the node is closed, and an error wrapping
// ErrNotMessagePeer when name is not a live message peer or stops being
// one meanwhile, ErrStateRefused when the member refused or cut its answer
// short, ctx's error when ctx ends first, or the transport's error when
// the member cannot be reached. MergeState may have seen some pieces by
// then. Each message of the exchange is bounded by Timing.TCPTimeout, not
// the whole: give ctx a deadline. A member answers a couple of requests at
// a time and refuses more. Safe for concurrent use.
func (n *Node) RequestState(ctx context.Context, name string) error {
	m := n.msgs
	if m.h == nil {
		return ErrNoMessages
	}
	if n.closed.Load() {
		return ErrClosed
	}
	wrap := func(err error) error { return fmt.Errorf("membership: state from %s: %w", name, err) }
	if err := ctx.Err(); err != nil {
		return wrap(err)
	}
	p, ok := m.peer([]byte(name))
	if !ok {
		return wrap(ErrNotMessagePeer)
	}
	to := memberlist.Node{Name: p.Name, Addr: p.Addr.Addr().AsSlice(), Port: p.Addr.Port()}
	r := &stateRequest{peer: name, m: m, done: make(chan struct{}), more: make(chan struct{}, 1)}
	m.smu.Lock()
	if m.down {
		m.smu.Unlock()
		return ErrClosed
	}
	for r.id == 0 || m.requests[r.id] != nil {
		r.id = rand.Uint64()
	}
	m.requests[r.id] = r
	m.smu.Unlock()
	defer func() {
		m.smu.Lock()
		delete(m.requests, r.id)
		m.smu.Unlock()
		r.mu.Lock()
		r.finish(errors.New("request abandoned")) // late pieces are dropped
		r.mu.Unlock()
	}()

	request := m.stateMsg(msgStateRequest, r.id)
	if err := n.ml.SendReliable(&to, request); err != nil {
		return wrap(err)
	}
	// The member is looked for in the membership every probe interval: one
	// that fails or leaves sends nothing more.
	tick := time.NewTicker(n.cfg.Timing.ProbeInterval)
	defer tick.Stop()
	var acked uint64
	for {
		select {
		case <-r.done:
			return r.err
		case <-r.more:
			if k := r.merged(); k >= acked+stateAckEvery {
				if err := n.ml.SendReliable(&to, binary.AppendUvarint(m.stateMsg(msgStateAck, r.id), k)); err != nil {
					return wrap(err)
				}
				acked = k
			}
		case <-tick.C:
			if _, ok := m.peer([]byte(name)); !ok {
				return wrap(fmt.Errorf("%w: it left or failed", ErrNotMessagePeer))
			}
			if !r.heard.Load() {
				// The member may not know this node yet: a repeat of a
				// request it took is dropped there.
				if err := n.ml.SendReliable(&to, request); err != nil {
					return wrap(err)
				}
			}
		case <-ctx.Done():
			if err := n.ml.SendBestEffort(&to, m.stateMsg(msgStateCancel, r.id)); err != nil {
				m.debug("membership: state cancel not sent", "member", name, "err", err)
			}
			return wrap(ctx.Err())
		case <-m.stop:
			return ErrClosed
		}
	}
}

// stateMsg returns a state message of type typ for request id.
func (m *messenger) stateMsg(typ byte, id uint64) []byte {
	b := appendHeader(make([]byte, 0, 64), typ, m.n.name)
	return binary.BigEndian.AppendUint64(b, id)
}

// receiveState handles a state message from message peer p.
func (m *messenger) receiveState(typ byte, p Member, body []byte) error {
	if len(body) < 8 {
		return fmt.Errorf("state message %q from %s truncated in its id", typ, p.Name)
	}
	id, body := binary.BigEndian.Uint64(body), body[8:]
	count := func() (uint64, error) {
		c, k := binary.Uvarint(body)
		if k <= 0 || k != len(body) {
			return 0, fmt.Errorf("state message %q from %s: bad count", typ, p.Name)
		}
		return c, nil
	}
	switch typ {
	case msgStateRequest, msgStateCancel:
		if len(body) != 0 {
			return fmt.Errorf("state message %q from %s: %d bytes after its id", typ, p.Name, len(body))
		}
		if typ == msgStateRequest {
			return m.serve(p, id)
		}
		a := m.answer(id, p.Name)
		if a == nil {
			return fmt.Errorf("cancel from %s for no answer", p.Name)
		}
		a.cancelOnce.Do(func() { close(a.cancel) })
		return nil
	case msgStateAck:
		c, err := count()
		if err != nil {
			return err
		}
		a := m.answer(id, p.Name)
		if a == nil {
			return fmt.Errorf("acknowledgement from %s for no answer", p.Name)
		}
		for {
			old := a.acked.Load()
			if c <= old || a.acked.CompareAndSwap(old, c) {
				break
			}
		}
		select {
		case a.ack <- struct{}{}:
		default:
		}
		return nil
	}
	r := m.request(id, p.Name)
	if r == nil {
		return fmt.Errorf("state message %q from %s for no request", typ, p.Name)
	}
	switch typ {
	case msgStatePiece:
		seq, k := binary.Uvarint(body)
		if k <= 0 {
			return fmt.Errorf("state piece from %s truncated in its number", p.Name)
		}
		if len(body)-k > MaxStatePiece {
			return fmt.Errorf("state piece from %s of %d bytes, at most %d", p.Name, len(body)-k, MaxStatePiece)
		}
		return r.piece(seq, body[k:])
	case msgStateEnd:
		c, err := count()
		if err != nil {
			return err
		}
		return r.ending(c)
	default: // msgStateRefused
		if len(body) != 1 {
			return fmt.Errorf("state refusal from %s of %d bytes", p.Name, len(body))
		}
		r.refused(body[0])
		return nil
	}
}

// request returns the RequestState call of id that asked from, or nil.
func (m *messenger) request(id uint64, from string) *stateRequest {
	m.smu.Lock()
	defer m.smu.Unlock()
	if r := m.requests[id]; r != nil && r.peer == from {
		return r
	}
	return nil
}

// stateAnswer is a state answer the node runs for a requester.
type stateAnswer struct {
	id         uint64
	to         memberlist.Node // the requester
	acked      atomic.Uint64   // pieces the requester merged, as it last said
	ack        chan struct{}   // buffered 1: acked grew
	cancel     chan struct{}   // closed when the requester gives up
	cancelOnce sync.Once
}

// answer returns the answer of id to from, or nil.
func (m *messenger) answer(id uint64, from string) *stateAnswer {
	m.smu.Lock()
	defer m.smu.Unlock()
	if a := m.answers[id]; a != nil && a.to.Name == from {
		return a
	}
	return nil
}

// serve starts an answer to request id of message peer p, or refuses it.
// It runs on memberlist's goroutines, so it starts the answer on a
// goroutine of its own and refuses with a datagram, which does not wait.
func (m *messenger) serve(p Member, id uint64) error {
	to := memberlist.Node{Name: p.Name, Addr: p.Addr.Addr().AsSlice(), Port: p.Addr.Port()}
	var reason byte
	m.smu.Lock()
	switch {
	case m.down:
		m.smu.Unlock()
		return nil
	case m.answers[id] != nil:
		m.smu.Unlock()
		return fmt.Errorf("state request %x from %s repeated", id, p.Name)
	case m.h == nil:
		reason = refusedNoMessages
	case len(m.answers) >= maxStateAnswers:
		reason = refusedBusy
	default:
		a := &stateAnswer{id: id, to: to, ack: make(chan struct{}, 1), cancel: make(chan struct{})}
		m.answers[id] = a
		m.wg.Add(1)
		go m.run(a)
	}
	m.smu.Unlock()
	if reason != 0 {
		m.refused.Add(1)
		m.refuse(&to, id, reason)
	}
	return nil
}

// refuse tells a requester its request is refused or cut short.
func (m *messenger) refuse(to *memberlist.Node, id uint64, reason byte) {
	if err := m.n.ml.SendBestEffort(to, append(m.stateMsg(msgStateRefused, id), reason)); err != nil {
		m.debug("membership: state refusal not sent", "member", to.Name, "err", err)
	}
}

// run runs State for answer a and sends what it emits, then the end.
func (m *messenger) run(a *stateAnswer) {
	defer m.wg.Done()
	defer func() {
		m.smu.Lock()
		delete(m.answers, a.id)
		m.smu.Unlock()
	}()
	var (
		seq     uint64
		stopped bool   // by the requester, Close or a failure
		why     string // what stopped it
		over    atomic.Bool
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	halt := func(reason string) bool { stopped, why = true, reason; return false }
	emit := func(piece []byte) bool {
		if stopped || over.Load() {
			return false
		}
		if len(piece) > MaxStatePiece {
			m.n.log.Warn("membership: state piece larger than MaxStatePiece, answer stopped",
				"member", a.to.Name, "bytes", len(piece), "max", MaxStatePiece)
			return halt("piece too large")
		}
		for seq >= a.acked.Load()+stateWindow {
			timer.Reset(m.n.cfg.Timing.TCPTimeout)
			select {
			case <-a.ack:
			case <-a.cancel:
				return halt("cancelled")
			case <-m.stop:
				return halt("closing")
			case <-timer.C:
				return halt("no acknowledgement")
			}
			timer.Stop()
		}
		select {
		case <-a.cancel:
			return halt("cancelled")
		case <-m.stop:
			return halt("closing")
		default:
		}
		msg := binary.AppendUvarint(m.stateMsg(msgStatePiece, a.id), seq)
		if err := m.n.ml.SendReliable(&a.to, append(msg, piece...)); err != nil {
			return halt(err.Error())
		}
		seq++
		return true
	}
	m.h.State(emit)
	over.Store(true)
	if !stopped {
		err := m.n.ml.SendReliable(&a.to, binary.AppendUvarint(m.stateMsg(msgStateEnd, a.id), seq))
		if err == nil {
			m.served.Add(1)
			return
		}
		why = err.Error()
	}
	m.debug("membership: state answer stopped", "member", a.to.Name, "pieces", seq, "why", why)
	m.refused.Add(1)
	select {
	case <-a.cancel:
	case <-m.stop:
	default:
		m.refuse(&a.to, a.id, refusedStopped)
	}
}
