package balancer

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestMaxConnsQueue: with MaxConns 1, a second request waits for the
// backend's slot and is served when the first ends; a third finds the
// queue (Max 1) full and gets 503 at once; a waiting request gets 503
// after Queue.Timeout. Status shows the limit and the queue.
func TestMaxConnsQueue(t *testing.T) {
	release, hold2 := make(chan struct{}), make(chan struct{})
	var inFlight, most atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		switch r.URL.Path {
		case "/hold":
			<-release
		case "/hold2":
			<-hold2
		}
		io.WriteString(w, "ok\n")
	}))
	t.Cleanup(backend.Close)
	cfg := testConfig(StickyOff)
	cfg.Services[0].MaxConns = 1
	cfg.Services[0].Queue = Queue{Max: 1, Timeout: 30 * time.Second}
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "b", URL: backend.URL}})
	front, done := watchedFront(t, lb)

	type result struct {
		code int
		err  error
	}
	do := func(path string) chan result {
		ch := make(chan result, 1)
		go func() {
			resp, err := http.Get(front.URL + path)
			if err != nil {
				ch <- result{err: err}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ch <- result{code: resp.StatusCode}
		}()
		return ch
	}
	first := do("/hold")
	waitUntil(t, "the first request at the backend", func() bool { return inFlight.Load() == 1 })
	second := do("/after")
	waitUntil(t, "the second request queued", func() bool { return lb.Status().Pools[0].Waiting == 1 })
	if r := <-do("/third"); r.code != 503 {
		t.Errorf("third request with the queue full: %d %v, want 503", r.code, r.err)
	}
	<-done
	st := lb.Status()
	if st.Pools[0].QueueFull != 1 || st.Services[0].MaxConns != 1 {
		t.Errorf("status: %+v / %+v", st.Pools[0], st.Services[0])
	}
	close(release)
	if r := <-first; r.code != 200 {
		t.Errorf("first: %d %v", r.code, r.err)
	}
	if r := <-second; r.code != 200 {
		t.Errorf("queued request: %d %v", r.code, r.err)
	}
	<-done
	<-done
	if m := most.Load(); m != 1 {
		t.Errorf("backend saw %d requests at once, want at most 1", m)
	}
	if st := lb.Status(); st.Pools[0].Waiting != 0 || st.Services[0].Queued != 2 || st.Pools[0].Backends[0].Active != 0 {
		t.Errorf("after: waiting %d, queued %d, active %d", st.Pools[0].Waiting, st.Services[0].Queued, st.Pools[0].Backends[0].Active)
	}

	// The queue timeout.
	cfg.Services[0].Queue = Queue{Max: 4, Timeout: 100 * time.Millisecond}
	if err := lb.Update(cfg); err != nil {
		t.Fatal(err)
	}
	held := do("/hold2")
	waitUntil(t, "the backend busy", func() bool { return inFlight.Load() == 1 })
	if r := <-do("/late"); r.code != 503 {
		t.Errorf("request past the queue timeout: %d %v, want 503", r.code, r.err)
	}
	<-done
	close(hold2)
	<-held
	<-done
	if st := lb.Status(); st.Pools[0].QueueTimeouts != 1 || st.Pools[0].Waiting != 0 {
		t.Errorf("after the timeout: %+v", st.Pools[0])
	}
}

// TestMaxConnsStickyWaits: a session's request whose backend is at its
// connection limit waits for that backend instead of losing its session to
// another, and is served there once the backend has room.
func TestMaxConnsStickyWaits(t *testing.T) {
	release := make(chan struct{})
	var inFlight atomic.Int64
	mk := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inFlight.Add(1)
			defer inFlight.Add(-1)
			if r.URL.Path == "/hold" {
				<-release
			}
			w.Header().Set("X-Backend", name)
			if _, err := r.Cookie("JSESSIONID"); err != nil {
				w.Header().Set("Set-Cookie", "JSESSIONID="+name+"-session; Path=/")
			}
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := mk("a"), mk("b")
	cfg := testConfig(StickyLearn)
	cfg.Services[0].MaxConns = 1
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "a", URL: a.URL}, {ID: "b", URL: b.URL}})
	front, c := newFront(t, lb)

	_, first, cookies, _ := get(t, c, front.URL+"/", "")
	session := cookiePair(cookies, "JSESSIONID")
	if session == "" {
		t.Fatal("no session")
	}
	// Fill the session's backend.
	held := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", front.URL+"/hold", nil)
		req.Header.Set("Cookie", session)
		resp, err := c.Do(req)
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	waitUntil(t, "the session's backend full", func() bool { return backendStatus(lb, first).Active == 1 })
	type got struct {
		code int
		be   string
	}
	waited := make(chan got, 1)
	go func() {
		req, _ := http.NewRequest("GET", front.URL+"/next", nil)
		req.Header.Set("Cookie", session)
		resp, err := c.Do(req)
		if err != nil {
			waited <- got{}
			return
		}
		resp.Body.Close()
		waited <- got{resp.StatusCode, resp.Header.Get("X-Backend")}
	}()
	waitUntil(t, "the session's request queued", func() bool { return lb.Status().Pools[0].Waiting == 1 })
	// A request without a session goes to the other backend meanwhile.
	if _, be, _, _ := get(t, c, front.URL+"/", ""); be == first {
		t.Errorf("a new request went to the full backend %s", be)
	}
	close(release)
	if code := <-held; code != 200 {
		t.Errorf("held request: %d", code)
	}
	if g := <-waited; g.code != 200 || g.be != first {
		t.Errorf("the session's request: %d from %q, want 200 from %q", g.code, g.be, first)
	}
	if st := lb.Status(); st.Services[0].Repins != 0 {
		t.Errorf("%d sessions re-pinned for a busy backend", st.Services[0].Repins)
	}
}

// TestSlowUploadsHoldNoBackend: clients trickling small bodies hold no
// backend connection while they do; a large streamed body's backend
// connection is bounded by ClientBodyTimeout (TestClientBodyTimeout) and
// MaxConns (TestMaxConnsQueue).
func TestSlowUploadsHoldNoBackend(t *testing.T) {
	var conns atomic.Int64
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	}))
	backend.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	backend.Start()
	t.Cleanup(backend.Close)
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: backend.URL}})
	front, done := watchedFront(t, lb)

	const clients = 40
	cs := make([]net.Conn, clients)
	for i := range cs {
		c, err := net.Dial("tcp", front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
		cs[i] = c
	}
	waitUntil(t, "every upload in the balancer", func() bool { return lb.Status().Services[0].Active == clients })
	if n := conns.Load(); n != 0 {
		t.Errorf("%d backend connections held by %d unfinished small uploads, want 0", n, clients)
	}
	for _, c := range cs {
		io.WriteString(c, "cd")
	}
	for _, c := range cs {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "abcd" {
			t.Errorf("echo %q", b)
		}
		<-done
	}
}
