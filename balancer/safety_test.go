package balancer

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The tests of this file try the request path as a hostile client and a
// misbehaving backend would: each asserts what the client got, what the
// backend saw, and what the balancer holds afterwards.

// watchedFront serves lb behind a real HTTP/1.1 server (startFront) and
// sends on done each time a ServeHTTP call has returned, however it ended.
func watchedFront(t *testing.T, lb *Balancer) (*httptest.Server, chan struct{}) {
	t.Helper()
	done := make(chan struct{}, 64)
	front := startFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		lb.ServeHTTP(w, r)
	}))
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
	cfg.Services[0].ClientBodyTimeout = time.Second
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
		// A slow client's pace, well inside the timeout between two
		// parts even on a loaded machine.
		time.Sleep(100 * time.Millisecond)
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

func (u *unwrapWriter) Header() http.Header { return u.w.Header() }

func (u *unwrapWriter) Write(p []byte) (int, error) { return u.w.Write(p) }

func (u *unwrapWriter) WriteHeader(code int) { u.w.WriteHeader(code) }

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
	front := startFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lb.ServeHTTP(&unwrapWriter{w: w}, r)
	}))
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
