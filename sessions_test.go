package carbonlb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/membership"
)

// sessionBackend is an app server that starts a session (a new random
// JSESSIONID) for a request without one, and answers with its name.
func sessionBackend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := r.Cookie("JSESSIONID"); err != nil {
			id := make([]byte, 16)
			rand.Read(id)
			http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: strings.ToUpper(hex.EncodeToString(id)), Path: "/"})
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// syncInstance is one balancer instance whose learned sessions a
// SessionSync shares over its cluster node.
type syncInstance struct {
	name  string
	sync  *carbonlb.SessionSync
	lb    *balancer.Balancer
	front *httptest.Server
	node  *membership.Node
	stop  context.CancelFunc
	done  chan error
}

// startSyncInstance starts an instance in learn mode over backends, joined
// through wka (none for the first).
func startSyncInstance(t *testing.T, name string, backends []balancer.Backend, wka []string, key []byte) *syncInstance {
	t.Helper()
	in := &syncInstance{name: name, sync: carbonlb.NewSessionSync(carbonlb.SessionSyncConfig{Logger: slog.New(slog.DiscardHandler)})}
	cfg := balancer.DefaultConfig()
	cfg.Services[0].Pool = "p"
	cfg.Services[0].Sticky.Mode = balancer.StickyLearn
	cfg.Sessions = in.sync.Table()
	cfg.Logger = slog.New(slog.DiscardHandler)
	var err error
	if in.lb, err = balancer.New(cfg); err != nil {
		t.Fatal(err)
	}
	if err := in.lb.SetBackends("p", backends); err != nil {
		t.Fatal(err)
	}
	in.front = httptest.NewServer(in.lb)
	mc := membership.DefaultLocalConfig("sessions.test")
	mc.Name, mc.WKA, mc.Messages, mc.SecretKey = name, wka, in.sync, key
	mc.Logger = slog.New(slog.DiscardHandler)
	if in.node, err = membership.Join(t.Context(), mc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.stop, in.done = cancel, make(chan error, 1)
	go func() { in.done <- in.sync.Run(ctx, in.node) }()
	t.Cleanup(func() { in.kill() })
	return in
}

// kill stops the instance at once: its node closes without leaving, as a
// crashed process's would. Killing it again does nothing.
func (in *syncInstance) kill() {
	if in.stop == nil {
		return
	}
	in.node.Close()
	in.stop()
	<-in.done
	in.front.Close()
	in.lb.Close()
	in.stop = nil
}

// visit sends one request with the session cookie (none when id is empty)
// and returns the backend that answered and the session id it set.
func visit(t *testing.T, c *http.Client, url, id string) (backend, newID string) {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if id != "" {
		req.Header.Set("Cookie", "JSESSIONID="+id)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "JSESSIONID" {
			newID = ck.Value
		}
	}
	return string(body), newID
}

// waitFor polls cond every 10 ms until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReplicatedSessionsSurviveBalancerLoss runs three balancer instances
// in learn mode, joined in one cluster on loopback, in front of two
// backends without routes. 1,000 sessions are started through all three;
// one instance is killed without leaving; every session then goes on
// through each of the two others, and must stay on its backend.
func TestReplicatedSessionsSurviveBalancerLoss(t *testing.T) {
	checkLeaks(t)
	key := []byte("0123456789abcdef") // only members with the key may pin sessions
	var backends []balancer.Backend
	for _, name := range []string{"app-1", "app-2"} {
		backends = append(backends, balancer.Backend{ID: name, URL: sessionBackend(t, name).URL})
	}
	var ins []*syncInstance
	for i := range 3 {
		var wka []string
		if i > 0 {
			wka = []string{ins[0].node.Addr().String()}
		}
		ins = append(ins, startSyncInstance(t, fmt.Sprintf("lb-%d", i+1), backends, wka, key))
	}
	waitFor(t, 20*time.Second, "the instances never saw each other", func() bool {
		for _, in := range ins {
			if len(in.node.MessagePeers()) != 2 {
				return false
			}
		}
		return true
	})

	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	const sessions = 1000
	ids, homes := make([]string, sessions), make([]string, sessions)
	for i := range sessions {
		homes[i], ids[i] = visit(t, c, ins[i%3].front.URL, "")
		if ids[i] == "" {
			t.Fatalf("session %d: the backend set no cookie", i)
		}
	}
	learned := time.Now()
	waitFor(t, 20*time.Second, "the sessions never reached every instance", func() bool {
		for _, in := range ins {
			if in.sync.Table().Len() < sessions {
				return false
			}
		}
		return true
	})
	// Every session was learned at least a second before the kill.
	time.Sleep(time.Until(learned.Add(time.Second)))
	for _, in := range ins {
		st := in.sync.Stats()
		t.Logf("%s: sent %d, shed %d, received %d, rejected %d, %d sessions", in.name, st.Sent, st.Shed, st.Received, st.Rejected, st.Sessions)
	}
	ins[0].kill()

	moved := 0
	for round := range 2 {
		for i := range sessions {
			in := ins[1+(i+round)%2]
			got, _ := visit(t, c, in.front.URL, ids[i])
			if got != homes[i] {
				moved++
				if moved <= 10 {
					t.Errorf("session %d (learned on %s, on %s) went to %s through %s", i, ins[i%3].name, homes[i], got, in.name)
				}
			}
		}
	}
	if moved > 0 {
		t.Errorf("%d of %d requests left their session's backend", moved, 2*sessions)
	}
}

// TestSessionSyncRejectsGarbage sends messages that do not decode, and one
// that pins, straight to a SessionSync: only the good one is applied.
func TestSessionSyncRejectsGarbage(t *testing.T) {
	var applied []balancer.SessionChange
	s := carbonlb.NewSessionSync(carbonlb.SessionSyncConfig{Applied: func(c balancer.SessionChange, fromState bool) {
		applied = append(applied, c)
	}})
	bad := [][]byte{
		nil,
		{2, 'P'},                        // unknown version
		{1},                             // no kind
		{1, 'X', 1, 'p', 1, 'i'},        // unknown kind
		{1, 'P', 0x80},                  // truncated TTL
		{1, 'P', 30, 5, 'p'},            // pool longer than the message
		{1, 'P', 30, 0, 1, 'b', 1, 'i'}, // empty pool
		{1, 'P', 30, 1, 'p', 1, 'b'},    // no id
		{1, 'F', 1, 'p', 1, 'i', 'x'},   // trailing byte
		{1, 'P', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 'p', 1, 'b', 1, 'i'}, // TTL overflows 64 bits
	}
	for _, m := range bad {
		s.HandleMessage("peer", m)
	}
	if st := s.Stats(); st.Rejected != uint64(len(bad)) || st.Received != 0 || st.Sessions != 0 {
		t.Errorf("after %d bad messages: %+v", len(bad), st)
	}
	s.HandleMessage("peer", []byte{1, 'P', 60, 1, 'p', 1, 'b', 2, 'i', 'd'})
	if be, ok := s.Table().Lookup("p", "id", time.Minute); !ok || be != "b" {
		t.Errorf("Lookup after a pin = %q, %v", be, ok)
	}
	want := []balancer.SessionChange{{Pool: "p", ID: "id", Backend: "b", TTL: time.Minute}}
	if !slices.Equal(applied, want) {
		t.Errorf("applied %+v, want %+v", applied, want)
	}
	s.HandleMessage("peer", []byte{1, 'F', 1, 'p', 2, 'i', 'd'})
	if _, ok := s.Table().Lookup("p", "id", time.Minute); ok {
		t.Error("the session outlived a forget")
	}
	// A piece of state: two pins, then a record cut short: the pins are
	// kept, the rest rejected.
	s.MergeState("peer", []byte{1, 'P', 60, 1, 'p', 1, 'b', 1, 'x', 'P', 60, 1, 'p', 1, 'c', 1, 'y', 'P', 60, 9})
	for id, want := range map[string]string{"x": "b", "y": "c"} {
		if be, ok := s.Table().Lookup("p", id, time.Minute); !ok || be != want {
			t.Errorf("session %s from state: %q, %v; want %q", id, be, ok, want)
		}
	}
	if st := s.Stats(); st.StateSessions != 2 || st.StatePieces != 1 || st.Rejected != uint64(len(bad))+1 {
		t.Errorf("after a state piece: %+v", st)
	}
}

// TestSessionSyncStateRoundTrip moves a table through State and MergeState
// in pieces: every session arrives with its backend.
func TestSessionSyncStateRoundTrip(t *testing.T) {
	a := carbonlb.NewSessionSync(carbonlb.SessionSyncConfig{})
	b := carbonlb.NewSessionSync(carbonlb.SessionSyncConfig{})
	const n = 20000
	for i := range n {
		a.Table().Pin(fmt.Sprintf("pool-%d", i%3), fmt.Sprintf("%032X.node-%d", i, i%7), fmt.Sprintf("10.0.0.%d:9763", i%7), 30*time.Minute)
	}
	pieces := 0
	a.State(func(piece []byte) bool {
		if len(piece) > membership.MaxStatePiece {
			t.Fatalf("piece of %d bytes", len(piece))
		}
		pieces++
		b.MergeState("a", piece)
		return true
	})
	if got := b.Table().Len(); got != n {
		t.Fatalf("%d sessions after the state, want %d", got, n)
	}
	for i := range n {
		be, ok := b.Table().Lookup(fmt.Sprintf("pool-%d", i%3), fmt.Sprintf("%032X.node-%d", i, i%7), 30*time.Minute)
		if want := fmt.Sprintf("10.0.0.%d:9763", i%7); !ok || be != want {
			t.Fatalf("session %d: %q, %v; want %q", i, be, ok, want)
		}
	}
	t.Logf("%d sessions in %d pieces", n, pieces)
	// emit returning false stops the walk.
	calls := 0
	a.State(func([]byte) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("State went on after emit returned false: %d calls", calls)
	}
}
