package balancer

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeNodes is an in-memory RoundTripper standing for backends "http://bN":
// no sockets, so synctest can drive the health-check timers.
type fakeNodes struct {
	mu      sync.Mutex // protects the maps
	hits    map[string]int
	healthy map[string]bool // health endpoint answer
	refuse  map[string]bool // connection refused
}

func newFakeNodes(names ...string) *fakeNodes {
	f := &fakeNodes{hits: map[string]int{}, healthy: map[string]bool{}, refuse: map[string]bool{}}
	for _, n := range names {
		f.healthy[n] = true
	}
	return f
}

func (f *fakeNodes) set(name string, healthy, refuse bool) {
	f.mu.Lock()
	f.healthy[name], f.refuse[name] = healthy, refuse
	f.mu.Unlock()
}

func (f *fakeNodes) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[name]
}

func (f *fakeNodes) RoundTrip(req *http.Request) (*http.Response, error) {
	name := strings.TrimSuffix(req.URL.Host, ":80")
	f.mu.Lock()
	refuse, healthy := f.refuse[name], f.healthy[name]
	if req.URL.Path != "/health" && !refuse {
		f.hits[name]++
	}
	f.mu.Unlock()
	if refuse {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	code := 200
	if req.URL.Path == "/health" && !healthy {
		code = 503
	}
	body := name + "\n"
	return &http.Response{StatusCode: code, Header: http.Header{"X-Backend": {name}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

func serveN(lb *Balancer, n int, cookie string) map[string]int {
	got := map[string]int{}
	for range n {
		req := httptest.NewRequest("GET", "http://app.example.com/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		lb.ServeHTTP(rec, req)
		got[rec.Header().Get("X-Backend")+":"+http.StatusText(rec.Code)]++
	}
	return got
}

func backendState(lb *Balancer, id string) string {
	for _, p := range lb.Status().Pools {
		for _, b := range p.Backends {
			if b.ID == id {
				return b.State
			}
		}
	}
	return "absent"
}

func TestActiveHealthCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNodes("b1", "b2")
		cfg := testConfig(StickyOff)
		cfg.Transport = f
		h := &cfg.Services[0].Health
		h.Active, h.Path, h.Interval, h.Timeout, h.Rise, h.Fall, h.Jitter = CheckHTTP, "/health", time.Second, 500*time.Millisecond, 2, 2, 0
		lb, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer lb.Close()
		lb.SetBackends("p", []Backend{{ID: "b1", URL: "http://b1"}, {ID: "b2", URL: "http://b2"}})
		synctest.Wait()
		if s := backendState(lb, "b1"); s != "up" {
			t.Fatalf("b1 starts %q, want up", s)
		}
		f.set("b1", false, false)
		time.Sleep(1500 * time.Millisecond) // one failing probe: below Fall
		synctest.Wait()
		if s := backendState(lb, "b1"); s != "up" {
			t.Fatalf("after one failed probe b1 is %q, want up (Fall 2)", s)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if s := backendState(lb, "b1"); s != "down" {
			t.Fatalf("after two failed probes b1 is %q, want down", s)
		}
		before := f.count("b1")
		got := serveN(lb, 100, "")
		if f.count("b1") != before || got["b2:OK"] != 100 {
			t.Fatalf("a down backend got requests: %v", got)
		}
		f.set("b1", true, false)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if s := backendState(lb, "b1"); s != "up" {
			t.Fatalf("after two good probes b1 is %q, want up", s)
		}
		if got := serveN(lb, 10, ""); got["b1:OK"] != 5 {
			t.Errorf("recovered backend share: %v, want 5 of 10", got)
		}
	})
}

func TestTCPHealthCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "open", URL: "http://" + ln.Addr().String()}, {ID: "closed", URL: deadURL(t)}})
	h := lb.state.Load().services[0].Health
	h.Active = CheckTCP
	for _, be := range lb.state.Load().pools["p"].backends {
		err := lb.probe(t.Context(), be, h)
		if (err == nil) != (be.id == "open") {
			t.Errorf("TCP probe of %s: %v", be.id, err)
		}
	}
}

// TestPassiveHealth: a crashed node is hidden from users at its first
// failed request, long before membership would remove it, and comes back
// after the cool-off through one trial request.
func TestPassiveHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNodes("b1", "b2")
		cfg := testConfig(StickyOff)
		cfg.Transport = f
		cfg.Services[0].Health.FailTimeout = 10 * time.Second
		lb, _ := New(cfg)
		defer lb.Close()
		lb.SetBackends("p", []Backend{{ID: "b1", URL: "http://b1"}, {ID: "b2", URL: "http://b2"}})
		f.set("b1", true, true) // crashed: connection refused
		got := serveN(lb, 50, "")
		if got["b2:OK"] != 50 {
			t.Fatalf("users saw failures: %v", got)
		}
		if s := backendState(lb, "b1"); s != "cooling" {
			t.Fatalf("b1 is %q, want cooling", s)
		}
		f.set("b1", true, false) // restarted
		time.Sleep(5 * time.Second)
		if got := serveN(lb, 10, ""); got["b2:OK"] != 10 {
			t.Fatalf("b1 got traffic during its cool-off: %v", got)
		}
		time.Sleep(5 * time.Second)
		got = serveN(lb, 10, "")
		if got["b1:OK"] == 0 || backendState(lb, "b1") != "up" {
			t.Fatalf("b1 not back after the cool-off: %v, state %s", got, backendState(lb, "b1"))
		}
	})
}

func TestFailOpen(t *testing.T) {
	for _, open := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeNodes("b1")
			cfg := testConfig(StickyOff)
			cfg.Transport = f
			h := &cfg.Services[0].Health
			h.Active, h.Path, h.Interval, h.Fall, h.Jitter, h.FailOpen = CheckHTTP, "/health", time.Second, 1, 0, open
			lb, _ := New(cfg)
			defer lb.Close()
			f.set("b1", false, false) // health endpoint fails, requests work
			lb.SetBackends("p", []Backend{{ID: "b1", URL: "http://b1"}})
			synctest.Wait()
			got := serveN(lb, 1, "")
			want := "b1:OK"
			if !open {
				want = ":Service Unavailable"
			}
			if got[want] != 1 {
				t.Errorf("FailOpen=%v: %v, want %s", open, got, want)
			}
		})
	}
}

func TestDrainAndSlowStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNodes("b1", "b2", "b3")
		cfg := testConfig(StickyInsert)
		cfg.Transport = f
		cfg.Services[0].Health.SlowStart = 10 * time.Second
		lb, _ := New(cfg)
		defer lb.Close()
		time.Sleep(time.Minute) // past any slow start of the first backends
		b1, b2 := Backend{ID: "b1", URL: "http://b1"}, Backend{ID: "b2", URL: "http://b2"}
		lb.SetBackends("p", []Backend{b1, b2})
		time.Sleep(time.Minute)
		// A session pinned to b1.
		req := httptest.NewRequest("GET", "http://x/", nil)
		rec := httptest.NewRecorder()
		lb.ServeHTTP(rec, req)
		if rec.Header().Get("X-Backend") != "b1" {
			t.Fatalf("first request went to %s", rec.Header().Get("X-Backend"))
		}
		pin := cookiePair(rec.Header().Values("Set-Cookie"), "CARBONLB")
		b1.Draining = true
		lb.SetBackends("p", []Backend{b1, b2})
		if got := serveN(lb, 10, pin); got["b1:OK"] != 10 {
			t.Errorf("draining backend lost its session: %v", got)
		}
		if got := serveN(lb, 10, ""); got["b2:OK"] != 10 {
			t.Errorf("draining backend got new sessions: %v", got)
		}
		if s := backendState(lb, "b1"); s != "draining" {
			t.Errorf("b1 state %q, want draining", s)
		}
		// b3 joins cold: a small share at first, its full share later.
		b1.Draining = false
		lb.SetBackends("p", []Backend{b1, b2, {ID: "b3", URL: "http://b3"}})
		time.Sleep(time.Second)
		early := serveN(lb, 300, "")["b3:OK"]
		time.Sleep(20 * time.Second)
		late := serveN(lb, 300, "")["b3:OK"]
		if early >= 40 || late < 90 {
			t.Errorf("slow start: b3 got %d/300 at 1 s and %d/300 later; want < 40 then about 100", early, late)
		}
	})
}

func TestRepinOnBackendDeath(t *testing.T) {
	n1, n2 := newCarbonNode(t, "n1"), newCarbonNode(t, "n2")
	lb := mustNew(t, testConfig(StickyLearn))
	lb.SetBackends("p", []Backend{n1.backend(), n2.backend()})
	front, c := newFront(t, lb)
	var onN1 []string
	for len(onN1) < 20 {
		_, be, sc, _ := get(t, c, front.URL+"/", "")
		if be == "n1" {
			onN1 = append(onN1, cookiePair(sc, "JSESSIONID"))
		}
	}
	n1.srv.Close() // the node dies: connection refused
	for i, ck := range onN1 {
		code, be, _, _ := get(t, c, front.URL+"/", "", ck)
		if code != 200 || be != "n2" {
			t.Fatalf("session %d after n1 died: %d from %q, want 200 from n2", i, code, be)
		}
		// The new pin is learned: the session now stays on n2.
		if _, be, _, _ := get(t, c, front.URL+"/", "", ck); be != "n2" {
			t.Fatalf("session %d not re-pinned to n2: %s", i, be)
		}
	}
	st := lb.Status().Services[0]
	if st.Repins != 20 {
		t.Errorf("Status repins = %d, want 20", st.Repins)
	}
	// Removing the dead backend also re-pins on the next request.
	lb.SetBackends("p", []Backend{n2.backend()})
	if _, be, _, _ := get(t, c, front.URL+"/", "", onN1[0]); be != "n2" {
		t.Errorf("after removal: %s", be)
	}
}

// TestOneTrialRequest: after the cool-off exactly one request may try the
// backend until its outcome is known.
func TestOneTrialRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(StickyOff)
		cfg.Transport = newFakeNodes("b1")
		lb, _ := New(cfg)
		defer lb.Close()
		lb.SetBackends("p", []Backend{{ID: "b1", URL: "http://b1"}})
		st := lb.state.Load()
		s, be := st.services[0], st.pools["p"].backends[0]
		now := time.Now()
		lb.result(s, be, 0, errString("connection refused"), now)
		if be.usable(now.UnixNano()) {
			t.Fatal("usable during the cool-off")
		}
		later := now.Add(s.Health.FailTimeout).UnixNano()
		if !be.usable(later) {
			t.Fatal("not usable after the cool-off")
		}
		ticket, ok := be.claim(later, 0)
		if !ok || ticket == 0 {
			t.Fatal("no trial after the cool-off")
		}
		if _, ok := be.claim(later, 0); be.usable(later) || ok {
			t.Fatal("a second trial while the first is in flight")
		}
		if got := be.active.Load(); got != 1 {
			t.Errorf("active = %d after one claim and one refused claim, want 1", got)
		}
		be.release(ticket + 1) // not the holder's ticket
		if be.trial.Load() != ticket {
			t.Fatal("a request without the ticket released the trial")
		}
		be.active.Add(1)
		lb.result(s, be, ticket, nil, time.Unix(0, later))
		be.release(ticket)
		if !be.usable(later) || backendState(lb, "b1") != "up" || be.active.Load() != 0 {
			t.Fatal("not up after a good trial")
		}
		if got := lb.Status().Pools[0].Backends[0].Transitions; got != 2 {
			t.Errorf("transitions = %d after down and up, want 2", got)
		}
	})
}

// statusNodes is an in-memory RoundTripper whose backends "http://bN"
// answer with a fixed status each, after reading the request body.
type statusNodes struct {
	mu   sync.Mutex // protects hits
	code map[string]int
	hits map[string]int
}

func (f *statusNodes) RoundTrip(req *http.Request) (*http.Response, error) {
	name := strings.TrimSuffix(req.URL.Host, ":80")
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
	}
	f.mu.Lock()
	f.hits[name]++
	f.mu.Unlock()
	body := name + "\n"
	return &http.Response{StatusCode: f.code[name], Header: http.Header{"X-Backend": {name}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// TestFailStatuses: with HealthCheck.FailStatuses, a 5xx answer counts
// towards MaxFails like a transport error; an idempotent request is retried
// on another backend when one is available, anything else gets the
// backend's own response.
func TestFailStatuses(t *testing.T) {
	tests := []struct {
		name     string
		fail     []int
		codes    map[string]int
		method   string
		body     string
		want     string // "backend:status" seen by the client
		hits     map[string]int
		cooling  []string
		failures map[string]uint64
	}{{
		name: "GET retried on a healthy backend", fail: []int{502, 503, 504},
		codes: map[string]int{"b1": 503, "b2": 200}, method: "GET",
		want: "b2:200", hits: map[string]int{"b1": 1, "b2": 1},
		cooling: []string{"b1"}, failures: map[string]uint64{"b1": 1, "b2": 0},
	}, {
		name: "POST with a body passed on", fail: []int{502, 503, 504},
		codes: map[string]int{"b1": 502, "b2": 200}, method: "POST", body: "order=1",
		want: "b1:502", hits: map[string]int{"b1": 1},
		cooling: []string{"b1"}, failures: map[string]uint64{"b1": 1, "b2": 0},
	}, {
		name: "every backend failing: the last response", fail: []int{503},
		codes: map[string]int{"b1": 503, "b2": 503}, method: "GET",
		want: "b2:503", hits: map[string]int{"b1": 1, "b2": 1},
		cooling: []string{"b1", "b2"}, failures: map[string]uint64{"b1": 1, "b2": 1},
	}, {
		name: "status not listed", fail: []int{502},
		codes: map[string]int{"b1": 503, "b2": 200}, method: "GET",
		want: "b1:503", hits: map[string]int{"b1": 1},
		failures: map[string]uint64{"b1": 0, "b2": 0},
	}, {
		name:  "off by default",
		codes: map[string]int{"b1": 502, "b2": 200}, method: "GET",
		want: "b1:502", hits: map[string]int{"b1": 1},
		failures: map[string]uint64{"b1": 0, "b2": 0},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &statusNodes{code: tc.codes, hits: map[string]int{}}
			cfg := testConfig(StickyOff)
			cfg.Transport = f
			cfg.Services[0].Health.FailStatuses = tc.fail
			lb := mustNew(t, cfg)
			lb.SetBackends("p", []Backend{{ID: "b1", URL: "http://b1"}, {ID: "b2", URL: "http://b2"}})
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			rec := httptest.NewRecorder()
			lb.ServeHTTP(rec, httptest.NewRequest(tc.method, "http://app.example.com/", body))
			if got := rec.Header().Get("X-Backend") + ":" + strconv.Itoa(rec.Code); got != tc.want {
				t.Errorf("client got %s, want %s", got, tc.want)
			}
			if diff := cmp.Diff(tc.hits, f.hits); diff != "" {
				t.Errorf("tries per backend (-want +got):\n%s", diff)
			}
			failures := map[string]uint64{}
			var cooling []string
			for _, b := range lb.Status().Pools[0].Backends {
				failures[b.ID] = b.Failures
				if b.State == "cooling" {
					cooling = append(cooling, b.ID)
				}
			}
			if diff := cmp.Diff(tc.failures, failures); diff != "" {
				t.Errorf("failures (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.cooling, cooling); diff != "" {
				t.Errorf("backends cooling off (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := New(Config{Services: []Service{{Name: "s", Pool: "p", Default: true, Health: HealthCheck{FailStatuses: []int{1000}}}}}); !errors.Is(err, ErrConfig) {
		t.Errorf("FailStatuses {1000}: err %v, want ErrConfig", err)
	}
}
