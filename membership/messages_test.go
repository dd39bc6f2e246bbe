package membership_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

// msgHandler records what a node's MessageHandler is called with, and
// notes any call that overlaps another.
type msgHandler struct {
	inside     atomic.Int32 // HandleMessage and MergeState calls running
	concurrent atomic.Bool  // two of them ran at once
	signal     chan struct{}

	mu     sync.Mutex // protects msgs, from and pieces
	msgs   []string
	from   map[string]int // messages per sender
	pieces [][]byte

	state atomic.Pointer[func(emit func([]byte) bool)] // State's body; nil emits nothing
}

func newMsgHandler() *msgHandler {
	return &msgHandler{signal: make(chan struct{}, 1), from: map[string]int{}}
}

func (h *msgHandler) enter() {
	if h.inside.Add(1) != 1 {
		h.concurrent.Store(true)
	}
}

func (h *msgHandler) leave() {
	h.inside.Add(-1)
	select {
	case h.signal <- struct{}{}:
	default:
	}
}

func (h *msgHandler) HandleMessage(from string, msg []byte) {
	h.enter()
	defer h.leave()
	h.mu.Lock()
	h.msgs = append(h.msgs, string(msg))
	h.from[from]++
	h.mu.Unlock()
}

func (h *msgHandler) MergeState(from string, piece []byte) {
	h.enter()
	defer h.leave()
	h.mu.Lock()
	h.pieces = append(h.pieces, bytes.Clone(piece))
	h.mu.Unlock()
}

func (h *msgHandler) State(emit func([]byte) bool) {
	if f := h.state.Load(); f != nil {
		(*f)(emit)
	}
}

func (h *msgHandler) setState(f func(emit func([]byte) bool)) { h.state.Store(&f) }

func (h *msgHandler) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

func (h *msgHandler) merged() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pieces)
}

// waitFor waits for cond, re-checked at each signal and every few
// milliseconds, and fails the test when it does not hold within d.
// report, when given, says what was seen instead.
func waitFor(t testing.TB, d time.Duration, what string, signal <-chan struct{}, cond func() bool, report ...func() string) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-signal:
		case <-tick.C:
		case <-deadline.C:
			for _, r := range report {
				what += "; " + r()
			}
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// messageCluster starts nodes on loopback, node 1 the well-known member of
// the others, with handlers[i] as Config.Messages of node i+1 (nil for
// none), and waits until they all list each other. The nodes take
// LANTiming: LocalTiming's 100 ms probe timeout can declare a member failed
// on a busy test host, and a node drops the messages of a member it holds
// failed.
func messageCluster(t *testing.T, handlers []*msgHandler, edit func(i int, cfg *membership.Config)) *cluster {
	t.Helper()
	c := newCluster(t)
	for i, h := range handlers {
		cfg := localConfig(t)
		cfg.Timing = membership.LANTiming()
		if i > 0 {
			cfg.WKA = []string{c.nodes[1].Addr().String()}
		}
		if h != nil {
			cfg.Messages = h
		}
		if edit != nil {
			edit(i+1, &cfg)
		}
		c.join(i+1, cfg)
	}
	c.waitUntil(10*time.Second, "nodes converge", func() bool { return c.converged(seq(1, len(handlers))...) })
	return c
}

// names returns the names of ms.
func memberNames(ms []membership.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// TestBroadcastReachesPeers: what one message peer broadcasts reaches every
// other message peer, once each, and no node without Messages; the handler
// is never called concurrently.
func TestBroadcastReachesPeers(t *testing.T) {
	hs := []*msgHandler{newMsgHandler(), newMsgHandler(), newMsgHandler(), nil}
	c := messageCluster(t, hs, nil)
	defer c.close()
	from := c.nodes[1]

	want := []string{c.nodes[2].Name(), c.nodes[3].Name()}
	slices.Sort(want)
	if diff := cmp.Diff(want, memberNames(from.MessagePeers())); diff != "" {
		t.Fatalf("MessagePeers() mismatch (-want +got):\n%s", diff)
	}
	for _, m := range from.Members() {
		if wantFlag := m.Name != c.nodes[4].Name(); m.Messages != wantFlag {
			t.Errorf("member %s: Messages = %v, want %v", m.Name, m.Messages, wantFlag)
		}
	}

	const count = 2000
	var sent []string
	for i := range count {
		msg := fmt.Sprintf("session %d -> backend-%d", i, i%7)
		if err := from.Broadcast([]byte(msg)); err != nil {
			t.Fatalf("Broadcast %d: %v", i, err)
		}
		sent = append(sent, msg)
	}
	slices.Sort(sent)
	for _, i := range []int{2, 3} {
		h := hs[i-1]
		waitFor(t, 10*time.Second, fmt.Sprintf("node %d receives %d messages", i, count), h.signal,
			func() bool { return len(h.received()) >= count },
			func() string {
				return fmt.Sprintf("received %d; sender %+v; receiver %+v", len(h.received()), from.Health(), c.nodes[i].Health())
			})
		got := h.received()
		slices.Sort(got)
		if diff := cmp.Diff(sent, got); diff != "" {
			t.Errorf("node %d messages mismatch (-want +got):\n%s", i, diff)
		}
		h.mu.Lock()
		if diff := cmp.Diff(map[string]int{from.Name(): count}, h.from); diff != "" {
			t.Errorf("node %d senders mismatch (-want +got):\n%s", i, diff)
		}
		h.mu.Unlock()
		if got := c.nodes[i].Health().MessagesReceived; got != count {
			t.Errorf("node %d: Health().MessagesReceived = %d, want %d", i, got, count)
		}
	}
	waitFor(t, 5*time.Second, "node 1 counts its messages sent", nil,
		func() bool { return from.Health().MessagesSent == count })
	if got := hs[0].received(); len(got) != 0 {
		t.Errorf("the sender received %d of its own messages", len(got))
	}
	if h := c.nodes[4].Health(); h.MessagesReceived != 0 || h.MessagesDropped != 0 {
		t.Errorf("node without Messages: received %d, dropped %d, want no message at all", h.MessagesReceived, h.MessagesDropped)
	}
	for i, h := range hs[:3] {
		if h.concurrent.Load() {
			t.Errorf("node %d: HandleMessage calls overlapped", i+1)
		}
	}
	t.Logf("node 1 sent %d bytes as packets", from.Health().PacketBytes)
}

// TestBroadcastQueueBounded: a queue with room for six messages, hit by
// 32 goroutines, sheds what does not fit before it is flushed; every
// Broadcast returns, MessagesShed counts exactly the refused ones, and the
// accepted ones are sent.
func TestBroadcastQueueBounded(t *testing.T) {
	hs := []*msgHandler{newMsgHandler(), newMsgHandler()}
	c := messageCluster(t, hs, func(i int, cfg *membership.Config) {
		if i == 1 {
			cfg.MessageQueue = 4000 // six 600-byte messages
		}
	})
	defer c.close()
	n := c.nodes[1]
	msg := bytes.Repeat([]byte("m"), 600)

	const goroutines, each = 32, 100
	var ok, full, other atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				switch err := n.Broadcast(msg); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, membership.ErrMessageQueueFull):
					full.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Broadcast calls did not return")
	}
	if other.Load() != 0 || full.Load() == 0 || ok.Load() == 0 || ok.Load()+full.Load() != goroutines*each {
		t.Fatalf("Broadcast: %d nil, %d ErrMessageQueueFull, %d other errors; want some of both and no other", ok.Load(), full.Load(), other.Load())
	}
	if got := n.Health().MessagesShed; got != full.Load() {
		t.Errorf("Health().MessagesShed = %d, want %d", got, full.Load())
	}
	waitFor(t, 5*time.Second, "every accepted message sent", nil,
		func() bool { return n.Health().MessagesSent == ok.Load() })
	waitFor(t, 5*time.Second, "node 2 receives what was accepted", hs[1].signal,
		func() bool { return int64(len(hs[1].received())) >= ok.Load() })
	if got := int64(len(hs[1].received())); got != ok.Load() {
		t.Errorf("node 2 received %d messages, %d were accepted", got, ok.Load())
	}
	t.Logf("%d accepted, %d shed", ok.Load(), full.Load())
}

// TestBroadcastErrors: the errors Broadcast returns besides a full queue.
func TestBroadcastErrors(t *testing.T) {
	hs := []*msgHandler{newMsgHandler(), nil}
	c := messageCluster(t, hs, nil)
	defer c.close()
	closed, err := membership.Join(context.Background(), func() membership.Config {
		cfg := localConfig(t)
		cfg.Messages = newMsgHandler()
		return cfg
	}())
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	for _, tc := range []struct {
		name string
		n    *membership.Node
		msg  []byte
		want error
	}{
		{"largest", c.nodes[1], make([]byte, membership.MaxMessageSize), nil},
		{"empty", c.nodes[1], nil, nil},
		{"too large", c.nodes[1], make([]byte, membership.MaxMessageSize+1), membership.ErrMessageTooLarge},
		{"no Messages", c.nodes[2], []byte("x"), membership.ErrNoMessages},
		{"closed", closed, []byte("x"), membership.ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.n.Broadcast(tc.msg); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("Broadcast(%d bytes) = %v, want %v", len(tc.msg), err, tc.want)
			}
		})
	}
}

// forgedBatch returns a datagram as memberlist sends a user message,
// labelled but not encrypted, holding a batch of msgs in name's name.
func forgedBatch(t *testing.T, name string, msgs ...string) []byte {
	t.Helper()
	b := []byte{8, 'B'} // memberlist's userMsg, then a batch
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	for _, m := range msgs {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	b, err := memberlist.AddLabelHeaderToPacket(b, testDomain)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBroadcastEncryptedOnly: with SecretKey set, a datagram forged in a
// member's name but not encrypted is dropped unread and counted with the
// other unreadable packets; without a key, the same datagram is taken,
// which shows it is well formed.
func TestBroadcastEncryptedOnly(t *testing.T) {
	for _, tc := range []struct {
		name      string
		key       []byte
		delivered bool
	}{
		{"encrypted", bytes.Repeat([]byte{7}, 32), false},
		{"no key", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			hs := []*msgHandler{newMsgHandler(), newMsgHandler()}
			c := messageCluster(t, hs, func(i int, cfg *membership.Config) {
				cfg.SecretKey = tc.key
				cfg.ForeignLogInterval = time.Hour // counted lines come at Close
				if i == 2 {
					cfg.Logger = slog.New(rec)
				}
			})
			defer c.close()
			src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			const forged = 3
			for range forged {
				if _, err := src.WriteToUDP(forgedBatch(t, c.nodes[1].Name(), "forged"), net.UDPAddrFromAddrPort(c.nodes[2].Addr())); err != nil {
					t.Fatal(err)
				}
			}
			// Node 2 reads its packets in order: the forged ones come
			// before this.
			if err := c.nodes[1].Broadcast([]byte("sentinel")); err != nil {
				t.Fatal(err)
			}
			want := []string{"sentinel"}
			if tc.delivered {
				want = []string{"forged", "forged", "forged", "sentinel"}
			}
			waitFor(t, 10*time.Second, "node 2 receives the sentinel", hs[1].signal,
				func() bool { return len(hs[1].received()) >= len(want) })
			got := hs[1].received()
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("node 2 messages mismatch (-want +got):\n%s", diff)
			}
			c.stop(2)
			counted := 0
			for _, r := range rec.records() {
				if a := attrs(r); r.Message == "membership: dropped unreadable cluster messages" && a["from"] == "127.0.0.1" {
					p, _ := strconv.Atoi(a["packets"])
					counted += p
				}
			}
			if wantCounted := map[bool]int{false: forged, true: 0}[tc.delivered]; counted != wantCounted {
				t.Errorf("unreadable packets counted from 127.0.0.1: %d, want %d", counted, wantCounted)
			}
		})
	}
}

// TestMessagesCloseNoLeak: Close ends the flush goroutine and a state
// answer in progress, whose State sees emit return false before Close
// returns; nothing outlives the nodes.
func TestMessagesCloseNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	hs := []*msgHandler{newMsgHandler(), newMsgHandler()}
	c := messageCluster(t, hs, nil)
	req, srv := c.nodes[1], c.nodes[2]
	var stateDone atomic.Bool
	piece := make([]byte, 1000)
	hs[1].setState(func(emit func([]byte) bool) {
		defer stateDone.Store(true)
		for emit(piece) {
		}
	})
	for i := range 100 {
		if err := srv.Broadcast([]byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- req.RequestState(context.Background(), srv.Name()) }()
	waitFor(t, 10*time.Second, "state flowing", hs[0].signal, func() bool { return len(hs[0].merged()) >= 20 })
	c.stop(2)
	if !stateDone.Load() {
		t.Error("Close returned before State did")
	}
	c.close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("RequestState of an endless state returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RequestState did not return after Close")
	}
	waitGoroutines(t, before)
}

// BenchmarkBroadcast measures the Broadcast call itself, its queue
// flushed to one peer.
func BenchmarkBroadcast(b *testing.B) {
	c := newCluster(b)
	defer c.close()
	for i := 1; i <= 2; i++ {
		cfg := membership.DefaultLocalConfig(testDomain)
		cfg.Logger = testLogger(b)
		cfg.Messages = discard{}
		if i == 2 {
			cfg.WKA = []string{c.nodes[1].Addr().String()}
		}
		c.join(i, cfg)
	}
	c.waitUntil(10*time.Second, "nodes converge", func() bool { return c.converged(1, 2) })
	n := c.nodes[1]
	msg := bytes.Repeat([]byte("s"), 64)
	b.ReportAllocs()
	for b.Loop() {
		n.Broadcast(msg)
	}
	b.ReportMetric(float64(n.Health().MessagesShed)/float64(b.N), "shed/op")
}

// discard is a MessageHandler that drops everything.
type discard struct{}

func (discard) HandleMessage(string, []byte) {}
func (discard) State(func([]byte) bool)      {}
func (discard) MergeState(string, []byte)    {}
