package balancer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The tests of a connection's life through the engine: clients that go
// away, timeouts, Shutdown and Close, panics, TLS.

// accessStatus waits until the access log in buf holds a record of path
// and returns its status and bytes_out.
func accessStatus(t *testing.T, buf *lockedBuffer, path string) (status, bytesOut float64) {
	t.Helper()
	var rec struct {
		Path     string  `json:"path"`
		Status   float64 `json:"status"`
		BytesOut float64 `json:"bytes_out"`
	}
	waitUntil(t, "the access log record of "+path, func() bool {
		for line := range strings.SplitSeq(buf.String(), "\n") {
			if strings.Contains(line, `"path":"`+path+`"`) {
				if err := json.Unmarshal([]byte(line), &rec); err == nil {
					return true
				}
			}
		}
		return false
	})
	return rec.Status, rec.BytesOut
}

// TestServerClientGone: a client that goes away while its request waits
// for the backend, in the middle of its body, or in the middle of the
// response ends the backend's request. The first two are logged with
// status 499; the third with the status it was sent and the bytes that
// went out.
func TestServerClientGone(t *testing.T) {
	be := newEchoBackend(t)
	var buf lockedBuffer
	addr := startEngine(t, &Server{Balancer: engineBalancer(t, be, &buf)})

	// abandon sends req, waits until the backend has its path, hangs up,
	// and checks that the backend's request is canceled and logged 499.
	abandon := func(t *testing.T, req, path string) {
		t.Helper()
		rc := dialRaw(t, addr)
		rc.send(req)
		if p := recv(t, be.arrived); p != path {
			t.Fatalf("backend got %s", p)
		}
		rc.c.Close()
		if p := recv(t, be.canceled); p != path {
			t.Errorf("canceled %s, want %s", p, path)
		}
		if st, _ := accessStatus(t, &buf, path); st != 499 {
			t.Errorf("logged status %v, want 499", st)
		}
	}
	t.Run("waiting for the backend", func(t *testing.T) {
		abandon(t, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n", "/block")
	})
	t.Run("mid-body", func(t *testing.T) {
		// Longer than what the balancer buffers: it is streamed.
		abandon(t, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("b", 1000), "/up")
	})
	t.Run("mid-response", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream: %v %v", resp, err)
		}
		if _, err := io.ReadFull(resp.Body, make([]byte, 100<<10)); err != nil {
			t.Fatal(err)
		}
		rc.c.Close()
		if p := recv(t, be.canceled); p != "/stream" {
			t.Errorf("canceled %s, want /stream", p)
		}
		st, out := accessStatus(t, &buf, "/stream")
		if st != 200 || out < 100<<10 || out >= 160e6 {
			t.Errorf("logged status %v with %v bytes out, want 200 with part of the stream", st, out)
		}
	})
}

// TestServerTimeouts: a connection idle longer than IdleTimeout is closed
// silently; a head that takes longer than ReadHeaderTimeout gets 408.
func TestServerTimeouts(t *testing.T) {
	be := newEchoBackend(t)
	addr := startEngine(t, &Server{Balancer: engineBalancer(t, be, nil), IdleTimeout: 50 * time.Millisecond, ReadHeaderTimeout: 100 * time.Millisecond})
	rc := dialRaw(t, addr)
	rc.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := rc.response("GET"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !rc.closed() {
		t.Error("an idle connection was not closed")
	}
	rc = dialRaw(t, addr)
	rc.send("GET /a HTTP/1.1\r\nHo")
	if resp, _ := rc.response("GET"); resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a stalled head got %d, want 408", resp.StatusCode)
	}
	if !rc.closed() {
		t.Error("the connection of a stalled head stayed open")
	}
}

// engineGoroutines counts the goroutines running the engine's code.
func engineGoroutines() int {
	n := 0
	for _, g := range strings.Split(stacks(), "\n\n") {
		if strings.Contains(g, "balancer.(*conn).") || strings.Contains(g, "balancer.(*watcher).") ||
			strings.Contains(g, "balancer.(*Server).") {
			n++
		}
	}
	return n
}

// waitNoEngineGoroutines fails t when engine goroutines remain after a
// bounded wait (one that has returned may still be counted for a moment).
func waitNoEngineGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for engineGoroutines() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("engine goroutines left:\n%s", stacks())
		}
		runtime.Gosched()
	}
}

// TestServerShutdown: Shutdown closes idle connections and the listener
// at once, lets a request in flight finish with Connection: close, then
// returns; no goroutine of the engine is left.
func TestServerShutdown(t *testing.T) {
	be := newEchoBackend(t)
	s := &Server{Balancer: engineBalancer(t, be, nil)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()

	busy := dialRaw(t, addr)
	busy.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	if p := recv(t, be.arrived); p != "/block" {
		t.Fatalf("backend got %s", p)
	}
	idle := dialRaw(t, addr)
	idle.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.response("GET")
	recv(t, be.arrived)

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	if !idle.closed() {
		t.Error("Shutdown left an idle connection open")
	}
	if err := recv(t, served); err != http.ErrServerClosed {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("the listener still accepts after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(be.release)
	resp, body := busy.response("GET")
	if resp.StatusCode != 200 || body != "GET /block " || !resp.Close {
		t.Errorf("the request in flight: %d %q, close %v; want 200, its body, Connection: close", resp.StatusCode, body, resp.Close)
	}
	if !busy.closed() {
		t.Error("the connection stayed open after its last response")
	}
	if err := recv(t, shut); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	waitNoEngineGoroutines(t)
}

// TestServerClose: Close cancels the requests in flight (the backend's
// request ends), closes every connection and returns once their handlers
// have; no goroutine of the engine is left, the background read of a
// watched request included.
func TestServerClose(t *testing.T) {
	be := newEchoBackend(t)
	s := &Server{Balancer: engineBalancer(t, be, nil)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	busy := dialRaw(t, ln.Addr().String())
	busy.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	recv(t, be.arrived)
	idle := dialRaw(t, ln.Addr().String())
	idle.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.response("GET")
	recv(t, be.arrived)
	// The request in flight is watched once it has run for watchDelay.
	waitUntil(t, "the background read", func() bool { return strings.Contains(stacks(), "balancer.(*watcher).read") })
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if p := recv(t, be.canceled); p != "/block" {
		t.Errorf("canceled %s, want /block", p)
	}
	if err := recv(t, served); err != http.ErrServerClosed {
		t.Errorf("Serve returned %v", err)
	}
	if !busy.closed() || !idle.closed() {
		t.Error("Close left a connection open")
	}
	waitNoEngineGoroutines(t)
}

// TestServerPanic: a handler's panic closes the connection without a
// response; it is logged with its stack, but http.ErrAbortHandler, which
// is how a handler gives up a response, is not.
func TestServerPanic(t *testing.T) {
	var buf lockedBuffer
	addr := startEngine(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("boom")
	}), Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	rc := dialRaw(t, addr)
	rc.send("GET /abort HTTP/1.1\r\nHost: x\r\n\r\n")
	if !rc.closed() {
		t.Error("the connection stayed open after an aborted handler")
	}
	if got := buf.String(); got != "" {
		t.Errorf("http.ErrAbortHandler was logged: %s", got)
	}
	rc = dialRaw(t, addr)
	rc.send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
	if !rc.closed() {
		t.Error("the connection stayed open after a panic")
	}
	if got := buf.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "boom") || !strings.Contains(got, "server_life_test.go") {
		t.Errorf("the panic's log: %q, want an error with the value and the stack", got)
	}
}

// TestServerTLS: ServeTLS serves HTTP/1.1 itself, with the request's TLS
// set (the backend sees X-Forwarded-Proto https), and hands a connection
// that negotiates h2 to HTTP2.
func TestServerTLS(t *testing.T) {
	n := newCarbonNode(t, "n1")
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{n.backend()})
	cert, err := SelfSigned("app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Balancer: lb, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, HTTP2: &http.Server{Handler: lb}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ServeTLS(ln) }()
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "app.example.com"}, ForceAttemptHTTP2: h2}
		resp, err := (&http.Client{Transport: tr}).Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		want := 1
		if h2 {
			want = 2
		}
		if resp.StatusCode != 200 || resp.ProtoMajor != want || n.header().Get("X-Forwarded-Proto") != "https" {
			t.Errorf("h2 %v: %d over %s, X-Forwarded-Proto %q", h2, resp.StatusCode, resp.Proto, n.header().Get("X-Forwarded-Proto"))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := recv(t, served); err != http.ErrServerClosed {
		t.Errorf("ServeTLS returned %v", err)
	}
	waitNoEngineGoroutines(t)
}

// TestServerWatchedPipelined: a request pipelined behind one that is
// being watched for its client going away is not taken for the client
// leaving: the byte the background read took is the next request's
// first, and both are answered in order.
func TestServerWatchedPipelined(t *testing.T) {
	be := newEchoBackend(t)
	addr := startEngine(t, &Server{Balancer: engineBalancer(t, be, nil)})
	rc := dialRaw(t, addr)
	rc.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	if p := recv(t, be.arrived); p != "/block" {
		t.Fatalf("backend got %s", p)
	}
	waitUntil(t, "the background read", func() bool { return strings.Contains(stacks(), "balancer.(*watcher).read") })
	rc.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	waitUntil(t, "the background read to take a byte", func() bool { return !strings.Contains(stacks(), "balancer.(*watcher).read") })
	close(be.release)
	for _, want := range []string{"GET /block ", "GET /next "} {
		if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != want {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
	select {
	case p := <-be.canceled:
		t.Errorf("the backend's request %s was canceled", p)
	default:
	}
}
