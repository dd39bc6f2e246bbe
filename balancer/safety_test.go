package balancer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests of this file try the request path as a hostile client and a
// misbehaving backend would: each asserts what the client got, what the
// backend saw, and what the balancer holds afterwards.

// watchedFront serves lb behind a real HTTP/1.1 server and sends on done
// each time a ServeHTTP call has returned, however it ended.
func watchedFront(t *testing.T, lb *Balancer) (*httptest.Server, chan struct{}) {
	t.Helper()
	done := make(chan struct{}, 64)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		lb.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front, done
}

// rawExchange writes req on a new connection to addr and returns what the
// server sent until it closed the connection or stopped sending for 5 s.
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// waitUntil spins, yielding, until cond holds; it fails the test after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func statusLine(resp string) string {
	line, _, _ := strings.Cut(resp, "\r\n")
	return line
}

// TestClientBodyErrorsDoNotMarkBackendDown: a malformed, truncated or
// oversized request body is the client's fault. The client gets 400 or 413
// (or nothing, when it went away), and the backends stay in service.
func TestClientBodyErrorsDoNotMarkBackendDown(t *testing.T) {
	n1, n2 := newCarbonNode(t, "n1"), newCarbonNode(t, "n2")
	cfg := testConfig(StickyOff)
	cfg.Services[0].MaxBodyBytes = 100 << 10
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{n1.backend(), n2.backend()})
	front, done := watchedFront(t, lb)
	addr := front.Listener.Addr().String()

	big := strings.Repeat("x", 70<<10) // over the buffered size: streamed
	cases := []struct {
		name, req, want string
	}{
		// First: a streamed body of a case before could reach a backend
		// after its request ended, and be counted here.
		{"small body cut short", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this", ""},
		{"malformed chunk size", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "HTTP/1.1 400 "},
		{"malformed chunk after data", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", "HTTP/1.1 400 "},
		{"chunked over MaxBodyBytes", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n11800\r\n" + big + big[:0x11800-len(big)] + "\r\n11800\r\n" + big + big[:0x11800-len(big)] + "\r\n0\r\n\r\n", "HTTP/1.1 413 "},
		{"large body cut short", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 90000\r\n\r\n" + big, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := n1.requests.Load() + n2.requests.Load()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, tc.req)
			if tc.want == "" {
				c.(*net.TCPConn).CloseWrite() // the client gives up halfway
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, _ := io.ReadAll(c)
			c.Close()
			<-done
			if !strings.HasPrefix(string(got), tc.want) {
				t.Errorf("client got %q, want %q", statusLine(string(got)), tc.want)
			}
			if tc.want == "" && len(got) != 0 {
				t.Errorf("a client that went away got %q", statusLine(string(got)))
			}
			for _, id := range []string{"n1", "n2"} {
				if bs := backendStatus(lb, id); bs.State != "up" || bs.Failures != 0 || bs.Active != 0 {
					t.Errorf("%s after the request: state %s, failures %d, active %d", id, bs.State, bs.Failures, bs.Active)
				}
			}
			if strings.HasPrefix(tc.name, "small") {
				if after := n1.requests.Load() + n2.requests.Load(); after != before {
					t.Errorf("a broken body was read before any backend was chosen, yet a backend saw %d requests", after-before)
				}
			}
		})
	}
	// Both backends still serve.
	_, c := newFront(t, lb)
	seen := map[string]bool{}
	for range 4 {
		code, be, _, _ := get(t, c, front.URL+"/", "")
		<-done
		if code != 200 {
			t.Fatalf("after the broken bodies: %d", code)
		}
		seen[be] = true
	}
	if !seen["n1"] || !seen["n2"] {
		t.Errorf("backends serving afterwards: %v, want n1 and n2", seen)
	}
}

// TestClientBodyTimeout: a client that stops sending its body for longer
// than ClientBodyTimeout gets 408 and its connection closed; a small body
// holds no backend connection meanwhile, and no backend is blamed.
func TestClientBodyTimeout(t *testing.T) {
	n1 := newCarbonNode(t, "n1")
	cfg := testConfig(StickyOff)
	cfg.Services[0].ClientBodyTimeout = 150 * time.Millisecond
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{n1.backend()})
	front, done := watchedFront(t, lb)
	addr := front.Listener.Addr().String()
	for _, tc := range []struct{ name, head string }{
		{"small body", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nten bytes."},
		{"chunked body", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\nten bytes.\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := n1.requests.Load()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.head) // and nothing more
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c) // EOF: the balancer closed the connection
			if err != nil {
				t.Fatalf("connection not closed after the response: %v", err)
			}
			<-done
			if !strings.HasPrefix(string(got), "HTTP/1.1 408 ") {
				t.Errorf("client got %q, want 408", statusLine(string(got)))
			}
			if bs := backendStatus(lb, "n1"); bs.State != "up" || bs.Failures != 0 || bs.Active != 0 {
				t.Errorf("backend: state %s, failures %d, active %d", bs.State, bs.Failures, bs.Active)
			}
			if tc.name == "small body" && n1.requests.Load() != before {
				t.Error("the backend saw a request whose small body never arrived")
			}
		})
	}
	// A client that sends slowly, but more often than the timeout, is served.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
	for _, part := range []string{"ab", "cd", "ef"} {
		// Well inside the timeout between two parts.
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c, part)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-done
	if resp.StatusCode != 200 || n1.lastBody != "abcdef" {
		t.Errorf("slow client: %d, backend got %q", resp.StatusCode, n1.lastBody)
	}
}

// TestCLTEClosesConnection: a request with both Content-Length and
// Transfer-Encoding is answered and its connection closed (RFC 9112,
// section 6.1), so nothing after it on the connection — a request a front
// proxy that trusted Content-Length would have passed along — is read.
func TestCLTEClosesConnection(t *testing.T) {
	n1 := newCarbonNode(t, "n1")
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{n1.backend()})
	front, done := watchedFront(t, lb)
	got := rawExchange(t, front.Listener.Addr().String(),
		"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	<-done
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("first response: %q", statusLine(got))
	}
	if !strings.Contains(got, "\r\nConnection: close\r\n") {
		t.Errorf("response does not close the connection:\n%s", got)
	}
	if n := strings.Count(got, "HTTP/1.1 "); n != 1 {
		t.Errorf("%d responses on the connection, want 1:\n%s", n, got)
	}
	if n1.requests.Load() != 1 {
		t.Errorf("backend saw %d requests, want 1 (no smuggled one)", n1.requests.Load())
	}
}

// TestH2CUpgradeNotForwarded: Upgrade: h2c is not passed to backends
// (h2c smuggling); the request goes as a plain one. WebSocket still is.
func TestH2CUpgradeNotForwarded(t *testing.T) {
	n1 := newCarbonNode(t, "n1")
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{n1.backend()})
	front, c := newFront(t, lb)
	req, _ := http.NewRequest("GET", front.URL+"/", nil)
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h := n1.header()
	for _, k := range []string{"Upgrade", "Http2-Settings", "Connection"} {
		if v, ok := h[k]; ok {
			t.Errorf("backend saw %s: %q", k, v)
		}
	}
	if got := allowedUpgrade([]string{"h2c, WebSocket"}, []string{"websocket"}); got != "WebSocket" {
		t.Errorf("allowedUpgrade = %q, want WebSocket", got)
	}
}

// TestNoInventedHeaders: a backend response without Content-Type or Date
// reaches the client without them.
func TestNoInventedHeaders(t *testing.T) {
	addr := rawBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n<html>hi</html", false)
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "raw", URL: addr}})
	front, done := watchedFront(t, lb)
	got := rawExchange(t, front.Listener.Addr().String(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	<-done
	head, _, _ := strings.Cut(got, "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
		t.Fatalf("response %q", got)
	}
	for _, k := range []string{"Content-Type:", "Date:"} {
		if strings.Contains(head, "\r\n"+k) {
			t.Errorf("the balancer added %s:\n%s", k, head)
		}
	}
}

// unwrapWriter is a logging ResponseWriter that hides the server's
// Flusher but offers Unwrap, the http.ResponseController convention.
type unwrapWriter struct {
	w http.ResponseWriter
}

func (u *unwrapWriter) Header() http.Header         { return u.w.Header() }
func (u *unwrapWriter) Write(p []byte) (int, error) { return u.w.Write(p) }
func (u *unwrapWriter) WriteHeader(code int)        { u.w.WriteHeader(code) }
func (u *unwrapWriter) Unwrap() http.ResponseWriter { return u.w }

// TestFlushThroughUnwrapWrapper: an event stream is flushed event by event
// through a wrapper that offers only Unwrap.
func TestFlushThroughUnwrapWrapper(t *testing.T) {
	next := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 2 {
			io.WriteString(w, "data: "+string(rune('a'+i))+"\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(backend.Close)
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "sse", URL: backend.URL}})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lb.ServeHTTP(&unwrapWriter{w: w}, r)
	}))
	t.Cleanup(front.Close)
	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// The first event arrives while the backend still holds the stream
	// open: it was flushed, not held in a buffer.
	line, err := br.ReadString('\n')
	if err != nil || line != "data: a\n" {
		t.Fatalf("first event: %q, %v", line, err)
	}
	close(next)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: b\n\n" {
		t.Errorf("rest of the stream: %q", rest)
	}
}

// TestTrialReleasedOnEveryExit: after a passive cool-off, the one trial
// request is released however it ends — success, backend failure, the
// client giving up, a client body fault, a body over the limit, a response
// cut short, a FailStatuses status — so the backend is never left cooling
// for good. Each case puts the backend in its cool-off, sends the trial
// request, and checks that the slot is free and the next verdict possible.
func TestTrialReleasedOnEveryExit(t *testing.T) {
	var mode atomic.Value // the backend's behaviour for /trial
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/trial" {
			io.WriteString(w, "ok\n")
			return
		}
		switch mode.Load().(string) {
		case "ok":
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok\n")
		case "503":
			w.WriteHeader(503)
		case "reset":
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		case "cut":
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "short")
			w.(http.Flusher).Flush()
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		case "stall":
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "read":
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok\n")
		}
	}))
	t.Cleanup(backend.Close)

	cfg := testConfig(StickyOff)
	cfg.Services[0].Health.FailStatuses = []int{503}
	cfg.Services[0].MaxBodyBytes = 100 << 10
	cfg.Services[0].Retry.Attempts = 1
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "b", URL: backend.URL}})
	front, done := watchedFront(t, lb)
	addr := front.Listener.Addr().String()
	be := lb.state.Load().pools["p"].backends[0]
	big := strings.Repeat("y", 70<<10)

	cases := []struct {
		name    string
		mode    string
		send    func(t *testing.T)
		cooling bool // the trial's verdict: the backend failed again
	}{
		{"success", "ok", func(t *testing.T) {
			rawExchange(t, addr, "GET /trial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		}, false},
		{"backend reset", "reset", func(t *testing.T) {
			rawExchange(t, addr, "GET /trial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		}, true},
		{"fail status", "503", func(t *testing.T) {
			rawExchange(t, addr, "GET /trial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		}, true},
		{"response cut short", "cut", func(t *testing.T) {
			rawExchange(t, addr, "GET /trial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		}, false},
		{"client gives up", "stall", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/trial", nil)
			errc := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
			}()
			<-arrived
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("client: %v", err)
			}
		}, false},
		{"malformed client body", "read", func(t *testing.T) {
			rawExchange(t, addr, "POST /trial HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
		}, false},
		{"client body over the limit", "read", func(t *testing.T) {
			rawExchange(t, addr, "POST /trial HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
				"11800\r\n"+big+big[:0x11800-len(big)]+"\r\n11800\r\n"+big+big[:0x11800-len(big)]+"\r\n0\r\n\r\n")
		}, false},
		{"client gone mid-body", "read", func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "POST /trial HTTP/1.1\r\nHost: x\r\nContent-Length: 90000\r\n\r\n"+big)
			c.Close()
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A failure puts the backend in its cool-off, then the
			// cool-off is over: the next request is the trial.
			lb.result(lb.state.Load().services[0], be, 0, errString("test failure"), time.Now())
			be.downUntil.Store(1)
			mode.Store(tc.mode)
			tc.send(t)
			<-done
			if tk := be.trial.Load(); tk != 0 {
				t.Fatalf("trial slot still held (ticket %d)", tk)
			}
			if a := be.active.Load(); a != 0 {
				t.Fatalf("%d requests still counted active", a)
			}
			cooling := be.downUntil.Load() > 1
			if cooling != tc.cooling {
				t.Errorf("cooling again = %v, want %v", cooling, tc.cooling)
			}
			// Another trial can be taken: the backend is not stuck.
			be.downUntil.Store(1)
			mode.Store("ok")
			rawExchange(t, addr, "GET /trial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			<-done
			if st := backendState(lb, "b"); st != "up" {
				t.Errorf("after a good trial the backend is %q, want up", st)
			}
		})
	}
}

// TestTrialSlowToServeBackend is the restarted Tomcat: its port accepts
// connections seconds before it answers. The trial request's client gives
// up while the backend is still silent; once the backend serves, the next
// request is a new trial and brings it back.
func TestTrialSlowToServeBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	accepted := make(chan struct{}, 8)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					select { // still starting: say nothing
					case <-serving:
					case <-time.After(10 * time.Second):
						return
					}
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
				}
			}()
		}
	}()
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "tomcat", URL: "http://" + ln.Addr().String()}})
	front, done := watchedFront(t, lb)
	be := lb.state.Load().pools["p"].backends[0]

	lb.result(lb.state.Load().services[0], be, 0, errString("connection refused"), time.Now())
	be.downUntil.Store(1) // the cool-off is over
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-accepted
	cancel() // the client's timeout
	<-errc
	<-done
	if be.trial.Load() != 0 {
		t.Fatal("the abandoned trial still holds the slot")
	}
	close(serving) // Tomcat has started
	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-done
	if resp.StatusCode != 200 || backendState(lb, "tomcat") != "up" {
		t.Errorf("after the backend started: %d, state %s", resp.StatusCode, backendState(lb, "tomcat"))
	}
}

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
