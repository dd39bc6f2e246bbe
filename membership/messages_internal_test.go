package membership

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

// TestUDPBufferSize: batches are sized for memberlist's default packet
// size, which Join keeps.
func TestUDPBufferSize(t *testing.T) {
	if got := memberlist.DefaultLANConfig().UDPBufferSize; got != udpBufferSize {
		t.Errorf("memberlist's UDPBufferSize is %d, udpBufferSize %d", got, udpBufferSize)
	}
	// The largest message fits in a batch of the longest domain, encrypted,
	// with a sender's name of up to 40 bytes.
	if b := batchBudget(string(make([]byte, 255)), true); b < 1+1+40+2+MaxMessageSize {
		t.Errorf("batchBudget = %d, too small for a message of MaxMessageSize", b)
	}
}

// TestMetaMessagesFlag: the flag of a message peer survives encoding, next
// to the leaving flag, and does not hide the domain.
func TestMetaMessagesFlag(t *testing.T) {
	for _, m := range []meta{
		{Domain: "wso2.esb.domain", Messages: true, Properties: map[string]string{}},
		{Domain: "wso2.esb.domain", Messages: true, Leaving: true, Properties: map[string]string{}},
	} {
		b, err := m.encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMeta(b)
		if err != nil {
			t.Fatalf("decodeMeta: %v", err)
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Errorf("round trip mismatch (-want +got):\n%s", diff)
		}
		if !metaDomainIs(b, m.Domain) {
			t.Errorf("metaDomainIs(%x) = false", b)
		}
	}
	// A bit of a later build is ignored (TestMetaUnknownFlags).
	if m, err := decodeMeta([]byte{metaVersion, 4 | metaMessages, 0, 0, 0}); err != nil || !m.Messages || m.Leaving {
		t.Errorf("metadata with a later flag: %+v, %v", m, err)
	}
}

// recordingHandler keeps what it is called with.
type recordingHandler struct {
	mu     sync.Mutex // protects msgs and pieces
	msgs   []string
	pieces []string
}

func (h *recordingHandler) HandleMessage(from string, msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, string(msg))
}

func (h *recordingHandler) MergeState(from string, piece []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pieces = append(h.pieces, string(piece))
}

func (h *recordingHandler) State(func([]byte) bool) {}

func (h *recordingHandler) calls() (msgs, pieces []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs), slices.Clone(h.pieces)
}

// until waits for cond, checked every few milliseconds, and fails the test
// when it does not hold within five seconds.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		<-tick.C
	}
}

// TestMalformedMessagesDropped: user messages that do not parse, of an
// unknown type, from a node that is no message peer, or for no request,
// sent by a real member over loopback, are dropped and counted one by one;
// the handler never sees them, and a batch is taken whole or not at all.
func TestMalformedMessagesDropped(t *testing.T) {
	start := func(h MessageHandler, wka ...string) *Node {
		cfg := DefaultLocalConfig("wso2.esb.domain")
		cfg.WKA = wka
		cfg.Logger = slog.New(slog.DiscardHandler)
		if h != nil {
			cfg.Messages = h
		}
		n, err := Join(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	hb := &recordingHandler{}
	b := start(hb)
	a := start(&recordingHandler{}, b.Addr().String())
	c := start(nil, b.Addr().String())
	until(t, "3 nodes converge", func() bool {
		return len(a.Members()) == 3 && len(b.Members()) == 3 && len(c.Members()) == 3
	})
	to := func(n *Node) *memberlist.Node {
		return &memberlist.Node{Name: n.name, Addr: n.addr.Addr().AsSlice(), Port: n.addr.Port()}
	}
	head := func(typ byte, name string) []byte { return appendHeader(nil, typ, name) }
	frames := func(msgs ...string) []byte {
		var out []byte
		for _, m := range msgs {
			out = appendFrame(out, []byte(m))
		}
		return out
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	id := binary.BigEndian.AppendUint64(nil, 42)
	big := bytes.Repeat([]byte("x"), MaxMessageSize+1)
	var long []byte // a batch of valid messages, longer than maxBatch
	for len(long) <= maxBatch {
		long = appendFrame(long, big[:MaxMessageSize])
	}

	for _, tc := range []struct {
		name     string
		from     *Node
		msg      []byte
		reliable bool // over a stream; else a datagram
	}{
		{"empty", a, nil, false},
		{"unknown type", a, cat(head('Z', a.name), frames("x")), false},
		{"type only", a, []byte{msgBatch}, false},
		{"name length truncated", a, []byte{msgBatch, 0x80}, false},
		{"name past the end", a, []byte{msgBatch, 50, 'a', 'b'}, false},
		{"no message", a, head(msgBatch, a.name), false},
		{"length truncated", a, cat(head(msgBatch, a.name), []byte{0x80}), false},
		{"length past the end", a, cat(head(msgBatch, a.name), []byte{10, 'a', 'b', 'c'}), false},
		{"message too large", a, cat(head(msgBatch, a.name), appendFrame(nil, big)), false},
		{"last message truncated", a, cat(head(msgBatch, a.name), frames("whole"), []byte{5, 'a', 'b'}), false},
		{"length overflows", a, cat(head(msgBatch, a.name), bytes.Repeat([]byte{0xff}, 10), []byte{1}), false},
		{"unknown sender", a, cat(head(msgBatch, "nobody"), frames("x")), false},
		{"sender takes no messages", c, cat(head(msgBatch, c.name), frames("x")), false},
		{"sender forged as the receiver", a, cat(head(msgBatch, b.name), frames("x")), false},
		{"batch too long", a, cat(head(msgBatch, a.name), long), true},
		{"state id truncated", a, cat(head(msgStatePiece, a.name), id[:3]), false},
		{"piece for no request", a, cat(head(msgStatePiece, a.name), id, []byte{0}, []byte("piece")), true},
		{"end for no request", a, cat(head(msgStateEnd, a.name), id, []byte{1}), true},
		{"refusal for no request", a, cat(head(msgStateRefused, a.name), id, []byte{refusedBusy}), false},
		{"acknowledgement for no answer", a, cat(head(msgStateAck, a.name), id, []byte{4}), true},
		{"cancel for no answer", a, cat(head(msgStateCancel, a.name), id), false},
		{"request with trailing bytes", a, cat(head(msgStateRequest, a.name), id, []byte("x")), true},
		{"request from a node without messages", c, cat(head(msgStateRequest, c.name), id), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.Health()
			send := a.ml.SendBestEffort
			if tc.from == c {
				send = c.ml.SendBestEffort
			}
			if tc.reliable {
				send = tc.from.ml.SendReliable
			}
			if err := send(to(b), tc.msg); err != nil {
				t.Fatal(err)
			}
			until(t, "message counted as dropped", func() bool { return b.Health().MessagesDropped > before.MessagesDropped })
			after := b.Health()
			if after.MessagesDropped != before.MessagesDropped+1 || after.MessagesReceived != before.MessagesReceived ||
				after.StateRequestsServed != before.StateRequestsServed || after.StateRequestsRefused != before.StateRequestsRefused {
				t.Errorf("Health() before %+v, after %+v: want one more dropped, nothing else", before, after)
			}
		})
	}
	// A valid batch still goes through, and is the only one seen.
	if err := a.ml.SendBestEffort(to(b), cat(head(msgBatch, a.name), frames("one", "", "three"))); err != nil {
		t.Fatal(err)
	}
	until(t, "valid batch received", func() bool { return b.Health().MessagesReceived == 3 })
	if msgs, _ := hb.calls(); !slices.Equal(msgs, []string{"one", "", "three"}) {
		t.Errorf("HandleMessage calls %q, want the valid batch only", msgs)
	}

	// A request to a node that takes no messages is refused, and the
	// refusal of a request the requester does not have is dropped.
	dropped := a.Health().MessagesDropped
	if err := a.ml.SendReliable(to(c), cat(head(msgStateRequest, a.name), id)); err != nil {
		t.Fatal(err)
	}
	until(t, "request refused", func() bool { return c.Health().StateRequestsRefused == 1 })
	until(t, "refusal dropped", func() bool { return a.Health().MessagesDropped == dropped+1 })

	t.Run("state pieces", func(t *testing.T) {
		// A request of b's to a: pieces out of order are merged in order,
		// one too large or outside the window is dropped, and the end
		// finishes the request once every piece is merged.
		r := &stateRequest{id: 7, peer: a.name, m: b.msgs, done: make(chan struct{}), more: make(chan struct{}, 1)}
		b.msgs.smu.Lock()
		b.msgs.requests[r.id] = r
		b.msgs.smu.Unlock()
		rid := binary.BigEndian.AppendUint64(nil, r.id)
		piece := func(seq uint64, data []byte) []byte {
			return cat(head(msgStatePiece, a.name), rid, binary.AppendUvarint(nil, seq), data)
		}
		locked := func(f func() bool) func() bool {
			return func() bool { r.mu.Lock(); defer r.mu.Unlock(); return f() }
		}
		droppedOne := func() func() bool {
			before := b.Health().MessagesDropped
			return func() bool { return b.Health().MessagesDropped == before+1 }
		}
		for _, s := range []struct {
			what string
			msg  []byte
			done func() func() bool // called before msg is sent; its result says when msg was handled
		}{
			{"piece 1 held", piece(1, []byte("second")), func() func() bool { return locked(func() bool { return len(r.held) == 1 }) }},
			{"piece 0 too large dropped", piece(0, make([]byte, MaxStatePiece+1)), droppedOne},
			{"pieces 0 and 1 merged", piece(0, []byte("first")), func() func() bool { return locked(func() bool { return r.next == 2 }) }},
			{"piece 0 repeated dropped", piece(0, []byte("again")), droppedOne},
			{"end of 3 noted", cat(head(msgStateEnd, a.name), rid, []byte{3}), func() func() bool { return locked(func() bool { return r.ended }) }},
			{"piece 2 merged", piece(2, []byte("third")), func() func() bool { return locked(func() bool { return r.next == 3 }) }},
		} {
			cond := s.done()
			if err := a.ml.SendReliable(to(b), s.msg); err != nil {
				t.Fatal(err)
			}
			until(t, s.what, cond)
		}
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Fatal("request not finished by its end")
		}
		if r.err != nil {
			t.Errorf("request finished with %v", r.err)
		}
		_, pieces := hb.calls()
		if diff := cmp.Diff([]string{"first", "second", "third"}, pieces); diff != "" {
			t.Errorf("MergeState calls (-want +got):\n%s", diff)
		}

		// A piece beyond the window ends a request with an error.
		r = &stateRequest{id: 8, peer: a.name, m: b.msgs, done: make(chan struct{}), more: make(chan struct{}, 1)}
		b.msgs.smu.Lock()
		b.msgs.requests[r.id] = r
		b.msgs.smu.Unlock()
		rid = binary.BigEndian.AppendUint64(nil, r.id)
		before := b.Health().MessagesDropped
		if err := a.ml.SendReliable(to(b), piece(stateWindow, []byte("far"))); err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Fatal("request not ended by a piece beyond the window")
		}
		if r.err == nil {
			t.Error("piece beyond the window: request ended with no error")
		}
		until(t, "piece beyond the window dropped", func() bool { return b.Health().MessagesDropped == before+1 })
		if _, got := hb.calls(); len(got) != len(pieces) {
			t.Errorf("MergeState called with a piece beyond the window")
		}
	})
}

// FuzzMessageBatch: the batch decoder never panics, accepts only messages
// within the batch and of at most MaxMessageSize bytes, and what it accepts
// encodes back to a batch that decodes to the same messages.
func FuzzMessageBatch(f *testing.F) {
	f.Add(appendFrame(appendHeader(nil, msgBatch, "10.0.0.1:4000"), []byte("session abc -> backend-1")))
	f.Add(appendFrame(appendFrame(appendHeader(nil, msgBatch, "n"), nil), make([]byte, MaxMessageSize)))
	f.Add(appendFrame(appendHeader(nil, msgBatch, ""), make([]byte, MaxMessageSize+1)))
	f.Add([]byte{msgBatch, 0x80})
	f.Add([]byte{msgBatch, 1, 'n', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{msgStatePiece, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, frames, count, err := decodeBatch(b)
		if err != nil {
			return
		}
		if len(b) > maxBatch || count < 1 || len(name)+len(frames) >= len(b) {
			t.Fatalf("accepted %d bytes: name %d, frames %d bytes, %d messages", len(b), len(name), len(frames), count)
		}
		var msgs [][]byte
		for rest := frames; len(rest) > 0; {
			var msg []byte
			msg, rest = nextFrame(rest)
			if len(msg) > MaxMessageSize {
				t.Fatalf("message of %d bytes accepted", len(msg))
			}
			msgs = append(msgs, msg)
		}
		if len(msgs) != count {
			t.Fatalf("%d messages counted, %d read", count, len(msgs))
		}
		again := appendHeader(nil, msgBatch, string(name))
		for _, m := range msgs {
			again = appendFrame(again, m)
		}
		name2, frames2, count2, err := decodeBatch(again)
		if err != nil || !bytes.Equal(name, name2) || count2 != count {
			t.Fatalf("re-encoded batch: %q, %d messages, %v; want %q, %d", name2, count2, err, name, count)
		}
		var msgs2 [][]byte
		for rest := frames2; len(rest) > 0; {
			var msg []byte
			msg, rest = nextFrame(rest)
			msgs2 = append(msgs2, msg)
		}
		if diff := cmp.Diff(msgs, msgs2); diff != "" {
			t.Fatalf("re-encoded messages (-want +got):\n%s", diff)
		}
	})
}
