package balancer

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

// waitWaiting waits until n requests wait for a session to arrive.
func waitWaiting(t *testing.T, tab *SessionTable, n int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tab.arrived.waiting.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait for a session, want %d", tab.arrived.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStickyAwait sends requests whose session ids the table does not
// hold to a balancer that waits for shared sessions (Sticky.Await): one
// whose session arrives while it waits goes to the session's backend, one
// whose session never comes is balanced as unknown once the wait is over,
// and one whose client gives up stops waiting and reaches no backend.
func TestStickyAwait(t *testing.T) {
	nodes := []*carbonNode{newCarbonNode(t, "n1"), newCarbonNode(t, "n2")}
	tab := NewSessionTable(0, nil)
	cfg := testConfig(StickyLearn)
	cfg.Sessions = tab
	cfg.Services[0].Sticky.Await = time.Second
	lb := mustNew(t, cfg)
	if err := lb.SetBackends("p", []Backend{nodes[0].backend(), nodes[1].backend()}); err != nil {
		t.Fatal(err)
	}
	front, c := newFront(t, lb)
	await := func(d time.Duration) {
		t.Helper()
		next := cfg
		next.Services = append([]Service(nil), cfg.Services...)
		next.Services[0].Sticky.Await = d
		if err := lb.Update(next); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("arrives", func(t *testing.T) {
		for _, be := range []string{"n1", "n2", "n2", "n1"} {
			id := "ARRIVING-" + be + "-" + time.Now().Format("150405.000000000")
			done := make(chan string, 1)
			go func() {
				_, got, _, _ := get(t, c, front.URL+"/app", "", "JSESSIONID="+id)
				done <- got
			}()
			waitWaiting(t, tab, 1)
			if err := tab.Apply(SessionChange{Pool: "p", ID: id, Backend: be, TTL: time.Minute}); err != nil {
				t.Fatal(err)
			}
			if got := <-done; got != be {
				t.Errorf("session %s arrived for %s while its request waited; the request went to %s", id, be, got)
			}
		}
		if st := lb.Status(); st.Services[0].StickyMisses != 0 {
			t.Errorf("%d sticky misses; every session arrived", st.Services[0].StickyMisses)
		}
	})

	t.Run("never arrives", func(t *testing.T) {
		await(20 * time.Millisecond)
		before := nodes[0].requests.Load() + nodes[1].requests.Load()
		code, got, _, _ := get(t, c, front.URL+"/app", "", "JSESSIONID=MADE-UP")
		if code != 200 || (got != "n1" && got != "n2") {
			t.Errorf("an id that never came: %d from %q", code, got)
		}
		if after := nodes[0].requests.Load() + nodes[1].requests.Load(); after != before+1 {
			t.Errorf("%d requests reached the backends, want 1", after-before)
		}
		if _, ok := tab.Lookup("p", "MADE-UP", time.Minute); ok {
			t.Error("an id no backend issued was pinned")
		}
	})

	t.Run("client gives up", func(t *testing.T) {
		await(time.Second)
		before := nodes[0].requests.Load() + nodes[1].requests.Load()
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequestWithContext(ctx, "GET", "http://app.example.com/app", nil)
		req.Header.Set("Cookie", "JSESSIONID=NEVER")
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() { recover() }() // the balancer ends a request whose client left with http.ErrAbortHandler
			lb.ServeHTTP(rec, req)
		}()
		waitWaiting(t, tab, 1)
		cancel()
		<-done
		waitWaiting(t, tab, 0)
		if after := nodes[0].requests.Load() + nodes[1].requests.Load(); after != before {
			t.Errorf("%d requests reached a backend after the client gave up while waiting", after-before)
		}
	})
}

// TestStickyAwaitConfig refuses waits below zero or over a second.
func TestStickyAwaitConfig(t *testing.T) {
	for _, d := range []time.Duration{-time.Millisecond, 2 * time.Second} {
		cfg := testConfig(StickyLearn)
		cfg.Services[0].Sticky.Await = d
		if _, err := New(cfg); err == nil {
			t.Errorf("Sticky.Await %v accepted", d)
		}
	}
}
