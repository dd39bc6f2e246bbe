package membership_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/google/go-cmp/cmp"
)

// stateOf returns n bytes of reproducible state.
func stateOf(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// emitAll emits state in pieces of MaxStatePiece bytes.
func emitAll(state []byte) func(emit func([]byte) bool) {
	return func(emit func([]byte) bool) {
		for p := range slices.Chunk(state, membership.MaxStatePiece) {
			if !emit(p) {
				return
			}
		}
	}
}

// TestRequestState: a member's state of 3 MiB reaches the requester's
// MergeState piece by piece, in order; a request to a node without
// Messages, or from one, fails; cancelling ctx returns at once and stops
// the answer.
func TestRequestState(t *testing.T) {
	hs := []*msgHandler{newMsgHandler(), newMsgHandler(), nil}
	rec := &recorder{}
	c := messageCluster(t, hs, func(i int, cfg *membership.Config) {
		if i == 2 {
			cfg.Logger = slog.New(rec)
		}
	})
	defer c.close()
	req, srv := c.nodes[1], c.nodes[2]
	state := stateOf(3 << 20)
	hs[1].setState(emitAll(state))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := req.RequestState(ctx, srv.Name()); err != nil {
		t.Fatalf("RequestState: %v", err)
	}
	pieces := hs[0].merged()
	if len(pieces) != 48 {
		t.Errorf("MergeState called %d times, want 48", len(pieces))
	}
	for i, p := range pieces {
		if len(p) != membership.MaxStatePiece {
			t.Errorf("piece %d of %d bytes, want %d", i, len(p), membership.MaxStatePiece)
		}
	}
	if got := bytes.Join(pieces, nil); !bytes.Equal(got, state) {
		t.Errorf("merged state of %d bytes differs from the %d bytes emitted", len(got), len(state))
	}
	if hs[0].concurrent.Load() {
		t.Error("MergeState calls overlapped")
	}
	waitFor(t, 5*time.Second, "answer counted as served", nil, func() bool { return srv.Health().StateRequestsServed == 1 })
	if h := req.Health(); h.MessagesDropped != 0 {
		t.Errorf("requester dropped %d messages", h.MessagesDropped)
	}

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			from, to *membership.Node
			toName   string
			want     error
		}{
			{"to a node without Messages", req, c.nodes[3], "", membership.ErrNotMessagePeer},
			{"to no member", req, nil, "nobody", membership.ErrNotMessagePeer},
			{"to itself", req, req, "", membership.ErrNotMessagePeer},
			{"from a node without Messages", c.nodes[3], srv, "", membership.ErrNoMessages},
		} {
			t.Run(tc.name, func(t *testing.T) {
				name := tc.toName
				if tc.to != nil {
					name = tc.to.Name()
				}
				if err := tc.from.RequestState(ctx, name); !errors.Is(err, tc.want) {
					t.Errorf("RequestState(%q) = %v, want %v", name, err, tc.want)
				}
			})
		}
	})

	t.Run("cancel", func(t *testing.T) {
		release := make(chan struct{})
		stopped := make(chan int, 1) // pieces emitted after release
		hs[1].setState(func(emit func([]byte) bool) {
			emit(state[:100])
			<-release
			k := 0
			for k < 1000 && emit(state[:100]) {
				k++
			}
			stopped <- k
		})
		before := len(hs[0].merged())
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- req.RequestState(ctx, srv.Name()) }()
		waitFor(t, 10*time.Second, "first piece merged", hs[0].signal, func() bool { return len(hs[0].merged()) > before })
		refused := srv.Health().StateRequestsRefused
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("RequestState after cancel = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("RequestState did not return after cancel")
		}
		close(release)
		select {
		case k := <-stopped:
			if k == 1000 {
				t.Errorf("emit took %d pieces after the requester cancelled", k)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("State still emitting after cancel")
		}
		waitFor(t, 10*time.Second, "the answer counted as cut short", nil,
			func() bool { return srv.Health().StateRequestsRefused == refused+1 })
		var why []string
		for _, r := range rec.records() {
			if r.Message == "membership: state answer stopped" {
				why = append(why, attrs(r)["why"])
			}
		}
		if diff := cmp.Diff([]string{"cancelled"}, why); diff != "" {
			t.Errorf("why the answer stopped (-want +got):\n%s", diff)
		}
	})
}

// TestRequestStateBusy: a node runs two answers at once and refuses a
// third request; the two then complete.
func TestRequestStateBusy(t *testing.T) {
	hs := []*msgHandler{newMsgHandler(), newMsgHandler()}
	c := messageCluster(t, hs, nil)
	defer c.close()
	req, srv := c.nodes[1], c.nodes[2]
	entered := make(chan struct{}, 3)
	release := make(chan struct{})
	hs[1].setState(func(emit func([]byte) bool) {
		entered <- struct{}{}
		<-release
		emit([]byte("state"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 2)
	for range 2 {
		go func() { errc <- req.RequestState(ctx, srv.Name()) }()
	}
	for range 2 {
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("State not called twice")
		}
	}
	if err := req.RequestState(ctx, srv.Name()); !errors.Is(err, membership.ErrStateRefused) {
		t.Errorf("third RequestState = %v, want ErrStateRefused", err)
	}
	close(release)
	for range 2 {
		if err := <-errc; err != nil {
			t.Errorf("RequestState: %v", err)
		}
	}
	waitFor(t, 5*time.Second, "answers counted", nil, func() bool {
		h := srv.Health()
		return h.StateRequestsServed == 2 && h.StateRequestsRefused == 1
	})
	if got := hs[0].merged(); len(got) != 2 {
		t.Errorf("MergeState called %d times, want 2", len(got))
	}
}

// TestRequestStateRightAfterJoin asks for a member's state the moment a
// node has joined through another member: the member asked may not have
// heard of the node yet, and drops its request, so the request is sent
// again until an answer starts.
func TestRequestStateRightAfterJoin(t *testing.T) {
	hs := []*msgHandler{newMsgHandler(), newMsgHandler()}
	c := messageCluster(t, hs, nil)
	defer c.close()
	state := stateOf(200 << 10)
	hs[1].setState(emitAll(state))

	h := newMsgHandler()
	cfg := localConfig(t)
	cfg.Timing = membership.LANTiming()
	cfg.WKA = []string{c.nodes[1].Addr().String()}
	cfg.Messages = h
	n := c.join(3, cfg)
	knew := slices.ContainsFunc(c.nodes[2].Members(), func(m membership.Member) bool { return m.Name == n.Name() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := n.RequestState(ctx, c.nodes[2].Name()); err != nil {
		t.Fatalf("RequestState right after Join: %v", err)
	}
	if got := bytes.Join(h.merged(), nil); !bytes.Equal(got, state) {
		t.Errorf("merged %d bytes, want the %d emitted", len(got), len(state))
	}
	t.Logf("the member asked knew the new node when asked: %v; the state came in %v", knew, time.Since(start).Round(time.Millisecond))
}
