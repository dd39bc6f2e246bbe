package balancer

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// connCountingServer is a backend that counts the connections it accepted
// and the requests it served, and reports closed connections on closed.
type connCountingServer struct {
	*httptest.Server
	conns, requests atomic.Int64
	closed          chan struct{}
}

func newConnCountingServer(t *testing.T, h http.HandlerFunc) *connCountingServer {
	t.Helper()
	s := newUnstartedConnCountingServer(h)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// newUnstartedConnCountingServer is newConnCountingServer not yet started,
// for a caller to configure and start (StartTLS) and close.
func newUnstartedConnCountingServer(h http.HandlerFunc) *connCountingServer {
	s := &connCountingServer{closed: make(chan struct{}, 64)}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h(w, r)
	}))
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.conns.Add(1)
		case http.StateClosed:
			select {
			case s.closed <- struct{}{}:
			default:
			}
		}
	}
	return s
}

// idleConns returns the number of idle connections to key in the pool of
// the transport of lb's first service.
func idleConns(lb *Balancer, key connKey) int {
	lb.mu.Lock()
	tr := lb.rtByTO[lb.cfg.Services[0].Timeouts]
	lb.mu.Unlock()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.idle[key])
}

func okHandler(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }

// TestH1KeepAlive: body-less requests (GET and HEAD), answered with and
// without a body, share one backend connection.
func TestH1KeepAlive(t *testing.T) {
	srv := newConnCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/chunked":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b\n")
		default:
			okHandler(w, r)
		}
	})
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.URL}})
	front, c := newFront(t, lb)
	for i, path := range []string{"/", "/empty", "/chunked", "/", "/empty", "/chunked"} {
		code, _, _, body := get(t, c, front.URL+path, "")
		want := map[string]string{"/": "ok\n", "/empty": "", "/chunked": "ab\n"}[path]
		if code/100 != 2 || body != want {
			t.Fatalf("request %d %s: status %d body %q, want 2xx %q", i, path, code, body, want)
		}
	}
	for range 2 {
		resp, err := c.Head(front.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != 3 {
			t.Fatalf("HEAD: status %d, Content-Length %d; want 200 and the GET's 3", resp.StatusCode, resp.ContentLength)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d backend connections for 8 sequential requests, want 1", n)
	}
	// The connection is in the balancer's own pool, not net/http's.
	if idle := idleConns(lb, connKey{addr: srv.Listener.Addr().String()}); useH1 && idle != 1 {
		t.Errorf("%d idle connections in the pool, want 1", idle)
	}
}

// TestH1StaleIdleConnection: a pooled connection the backend closed while it
// was idle is replaced without the client or the backend's health noticing.
func TestH1StaleIdleConnection(t *testing.T) {
	srv := newConnCountingServer(t, okHandler)
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.URL}})
	front, c := newFront(t, lb)
	for i := range 3 {
		if code, _, _, body := get(t, c, front.URL+"/", ""); code != 200 || body != "ok\n" {
			t.Fatalf("request %d: status %d body %q", i, code, body)
		}
		srv.CloseClientConnections()
		select {
		case <-srv.closed:
		case <-time.After(10 * time.Second):
			t.Fatal("the backend did not close its connection within 10 s")
		}
	}
	if code, _, _, _ := get(t, c, front.URL+"/", ""); code != 200 {
		t.Fatalf("after the backend closed its idle connections: status %d", code)
	}
	bs := backendStatus(lb, "b")
	if bs.Failures != 0 || srv.requests.Load() != 4 {
		t.Errorf("backend failures %d (last error %q), requests served %d; want 0 and 4", bs.Failures, bs.LastError, srv.requests.Load())
	}
}

// TestH1HeaderTimeoutOnReusedConnection: a response header that does not
// come within Timeouts.Read on a pooled connection is a 504, and the request
// is not written again on another connection.
func TestH1HeaderTimeoutOnReusedConnection(t *testing.T) {
	release := make(chan struct{})
	srv := newConnCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		okHandler(w, r)
	})
	defer close(release)
	cfg := testConfig(StickyOff)
	cfg.Services[0].Timeouts.Read = 100 * time.Millisecond
	cfg.Services[0].Retry.Attempts = 1
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.URL}})
	front, c := newFront(t, lb)
	if code, _, _, _ := get(t, c, front.URL+"/", ""); code != 200 {
		t.Fatalf("first request: status %d", code)
	}
	if code, _, _, _ := get(t, c, front.URL+"/slow", ""); code != http.StatusGatewayTimeout {
		t.Errorf("stalled header: status %d, want 504", code)
	}
	if n, k := srv.requests.Load(), srv.conns.Load(); n != 2 || k != 1 {
		t.Errorf("backend saw %d requests on %d connections, want 2 on 1", n, k)
	}
	if bs := backendStatus(lb, "b"); !strings.Contains(bs.LastError, "timeout") {
		t.Errorf("last error %q, want a timeout", bs.LastError)
	}
}

// TestH1EarlyHints: informational responses before the final one are
// skipped.
func TestH1EarlyHints(t *testing.T) {
	srv := newConnCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		okHandler(w, r)
	})
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.URL}})
	front, c := newFront(t, lb)
	for i := range 2 {
		if code, _, _, body := get(t, c, front.URL+"/", ""); code != 200 || body != "ok\n" {
			t.Fatalf("request %d: status %d body %q, want 200 ok", i, code, body)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d backend connections, want 1", n)
	}
}

// TestH1IdleConnectionsExpire: idle backend connections are closed after
// IdleConnTimeout even when no request comes to find them.
func TestH1IdleConnectionsExpire(t *testing.T) {
	srv := newConnCountingServer(t, okHandler)
	cfg := testConfig(StickyOff)
	cfg.IdleConnTimeout = 50 * time.Millisecond
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.URL}})
	front, c := newFront(t, lb)
	if code, _, _, _ := get(t, c, front.URL+"/", ""); code != 200 {
		t.Fatalf("status %d", code)
	}
	select {
	case <-srv.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle backend connection was not closed within 10 s")
	}
}

// TestH1ClientGone: a client that goes away while the backend has not
// answered ends the backend exchange and its connection.
func TestH1ClientGone(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := newConnCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done() // ends when the balancer closes the connection
	})
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.URL}})
	front, _ := newFront(t, lb)
	conn, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
	<-started
	conn.Close()
	select {
	case <-srv.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend connection was not closed within 10 s of the client leaving")
	}
	if bs := backendStatus(lb, "b"); bs.Failures != 0 {
		t.Errorf("a client leaving counted as a backend failure: %q", bs.LastError)
	}
}

// rawBackend answers every connection's first request with reply, written
// as is, then closes the connection when close is set.
func rawBackend(t *testing.T, reply string, closeAfter bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			buf := make([]byte, 4096)
			c.Read(buf) // the request; small enough for one read on loopback
			io.WriteString(c, reply)
			if closeAfter {
				c.Close()
			}
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestH1BadResponses: a backend that answers garbage is a 502 and a
// failure; one that answers HTTP/1.0 with a body ended by closing is passed
// on whole.
func TestH1BadResponses(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		closeAfter  bool
		wantCode    int
		wantBody    string
	}{
		{"garbage", "SSH-2.0-OpenSSH_9.6\r\n", true, http.StatusBadGateway, ""},
		{"bad header", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nok", true, http.StatusBadGateway, ""},
		{"no status line then close", "", true, http.StatusBadGateway, ""},
		{"HTTP/1.0 body until close", "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it\n", true, http.StatusOK, "all of it\n"},
		{"header over 1 MiB", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxResponseHeader+1) + "\r\n\r\n", true, http.StatusBadGateway, ""},
		{"informational headers over 1 MiB", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: "+strings.Repeat("l", 300<<10)+"\r\n\r\n", 4) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, http.StatusBadGateway, ""},
		{"informational flood", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", max1xxResponses+1) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, http.StatusBadGateway, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.name, "1 MiB") || strings.Contains(tc.name, "flood") {
				skipStdClient(t) // net/http's Transport allows 10 MB of header and bounds 1xx responses by their size
			}
			cfg := testConfig(StickyOff)
			cfg.Services[0].Retry.Attempts = 1
			lb := mustNew(t, cfg)
			lb.SetBackends("p", []Backend{{ID: "raw", URL: rawBackend(t, tc.reply, tc.closeAfter)}})
			front, c := newFront(t, lb)
			code, _, _, body := get(t, c, front.URL+"/", "")
			if code != tc.wantCode || (tc.wantCode == 200 && body != tc.wantBody) {
				t.Errorf("status %d body %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
			bs := backendStatus(lb, "raw")
			if (bs.Failures > 0) != (tc.wantCode != 200) {
				t.Errorf("backend failures %d (last error %q) for a %d", bs.Failures, bs.LastError, tc.wantCode)
			}
			if strings.Contains(tc.name, "1 MiB") && !strings.Contains(bs.LastError, "header larger than") {
				t.Errorf("last error %q, want the header limit", bs.LastError)
			}
		})
	}
}

// TestH1HTTPSBackend: an https backend is reached over TLS (HTTP/1.1, the
// certificate verified with Config.TLSClientConfig) on one kept-alive
// connection; without the backend's CA the handshake fails: 502.
func TestH1HTTPSBackend(t *testing.T) {
	srv := newUnstartedConnCountingServer(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.ProtoMajor != 1 {
			http.Error(w, "want HTTP/1.1 over TLS, got "+r.Proto, http.StatusBadRequest)
			return
		}
		okHandler(w, r)
	})
	srv.EnableHTTP2 = true                           // the backend offers h2; the balancer asks for HTTP/1.1
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)

	cfg := testConfig(StickyOff)
	cfg.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "tls", URL: srv.URL}})
	front, c := newFront(t, lb)
	for i := range 3 {
		if code, _, _, body := get(t, c, front.URL+"/", ""); code != 200 || body != "ok\n" {
			t.Fatalf("request %d: status %d body %q", i, code, body)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d backend connections for 3 requests, want 1", n)
	}
	if idle := idleConns(lb, connKey{tls: true, addr: srv.Listener.Addr().String()}); useH1 && idle != 1 {
		t.Errorf("%d idle TLS connections in the balancer's pool, want 1", idle)
	}

	untrusting := mustNew(t, testConfig(StickyOff)) // system roots only
	untrusting.SetBackends("p", []Backend{{ID: "tls", URL: srv.URL}})
	front2, c2 := newFront(t, untrusting)
	if code, _, _, _ := get(t, c2, front2.URL+"/", ""); code != http.StatusBadGateway {
		t.Errorf("backend certificate from an unknown CA: status %d, want 502", code)
	}
	if bs := backendStatus(untrusting, "tls"); !strings.Contains(bs.LastError, "certificate") {
		t.Errorf("last error %q, want a certificate error", bs.LastError)
	}
}

// TestH1Concurrent: concurrent requests over connections that the backend
// closes when idle for a few milliseconds, or after answering with
// Connection: close, all succeed and none counts as a failure.
func TestH1Concurrent(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%5 == 0 {
			w.Header().Set("Connection", "close")
		}
		okHandler(w, r)
	}))
	srv.Config.IdleTimeout = 2 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.URL}})
	front, c := newFront(t, lb)
	const workers, each = 8, 150
	errs := make(chan string, workers*each)
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				resp, err := c.Get(front.URL + "/")
				if err != nil {
					errs <- err.Error()
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(b) != "ok\n" {
					errs <- fmt.Sprintf("worker %d request %d: status %d body %q err %v", w, i, resp.StatusCode, b, err)
				}
				if i%10 == 0 {
					time.Sleep(3 * time.Millisecond) // let the backend's idle timeout close pooled connections
				}
			}
		}()
	}
	for range workers {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if bs := backendStatus(lb, "b"); bs.Failures != 0 {
		t.Errorf("%d backend failures, last %q", bs.Failures, bs.LastError)
	}
	if got := n.Load(); got != workers*each {
		t.Errorf("backend served %d requests, want %d (each once)", got, workers*each)
	}
}

// TestH1RequestBodies: small bodies of known length go over pooled
// connections and are written again when a pooled connection turns out
// closed; larger ones and bodies of unknown length go through net/http's
// Transport. Every body arrives whole.
func TestH1RequestBodies(t *testing.T) {
	srv := newConnCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %d %x", r.ContentLength, len(b), sha256.Sum256(b))
	})
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.URL}})
	front, c := newFront(t, lb)
	post := func(body io.Reader, length int64) {
		t.Helper()
		data, _ := io.ReadAll(body)
		var rd io.Reader = bytes.NewReader(data)
		if length < 0 {
			rd = io.MultiReader(rd) // hides the length: the client sends it chunked
		}
		req, _ := http.NewRequest("POST", front.URL+"/services/Echo", rd)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf("%d %d %x", length, len(data), sha256.Sum256(data))
		if resp.StatusCode != 200 || string(got) != want {
			t.Fatalf("POST of %d bytes (length %d): status %d, backend saw %q, want %q", len(data), length, resp.StatusCode, got, want)
		}
	}
	soap := strings.Repeat("<soapenv:Envelope/>", 100)
	for range 3 {
		post(strings.NewReader(soap), int64(len(soap)))
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d backend connections for 3 small POSTs, want 1", n)
	}
	want := int64(5)
	if useH1 {
		// net/http's Transport may write the POST on the closed connection
		// before its reader noticed the close, and then not write it again.
		srv.CloseClientConnections()
		select {
		case <-srv.closed:
		case <-time.After(10 * time.Second):
			t.Fatal("the backend did not close its connection within 10 s")
		}
		post(strings.NewReader(soap), int64(len(soap))) // sent on a new connection
		want++
	}
	big := strings.Repeat("x", maxBufferedBody+1)
	post(strings.NewReader(big), int64(len(big)))
	post(strings.NewReader(soap), -1)
	if bs := backendStatus(lb, "b"); bs.Failures != 0 {
		t.Errorf("%d backend failures, last %q", bs.Failures, bs.LastError)
	}
	if n := srv.requests.Load(); n != want {
		t.Errorf("backend served %d requests, want %d (each once)", n, want)
	}
}

// TestH1ResponseTrailers: trailers of a chunked response reach the client,
// and the connection is reused after them.
func TestH1ResponseTrailers(t *testing.T) {
	srv := newConnCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "part one\n")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two\n")
		w.Header().Set("X-Checksum", "c0ffee")
	})
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.URL}})
	front, c := newFront(t, lb)
	for i := range 2 {
		resp, err := c.Get(front.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "part one\npart two\n" || resp.Trailer.Get("X-Checksum") != "c0ffee" {
			t.Errorf("request %d: body %q err %v trailer %q, want both parts and X-Checksum c0ffee", i, body, err, resp.Trailer.Get("X-Checksum"))
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d backend connections, want 1", n)
	}
}
