package balancer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for the handler's and the test's
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAccessLogJSON: with Config.AccessLog, one JSON record per request at
// Info with the request's account; the X-Request-ID a client sent reaches
// the backend and the log, and one is made for a request without.
func TestAccessLogJSON(t *testing.T) {
	n1 := newCarbonNode(t, "n1")
	var buf lockedBuffer
	cfg := testConfig(StickyLearn)
	cfg.AccessLog = slog.New(slog.NewJSONHandler(&buf, nil))
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{n1.backend()})
	front, done := watchedFront(t, lb)

	req, _ := http.NewRequest("POST", front.URL+"/soap", strings.NewReader("<envelope/>"))
	req.Header.Set("X-Request-ID", "abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	<-done
	if got := n1.header().Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("backend saw X-Request-ID %q", got)
	}
	resp, err = http.Get(front.URL + "/none?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-done
	made := n1.header().Get("X-Request-Id")
	if len(made) != 32 {
		t.Errorf("made request id %q, want 32 hex digits", made)
	}

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d records, want 2:\n%s", len(lines), buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal([]byte(lines[1]), &second)
	for k, want := range map[string]any{
		"level": "INFO", "msg": "access", "method": "POST", "path": "/soap", "status": float64(200),
		"bytes_in": float64(len("<envelope/>")), "bytes_out": float64(len("n1\n")), "service": "default",
		"backend": "n1", "sticky": "none", "retries": float64(0), "request_id": "abc-123",
	} {
		if first[k] != want {
			t.Errorf("first record %s = %v, want %v", k, first[k], want)
		}
	}
	for _, k := range []string{"time", "client", "host", "duration"} {
		if _, ok := first[k]; !ok {
			t.Errorf("first record has no %s", k)
		}
	}
	if second["request_id"] != made || second["path"] != "/none" {
		t.Errorf("second record: %v", second)
	}
}

// TestMiddlewareSeesBackend: a handler wrapping the balancer learns which
// service and backend served a request, and what the balancer answered
// itself.
func TestMiddlewareSeesBackend(t *testing.T) {
	n1, n2 := newCarbonNode(t, "n1"), newCarbonNode(t, "n2")
	cfg := testConfig(StickyLearn)
	cfg.Services[0].Default = false
	cfg.Services[0].Hosts = []string{"app.example.com"}
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{n1.backend(), n2.backend()})
	seen := make(chan Outcome, 8)
	front, c := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, o := WithOutcome(r)
		lb.ServeHTTP(w, r)
		seen <- *o
	}))
	_, be, cookies, _ := get(t, c, front.URL+"/", "app.example.com")
	o := <-seen
	if o.Service != "default" || o.Pool != "p" || o.Backend != be || o.Status != 200 || o.Sticky != "none" {
		t.Errorf("first request: %+v (backend header %s)", o, be)
	}
	get(t, c, front.URL+"/", "app.example.com", cookiePair(cookies, "JSESSIONID"))
	if o := <-seen; o.Backend != be || o.Sticky != "hit" {
		t.Errorf("session request: %+v, want backend %s, hit", o, be)
	}
	get(t, c, front.URL+"/", "other.example.com")
	if o := <-seen; o.Status != 404 || o.Backend != "" || o.Service != "" {
		t.Errorf("unknown host: %+v", o)
	}
}

// TestAccessLogCut: a response cut short after its header keeps the
// status sent in the log and the Outcome, and says who cut it: a backend
// that closes before the length it announced ("backend", with its error),
// or a client that goes away mid-body ("client"). A whole response says
// nothing.
func TestAccessLogCut(t *testing.T) {
	liar, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer liar.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { // one response announcing 100 bytes and sending 10
		defer wg.Done()
		c, err := liar.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
	}()
	const big = 64 << 20 // more than the sockets between hold
	streamer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(big))
		chunk := make([]byte, 32<<10)
		for n := 0; n < big; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return // the balancer gave up
			}
		}
	}))
	defer streamer.Close()

	var buf lockedBuffer
	cfg := testConfig(StickyOff)
	cfg.AccessLog = slog.New(slog.NewJSONHandler(&buf, nil))
	cfg.Services[0].Health.MaxFails = -1
	lb := mustNew(t, cfg)
	seen := make(chan Outcome, 1)
	front := startFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, o := WithOutcome(r)
		defer func() { seen <- *o }() // also when the balancer aborts the response
		lb.ServeHTTP(w, r)
	}))
	record := func() map[string]any {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	lb.SetBackends("p", []Backend{{ID: "liar", URL: "http://" + liar.Addr().String()}})
	if resp, err := http.Get(front.URL + "/"); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Error("the client read a whole response from a backend that sent 10 of 100 bytes")
		}
	}
	o := <-seen
	if o.Cut != "backend" || o.Status != 200 || o.BytesOut != 10 || o.Backend != "liar" {
		t.Errorf("backend cut: outcome %+v", o)
	}
	if r := record(); r["cut"] != "backend" || r["status"] != float64(200) || r["err"] == nil {
		t.Errorf("backend cut: record %v", r)
	}

	lb.SetBackends("p", []Backend{{ID: "streamer", URL: streamer.URL}})
	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // mid-body: the transport closes the connection
	o = <-seen
	if o.Cut != "client" || o.Status != 200 || o.BytesOut < 1<<20 || o.BytesOut >= big {
		t.Errorf("client cut: outcome %+v", o)
	}
	if r := record(); r["cut"] != "client" || r["status"] != float64(200) {
		t.Errorf("client cut: record %v", r)
	}

	lb.SetBackends("p", []Backend{newCarbonNode(t, "n1").backend()})
	resp, err = http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if o := <-seen; o.Cut != "" || o.Status != 200 {
		t.Errorf("whole response: outcome %+v", o)
	}
	if r := record(); r["cut"] != nil || r["err"] != nil {
		t.Errorf("whole response: record %v", r)
	}
}
