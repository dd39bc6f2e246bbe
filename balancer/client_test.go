package balancer

import (
	"io"
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
