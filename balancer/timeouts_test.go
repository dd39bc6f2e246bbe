package balancer

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// stallServer answers /<name> with a header and a first body chunk, then
// stalls until release is closed, then writes "end". started receives the
// path once the first chunk is flushed.
func stallServer(t *testing.T, started chan<- string, release map[string]chan struct{}) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "stall")
		io.WriteString(w, "start\n")
		w.(http.Flusher).Flush()
		started <- r.URL.Path
		select {
		case <-release[r.URL.Path]:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "end\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestReadTimeoutBetweenReads: Timeouts.Read bounds the time between two
// reads of the response (nginx proxy_read_timeout), not only the header
// wait. A body that stalls longer gets the client's connection aborted
// and counts as a backend failure; a service with a longer timeout on the
// same backend, whose stall overlaps, does not share the short deadline.
func TestReadTimeoutBetweenReads(t *testing.T) {
	started := make(chan string, 2)
	release := map[string]chan struct{}{"/short": make(chan struct{}), "/long": make(chan struct{})}
	srv := stallServer(t, started, release)
	defer close(release["/short"])

	cfg := testConfig(StickyOff)
	short := cfg.Services[0]
	short.Name, short.Default, short.Hosts = "short", false, []string{"short.example.com"}
	short.Timeouts.Read = 100 * time.Millisecond
	long := cfg.Services[0]
	long.Name, long.Default, long.Hosts = "long", false, []string{"long.example.com"}
	cfg.Services = []Service{short, long}
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "stall", URL: srv.URL}})
	front, c := newFront(t, lb)

	// No client timeout: a stall the balancer missed shows as the test
	// context expiring, not as a client error.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(host, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+path, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s%s: status %d, want 200", host, path, resp.StatusCode)
		}
		if got := <-started; got != path {
			t.Fatalf("backend started %s, want %s", got, path)
		}
		return resp
	}
	// The long-timeout response stalls first and stays stalled while the
	// short-timeout one times out.
	lr := open("long.example.com", "/long")
	defer lr.Body.Close()
	sr := open("short.example.com", "/short")
	b, err := io.ReadAll(sr.Body)
	sr.Body.Close()
	if ctx.Err() != nil {
		t.Fatal("the stalled body was not cut within 10 s")
	}
	if err == nil || string(b) != "start\n" {
		t.Fatalf("stalled body: read %q, err %v; want the first chunk and an aborted connection", b, err)
	}
	close(release["/long"])
	if b, err := io.ReadAll(lr.Body); err != nil || string(b) != "start\nend\n" {
		t.Fatalf("long-timeout body: read %q, err %v; want it whole", b, err)
	}
	bs := lb.Status().Pools[0].Backends[0]
	if bs.Failures != 1 || !strings.Contains(bs.LastError, "timeout") {
		t.Errorf("backend failures %d, last error %q; want 1 timeout", bs.Failures, bs.LastError)
	}
	if got := len(lb.rtByTO); got != 2 {
		t.Errorf("%d transports for two services with different timeouts, want 2", got)
	}
}

// endlessBody is a request body of zeros that ends only at limit.
type endlessBody struct {
	n, limit int64
}

func (e *endlessBody) Read(p []byte) (int, error) {
	if e.n >= e.limit {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), e.limit-e.n)]
	clear(p)
	atomic.AddInt64(&e.n, int64(len(p)))
	return len(p), nil
}

// TestWriteTimeoutBetweenWrites: a backend that stops reading the request
// body fails the try after Timeouts.Write (nginx proxy_send_timeout); the
// body is not replayed elsewhere, and the client gets 504.
func TestWriteTimeoutBetweenWrites(t *testing.T) {
	block := make(chan struct{})
	var hits atomic.Int64
	deaf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select { // never reads the body
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer deaf.Close()
	defer close(block)
	other := newCarbonNode(t, "other")

	cfg := testConfig(StickyOff)
	cfg.Services[0].Timeouts.Write = 100 * time.Millisecond
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "deaf", URL: deaf.URL}, other.backend()})

	const limit = 1 << 30
	body := &endlessBody{limit: limit}
	req := httptest.NewRequest("POST", "http://app.example.com/upload", body)
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	lb.ServeHTTP(rec, req) // round robin: the first try goes to deaf
	if rec.Code != http.StatusGatewayTimeout {
		t.Errorf("status %d (%s), want 504", rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	if n := atomic.LoadInt64(&body.n); n >= limit {
		t.Errorf("the whole %d-byte body was sent to a backend that reads nothing", n)
	}
	if hits.Load() != 1 || other.requests.Load() != 0 {
		t.Errorf("tries: deaf %d, other %d; want 1 and 0 (a read body is never replayed)", hits.Load(), other.requests.Load())
	}
	if bs := backendStatus(lb, "deaf"); bs.Failures != 1 || !strings.Contains(bs.LastError, "timeout") {
		t.Errorf("deaf: failures %d, last error %q; want 1 timeout", bs.Failures, bs.LastError)
	}
}

func backendStatus(lb *Balancer, id string) BackendStatus {
	for _, p := range lb.Status().Pools {
		for _, b := range p.Backends {
			if b.ID == id {
				return b
			}
		}
	}
	return BackendStatus{}
}

// recordConn is a net.Conn whose reads return one byte and which records
// the deadlines set on it.
type recordConn struct {
	net.Conn
	log []string
}

func (c *recordConn) Read(p []byte) (int, error)  { c.log = append(c.log, "read"); return 1, nil }
func (c *recordConn) Write(p []byte) (int, error) { c.log = append(c.log, "write"); return len(p), nil }
func (c *recordConn) SetReadDeadline(t time.Time) error {
	c.log = append(c.log, "read deadline "+deadlineKind(t))
	return nil
}
func (c *recordConn) SetWriteDeadline(t time.Time) error {
	c.log = append(c.log, "write deadline "+deadlineKind(t))
	return nil
}

func deadlineKind(t time.Time) string {
	if t.IsZero() {
		return "cleared"
	}
	return "set"
}

// TestDeadlineConn checks when the backend connection moves its deadlines:
// no read deadline before the response starts (the Transport's background
// read of an idle or fresh connection, the header wait, a slow upload),
// one before each later read, cleared by the next request's write; reads
// and writes within 1/16 of the timeout do not move it again.
func TestDeadlineConn(t *testing.T) {
	rc := &recordConn{}
	c := &deadlineConn{Conn: rc, read: time.Hour, write: time.Hour}
	var p [1]byte
	c.Write(p[:]) // request
	c.Write(p[:]) // more request body, within Write/16
	c.Read(p[:])  // the background read gets the response's first byte
	c.Read(p[:])  // body
	c.Read(p[:])  // body, within Read/16
	c.Write(p[:]) // next request on the kept-alive connection
	c.Read(p[:])  // its response's first byte
	want := []string{
		"write deadline set", "write", "write",
		"read",
		"read deadline set", "read",
		"read",
		"read deadline cleared", "write",
		"read",
	}
	if diff := cmp.Diff(want, rc.log); diff != "" {
		t.Errorf("calls on the connection (-want +got):\n%s", diff)
	}
}

// TestIdleTimeoutBelowRead: idle connections are closed before the read
// deadline left on their background read could fire.
func TestIdleTimeoutBelowRead(t *testing.T) {
	cfg := testConfig(StickyOff)
	cfg.Services[0].Timeouts.Read = 2 * time.Second
	lb := mustNew(t, cfg)
	lb.mu.Lock()
	tr := lb.rtByTO[lb.cfg.Services[0].Timeouts]
	lb.mu.Unlock()
	if tr == nil {
		t.Fatal("no transport for the service's timeouts")
	}
	if tr.IdleTimeout != time.Second || tr.Fallback.IdleConnTimeout != time.Second || tr.Fallback.ResponseHeaderTimeout != 2*time.Second {
		t.Errorf("idle time %v, fallback IdleConnTimeout %v, ResponseHeaderTimeout %v; want 1s, 1s and 2s",
			tr.IdleTimeout, tr.Fallback.IdleConnTimeout, tr.Fallback.ResponseHeaderTimeout)
	}
}

// TestUpdateClosesRetiredTransports: when an Update leaves no service with
// the timeouts of a transport, its idle backend connections are closed at
// once instead of after IdleConnTimeout; the transports still in use keep
// theirs.
func TestUpdateClosesRetiredTransports(t *testing.T) {
	closed := make(chan string, 8)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- c.RemoteAddr().String()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	cfg := testConfig(StickyOff)
	a := cfg.Services[0]
	a.Name, a.Default, a.Hosts = "a", false, []string{"a.example.com"}
	b := a
	b.Name, b.Hosts = "b", []string{"b.example.com"}
	b.Timeouts.Dial = 3 * time.Second // idle connections live 90 s in both transports
	cfg.Services = []Service{a, b}
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "s", URL: srv.URL}})
	front, c := newFront(t, lb)
	for _, host := range []string{"a.example.com", "b.example.com"} {
		if code, _, _, body := get(t, c, front.URL, host); code != 200 || body != "ok" {
			t.Fatalf("%s: status %d, body %q", host, code, body)
		}
	}

	// Service b gets a's timeouts: b's transport is retired.
	cfg.Services[1].Timeouts = a.Timeouts
	if err := lb.Update(cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the retired transport's idle connection was not closed within 10 s")
	}
	// One connection closed, not both: a's transport keeps its own, and
	// both services are served through it.
	for _, host := range []string{"a.example.com", "b.example.com"} {
		if code, _, _, body := get(t, c, front.URL, host); code != 200 || body != "ok" {
			t.Fatalf("%s after the update: status %d, body %q", host, code, body)
		}
	}
	select {
	case addr := <-closed:
		t.Errorf("a second backend connection (%s) was closed: the transport in use lost its idle connection", addr)
	default:
	}
}
