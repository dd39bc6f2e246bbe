package balancer

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The tests of the engine (Server) speak HTTP/1.1 by hand on loopback, so
// that they control what goes on the wire and when. The whole balancer
// suite also runs through the engine with the balancer_engine tag
// (front_test.go).

// echoBackend answers "METHOD path body" and counts its requests; a
// request to /block waits until release is closed or its client goes.
type echoBackend struct {
	srv      *httptest.Server
	requests atomic.Int64
	mu       sync.Mutex // protects seen
	seen     []string
	canceled chan string   // the path of each request whose context ended before its answer
	arrived  chan string   // the path of each request, as it arrives
	release  chan struct{} // ends the /block requests
}

func newEchoBackend(t testing.TB) *echoBackend {
	t.Helper()
	e := &echoBackend{canceled: make(chan string, 16), arrived: make(chan string, 64), release: make(chan struct{})}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.requests.Add(1)
		e.arrived <- r.URL.Path
		body, err := io.ReadAll(r.Body)
		line := r.Method + " " + r.URL.Path + " " + string(body)
		e.mu.Lock()
		e.seen = append(e.seen, line)
		e.mu.Unlock()
		if err != nil {
			e.canceled <- r.URL.Path
			return
		}
		switch r.URL.Path {
		case "/block":
			select {
			case <-e.release:
			case <-r.Context().Done():
				e.canceled <- r.URL.Path
				return
			}
		case "/stream":
			w.Header().Set("Content-Type", "text/plain")
			chunk := strings.Repeat("s", 16<<10)
			for range 10000 { // 160 MB at most: far more than the socket buffers hold
				if _, err := io.WriteString(w, chunk); err != nil {
					e.canceled <- r.URL.Path
					return
				}
				w.(http.Flusher).Flush()
				if r.Context().Err() != nil {
					e.canceled <- r.URL.Path
					return
				}
			}
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, line)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *echoBackend) lines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.seen...)
}

// engineBalancer is a balancer in front of be, with its access log in
// buf when buf is not nil.
func engineBalancer(t testing.TB, be *echoBackend, buf *lockedBuffer) *Balancer {
	t.Helper()
	cfg := testConfig(StickyOff)
	if buf != nil {
		cfg.AccessLog = slog.New(slog.NewJSONHandler(buf, nil))
	}
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "e", URL: be.srv.URL}})
	return lb
}

// startEngine serves with s on a loopback listener and returns its
// address; the test's cleanup closes s and checks what Serve returned.
func startEngine(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// rawClient is a client connection that writes bytes as given and reads
// responses.
type rawClient struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second)) // a hung exchange fails the test, never hangs it
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawClient) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// response reads one response to a request with method, and its body.
func (rc *rawClient) response(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("reading a response body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection: a read finds
// the end of input (or a reset) before any byte.
func (rc *rawClient) closed() bool {
	rc.t.Helper()
	b, err := rc.br.ReadByte()
	if err == nil {
		rc.t.Errorf("byte %q after the response, want the connection closed", b)
		return false
	}
	return !errors.Is(err, context.DeadlineExceeded) && !isTimeoutErr(err)
}

// recv receives from ch, failing t after 20 s.
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatal("nothing received within 20 s")
	}
	panic("unreachable")
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestServerPipelining: three requests in one write are answered in
// order on the connection, which stays open.
func TestServerPipelining(t *testing.T) {
	be := newEchoBackend(t)
	addr := startEngine(t, &Server{Balancer: engineBalancer(t, be, nil)})
	rc := dialRaw(t, addr)
	rc.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
	var got []string
	for range 3 {
		resp, body := rc.response("GET")
		got = append(got, fmt.Sprintf("%d %s close=%v", resp.StatusCode, body, resp.Close))
	}
	want := []string{"200 GET /1  close=false", "200 POST /2 abc close=false", "200 GET /3  close=false"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("responses (-want +got):\n%s", diff)
	}
	rc.send("GET /4 HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "GET /4 " {
		t.Errorf("a fourth request on the connection: %d %q", resp.StatusCode, body)
	}
}

// TestServerChunkedKeepsConnection: a chunked request without
// Content-Length, followed at once by another request, leaves the
// connection open for it: only Content-Length with Transfer-Encoding
// closes it.
func TestServerChunkedKeepsConnection(t *testing.T) {
	be := newEchoBackend(t)
	addr := startEngine(t, &Server{Balancer: engineBalancer(t, be, nil)})
	rc := dialRaw(t, addr)
	rc.send("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" +
		"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := rc.response("POST")
	if resp.StatusCode != 200 || body != "POST /up hello world" || resp.Close {
		t.Fatalf("chunked request: %d %q, close %v; want 200, the body, the connection kept", resp.StatusCode, body, resp.Close)
	}
	resp, body = rc.response("GET")
	if resp.StatusCode != 200 || body != "GET /next " {
		t.Errorf("pipelined request after the chunked one: %d %q", resp.StatusCode, body)
	}
}

// TestServerCLTE: a request with both Content-Length and
// Transfer-Encoding is framed by its chunked coding, answered with
// Connection: close, and the bytes after it are never read as a request
// (RFC 9112, section 6.1).
func TestServerCLTE(t *testing.T) {
	be := newEchoBackend(t)
	addr := startEngine(t, &Server{Balancer: engineBalancer(t, be, nil)})
	rc := dialRaw(t, addr)
	// A front that trusted Content-Length would see the chunked body's
	// first bytes as the body, and "GET /smuggled" as the next request.
	rc.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" +
		"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := rc.response("POST")
	if resp.StatusCode != 200 || body != "POST /a hello" {
		t.Errorf("response %d %q, want 200 and the chunked body", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Error("no Connection: close")
	}
	if !rc.closed() {
		t.Error("the connection stayed open after a request with Content-Length and Transfer-Encoding")
	}
	if diff := cmp.Diff([]string{"POST /a hello"}, be.lines()); diff != "" {
		t.Errorf("requests the backend saw (-want +got):\n%s", diff)
	}
}

// TestServerRefusals: a request the engine refuses gets exactly its
// status, a short plain body, Connection: close, and the connection
// closed; the backend never sees it. (A malformed chunk is found by the
// balancer as it streams the body to a backend.)
func TestServerRefusals(t *testing.T) {
	be := newEchoBackend(t)
	addr := startEngine(t, &Server{Balancer: engineBalancer(t, be, nil), MaxHeaderBytes: 1 << 10})
	long := strings.Repeat("a", 2<<10)
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"garbage request line", "HELLO\r\n\r\n", 400},
		{"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
		{"request line over MaxHeaderBytes", "GET /" + long + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"head over MaxHeaderBytes", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + long + "\r\n\r\n", 431},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"two lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400},
		{"unsupported expectation", "POST / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\na", 417},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405},
		{"malformed chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.send(tc.req)
			resp, body := rc.response("GET")
			if resp.StatusCode != tc.want || !resp.Close || body == "" {
				t.Errorf("got %d, close %v, body %q; want %d, Connection: close and a body", resp.StatusCode, resp.Close, body, tc.want)
			}
			if !rc.closed() {
				t.Error("the connection stayed open")
			}
			if n := be.requests.Load(); n != 0 && tc.name != "malformed chunk" {
				t.Errorf("the backend saw %d requests, want none", n)
			}
		})
	}
}

// TestServerExpectContinue: 100 Continue goes out once, when the body is
// first read; a request answered without its body never gets it, and its
// connection closes.
func TestServerExpectContinue(t *testing.T) {
	be := newEchoBackend(t)
	cfg := testConfig(StickyOff)
	cfg.Services[0].MaxBodyBytes = 1 << 10
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "e", URL: be.srv.URL}})
	addr := startEngine(t, &Server{Balancer: lb})

	t.Run("read body", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil || resp.StatusCode != 100 {
			t.Fatalf("before the body: %v %v, want 100 Continue", resp, err)
		}
		rc.send("hello")
		resp, body := rc.response("POST")
		if resp.StatusCode != 200 || body != "POST /up hello" {
			t.Errorf("after the body: %d %q", resp.StatusCode, body)
		}
		rc.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n") // one 100, not another before this response
		if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "GET /again " {
			t.Errorf("next request: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("answered unread", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
		resp, _ := rc.response("POST")
		if resp.StatusCode != 413 || !resp.Close {
			t.Errorf("got %d, close %v; want 413 and Connection: close, without 100 Continue", resp.StatusCode, resp.Close)
		}
		if !rc.closed() {
			t.Error("the connection stayed open")
		}
	})
}

// TestServerContentLengthMismatch: a handler that writes fewer or more
// bytes than its Content-Length gets the connection closed after what
// the length allows; the client never reads a byte that is not the
// response's.
func TestServerContentLengthMismatch(t *testing.T) {
	writeErr := make(chan error, 1)
	addr := startEngine(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "01234")
		case "/long":
			w.Header().Set("Content-Length", "5")
			_, err := io.WriteString(w, "0123456789")
			writeErr <- err
		}
	}), Logger: quietLogger()})

	rc := dialRaw(t, addr)
	rc.send("GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); string(b) != "01234" || err != io.ErrUnexpectedEOF {
		t.Errorf("short body: %q, %v; want the 5 bytes and io.ErrUnexpectedEOF", b, err)
	}

	rc = dialRaw(t, addr)
	rc.send("GET /long HTTP/1.1\r\nHost: x\r\n\r\nGET /short HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := rc.response("GET")
	if resp.StatusCode != 200 || body != "01234" {
		t.Errorf("long body: %d %q, want the 5 bytes of the length", resp.StatusCode, body)
	}
	if err := recv(t, writeErr); err != http.ErrContentLength {
		t.Errorf("the handler's Write returned %v, want http.ErrContentLength", err)
	}
	if !rc.closed() {
		t.Error("the connection stayed open after a body over its length")
	}
}

// TestServerHEAD: a HEAD response has the backend's Content-Length and no
// body, and the connection serves the next request.
func TestServerHEAD(t *testing.T) {
	be := newEchoBackend(t)
	addr := startEngine(t, &Server{Balancer: engineBalancer(t, be, nil)})
	rc := dialRaw(t, addr)
	rc.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := rc.response("HEAD")
	if resp.StatusCode != 200 || resp.ContentLength != int64(len("HEAD /h ")) || body != "" {
		t.Errorf("HEAD: %d, length %d, body %q", resp.StatusCode, resp.ContentLength, body)
	}
	if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "GET /g " {
		t.Errorf("GET after HEAD: %d %q", resp.StatusCode, body)
	}
}

// TestServerHTTP10: an HTTP/1.0 client gets HTTP/1.0 responses; its
// connection closes after each unless it asked to keep it and the
// response has a length; a response without one ends with the
// connection.
func TestServerHTTP10(t *testing.T) {
	be := newEchoBackend(t)
	lb := engineBalancer(t, be, nil)
	addr := startEngine(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/unsized" {
			io.WriteString(w, "abc")
			w.(http.Flusher).Flush()
			io.WriteString(w, "def")
			return
		}
		lb.ServeHTTP(w, r)
	}), Logger: quietLogger()})

	t.Run("close", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send("GET /a HTTP/1.0\r\n\r\n")
		resp, body := rc.response("GET")
		if resp.Proto != "HTTP/1.0" || resp.StatusCode != 200 || body != "GET /a " {
			t.Errorf("got %s %d %q", resp.Proto, resp.StatusCode, body)
		}
		if !rc.closed() {
			t.Error("the connection stayed open")
		}
	})
	t.Run("keep-alive", func(t *testing.T) {
		rc := dialRaw(t, addr)
		for _, p := range []string{"/a", "/b"} {
			rc.send("GET " + p + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
			resp, body := rc.response("GET")
			if resp.StatusCode != 200 || body != "GET "+p+" " || resp.Header.Get("Connection") != "keep-alive" {
				t.Fatalf("%s: %d %q, Connection %q", p, resp.StatusCode, body, resp.Header.Get("Connection"))
			}
		}
	})
	t.Run("keep-alive without a length", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send("GET /unsized HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := rc.response("GET")
		if resp.StatusCode != 200 || body != "abcdef" || len(resp.TransferEncoding) != 0 {
			t.Errorf("got %d %q, coding %q; want the body to the connection's end", resp.StatusCode, body, resp.TransferEncoding)
		}
	})
}

// TestServerHijackBuffered: a WebSocket frame sent in the same write as
// the upgrade request, and so read into the connection's buffer with the
// request head, reaches the backend through the hijacked connection.
func TestServerHijackBuffered(t *testing.T) {
	back := httptest.NewServer(http.HandlerFunc(wsEcho))
	t.Cleanup(back.Close)
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "ws", URL: back.URL}})
	addr := startEngine(t, &Server{Balancer: lb})
	rc := dialRaw(t, addr)
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	msg := "early"
	frame := []byte{0x81, 0x80 | byte(len(msg)), 1, 2, 3, 4}
	for i := range len(msg) {
		frame = append(frame, msg[i]^frame[2+i%4])
	}
	rc.send("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n" + string(frame))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	var hdr [2]byte
	if _, err := io.ReadFull(rc.br, hdr[:]); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, hdr[1]&0x7f)
	io.ReadFull(rc.br, p)
	if string(p) != msg {
		t.Errorf("echo %q, want %q", p, msg)
	}
}

// TestServerInformational: 103 Early Hints goes out as the handler writes
// it, with the header as it is then, and the final response follows; an
// HTTP/1.0 client gets only the final one.
func TestServerInformational(t *testing.T) {
	addr := startEngine(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}), Logger: quietLogger()})
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	hints, err := http.ReadResponse(rc.br, nil)
	if err != nil || hints.StatusCode != 103 || hints.Header.Get("Link") != "</style.css>; rel=preload" {
		t.Fatalf("first response: %v %v, want 103 with Link", hints, err)
	}
	if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "ok" || resp.Header.Get("Link") == "" {
		t.Errorf("final response: %d %q, Link %q", resp.StatusCode, body, resp.Header.Get("Link"))
	}
	rc = dialRaw(t, addr)
	rc.send("GET / HTTP/1.0\r\n\r\n")
	if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("HTTP/1.0: %d %q, want the final response only", resp.StatusCode, body)
	}
}

// TestServerRequestForms: an absolute-form target names the host the
// backend sees, whatever the Host field says (RFC 9112, section 3.2.2);
// OPTIONS * goes to the backend as it is; both keep the connection.
func TestServerRequestForms(t *testing.T) {
	n := newCarbonNode(t, "n1")
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{n.backend()})
	addr := startEngine(t, &Server{Balancer: lb})
	rc := dialRaw(t, addr)
	rc.send("GET http://app.example.com/abs?q=1 HTTP/1.1\r\nHost: other.example.com\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := rc.response("GET")
	if resp.StatusCode != 200 || body != "n1\n" || n.header().Get("Host") != "app.example.com" {
		t.Errorf("absolute-form: %d %q, the backend saw Host %q", resp.StatusCode, body, n.header().Get("Host"))
	}
	if resp, _ := rc.response("OPTIONS"); resp.StatusCode != 200 || resp.Close {
		t.Errorf("OPTIONS *: %d, close %v", resp.StatusCode, resp.Close)
	}
}

// TestServerStreamedChunks: a response without a length streamed with
// flushes goes out in the chunked coding exactly, whatever the size of
// each write against the write buffer: small ones buffered, large ones
// sent with their size line and the CRLF after them at once.
func TestServerStreamedChunks(t *testing.T) {
	writes := []string{"ab", strings.Repeat("x", 10<<10), strings.Repeat("y", 3<<10), "c", strings.Repeat("z", 5<<10)}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i, p := range writes {
			io.WriteString(w, p)
			if i != 3 { // the fourth stays buffered with the fifth's size line
				w.(http.Flusher).Flush()
			}
		}
	})}
	rc := dialRaw(t, startEngine(t, s))
	rc.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("Transfer-Encoding %q, want chunked", resp.TransferEncoding)
	}
	var want strings.Builder
	for _, p := range writes {
		fmt.Fprintf(&want, "%x\r\n%s\r\n", len(p), p)
	}
	want.WriteString("0\r\n\r\n")
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(rc.br, got); err != nil {
		t.Fatalf("reading the chunked body: %v", err)
	}
	if string(got) != want.String() {
		t.Fatalf("chunked body on the wire differs:\n got %q…\nwant %q…", got[:min(len(got), 64)], want.String()[:64])
	}
	// The connection serves another request after it.
	rc.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := rc.response("GET"); body != strings.Join(writes, "") {
		t.Errorf("second response body: %d bytes, want %d", len(body), len(strings.Join(writes, "")))
	}
}
