package balancer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/balancer/internal/h1"
	"github.com/google/go-cmp/cmp"
)

// skipStdClient skips a test of h1.Transport's own behaviour when it is
// built with the balancer_stdclient tag (or for a platform where it is
// off): every request then goes through net/http's Transport.
func skipStdClient(t testing.TB) {
	t.Helper()
	if !h1.Enabled {
		t.Skip("tests the balancer's own HTTP/1.1 client; in this build requests go through net/http's Transport")
	}
}

// rawServer is a backend on 127.0.0.1 that speaks HTTP/1.1 by hand: serve
// runs for each accepted connection, on its own goroutine, with the
// connection's index (0 for the first). It records what it read.
type rawServer struct {
	ln     net.Listener
	url    string
	closed chan int      // the index of each connection the client closed
	got    chan struct{} // a request was read

	mu    sync.Mutex // protects the fields below
	conns []net.Conn
	seen  []string // "index METHOD path body" per request read
	wg    sync.WaitGroup
}

func newRawServer(t testing.TB, serve func(s *rawServer, i int, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, url: "http://" + ln.Addr().String(), closed: make(chan int, 64), got: make(chan struct{}, 64)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(s, i, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(s.crash)
	return s
}

// crash closes the listener and every connection, as a killed process
// would, and waits for the serving goroutines.
func (s *rawServer) crash() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// read reads a request and its body on connection i and records it; it
// reports false, and records the close, when the client closed the
// connection.
func (s *rawServer) read(i int, br *bufio.Reader) (*http.Request, bool) {
	req, err := http.ReadRequest(br)
	if err != nil {
		s.closed <- i // EOF, or a reset when unread bytes were left
		return nil, false
	}
	body, _ := io.ReadAll(req.Body)
	s.mu.Lock()
	s.seen = append(s.seen, strings.TrimSpace(fmt.Sprintf("%d %s %s %s", i, req.Method, req.URL.Path, body)))
	s.mu.Unlock()
	select {
	case s.got <- struct{}{}:
	default:
	}
	return req, true
}

// requests returns what the backend read so far.
func (s *rawServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// waitClosed waits until the client closed connection i.
func (s *rawServer) waitClosed(t testing.TB, i int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case j := <-s.closed:
			if j == i {
				return
			}
		case <-timeout:
			t.Fatalf("the client did not close backend connection %d within 10 s", i)
		}
	}
}

// answer writes a response whose body is the request's path.
func answer(c net.Conn, req *http.Request) {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
}

// serveAll answers every request on a connection with its path.
func serveAll(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
	for {
		req, ok := s.read(i, br)
		if !ok {
			return
		}
		answer(c, req)
	}
}

// evilResponse is a complete response that no request asked for.
const evilResponse = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nSet-Cookie: JSESSIONID=EVIL\r\n\r\nevil"

// getAll sends GETs for paths, one after the other, and returns for each
// "status body cookies".
func getAll(t *testing.T, c *http.Client, base string, paths ...string) []string {
	t.Helper()
	var got []string
	for _, p := range paths {
		code, _, cookies, body := get(t, c, base+p, "")
		got = append(got, strings.TrimSpace(fmt.Sprintf("%d %s %s", code, body, strings.Join(cookies, ","))))
	}
	return got
}

// TestPoolOverlongBodyNotReused (issue 11, point 1): a backend whose body
// runs past its Content-Length, with a complete second response carrying a
// session cookie: the bytes past the body are never read as the next
// request's response; the connection is closed.
func TestPoolOverlongBodyNotReused(t *testing.T) {
	srv := newRawServer(t, func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
		for n := 0; ; n++ {
			req, ok := s.read(i, br)
			if !ok {
				return
			}
			if i == 0 && n == 0 {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlong"+evilResponse)
				continue
			}
			answer(c, req)
		}
	})
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.url}})
	front, c := newFront(t, lb)
	got := getAll(t, c, front.URL, "/a", "/b", "/c")
	if diff := cmp.Diff([]string{"200 long", "200 /b", "200 /c"}, got); diff != "" {
		t.Errorf("responses (-want +got):\n%s", diff)
	}
	srv.waitClosed(t, 0)
	if diff := cmp.Diff([]string{"0 GET /a", "1 GET /b", "1 GET /c"}, srv.requests()); diff != "" {
		t.Errorf("requests the backend read (-want +got):\n%s", diff)
	}
	if bs := backendStatus(lb, "b"); bs.Failures != 0 {
		t.Errorf("backend failures %d, last error %q; want 0", bs.Failures, bs.LastError)
	}
}

// TestPoolUnsolicitedResponse (issue 11, point 1): a response the backend
// sends on an idle pooled connection after a correct one, before the next
// request, is never read as that request's response.
//
// net/http's Transport fails this test: its reader of an idle connection
// races with the next request, which often takes the connection first and
// gets the unsolicited response as its own.
func TestPoolUnsolicitedResponse(t *testing.T) {
	skipStdClient(t)
	poke, sent := make(chan struct{}), make(chan struct{})
	srv := newRawServer(t, func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
		for n := 0; ; n++ {
			req, ok := s.read(i, br)
			if !ok {
				return
			}
			answer(c, req)
			if i == 0 && n == 0 {
				<-poke
				io.WriteString(c, evilResponse)
				close(sent)
			}
		}
	})
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.url}})
	front, c := newFront(t, lb)
	got := getAll(t, c, front.URL, "/a")
	close(poke)
	<-sent // the unsolicited response is on its way to the idle connection
	got = append(got, getAll(t, c, front.URL, "/b", "/c")...)
	if diff := cmp.Diff([]string{"200 /a", "200 /b", "200 /c"}, got); diff != "" {
		t.Errorf("responses (-want +got):\n%s", diff)
	}
	srv.waitClosed(t, 0)
	if diff := cmp.Diff([]string{"0 GET /a", "1 GET /b", "1 GET /c"}, srv.requests()); diff != "" {
		t.Errorf("requests the backend read (-want +got):\n%s", diff)
	}
}

// TestHeadWithBody (issue 11, point 2): a backend that answers HEAD with a
// body: the connection is closed, the next request gets its own response,
// and the backend is not counted down.
func TestHeadWithBody(t *testing.T) {
	srv := newRawServer(t, func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
		for {
			req, ok := s.read(i, br)
			if !ok {
				return
			}
			if req.Method == http.MethodHead {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
				continue
			}
			answer(c, req)
		}
	})
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.url}})
	front, c := newFront(t, lb)
	resp, err := c.Head(front.URL + "/h")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 3 {
		t.Errorf("HEAD: status %d, Content-Length %d; want 200 and 3", resp.StatusCode, resp.ContentLength)
	}
	got := getAll(t, c, front.URL, "/b", "/c")
	if diff := cmp.Diff([]string{"200 /b", "200 /c"}, got); diff != "" {
		t.Errorf("responses after the HEAD (-want +got):\n%s", diff)
	}
	srv.waitClosed(t, 0)
	if diff := cmp.Diff([]string{"0 HEAD /h", "1 GET /b", "1 GET /c"}, srv.requests()); diff != "" {
		t.Errorf("requests the backend read (-want +got):\n%s", diff)
	}
	if bs := backendStatus(lb, "b"); bs.Failures != 0 || bs.State != "up" {
		t.Errorf("backend %s with %d failures (last error %q); want up with 0", bs.State, bs.Failures, bs.LastError)
	}
}

// TestPostNeverReplayedAfterWrite (issue 11, point 3): a reused connection
// on which the backend reads a whole POST and closes without answering: the
// client gets 502, and the backend read the POST once.
func TestPostNeverReplayedAfterWrite(t *testing.T) {
	srv := newRawServer(t, func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
		for {
			req, ok := s.read(i, br)
			if !ok {
				return
			}
			if req.Method == http.MethodPost {
				return // closes the connection
			}
			answer(c, req)
		}
	})
	cfg := testConfig(StickyOff)
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "b", URL: srv.url}})
	front, c := newFront(t, lb)
	if got := getAll(t, c, front.URL, "/warm"); got[0] != "200 /warm" {
		t.Fatalf("first request: %q", got[0])
	}
	resp, err := c.Post(front.URL+"/order", "application/x-www-form-urlencoded", strings.NewReader("item=1&qty=1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("POST the backend read and dropped: status %d, want 502", resp.StatusCode)
	}
	if diff := cmp.Diff([]string{"0 GET /warm", "0 POST /order item=1&qty=1"}, srv.requests()); diff != "" {
		t.Errorf("requests the backend read (-want +got):\n%s", diff)
	}
}

// TestRefusedRedialRetriesBufferedPost (issue 11, point 9): backend A
// crashes (its listener and connections closed) while the balancer holds an
// idle connection to it; a small POST pinned to A finds that connection
// closed, A refuses the new one — nothing reached A — and B serves the POST
// with its body intact.
//
// net/http's Transport cannot pass it for certain: until its reader of the
// idle connection has seen the close, it may write the POST on that
// connection, and then cannot tell that the POST went nowhere.
func TestRefusedRedialRetriesBufferedPost(t *testing.T) {
	skipStdClient(t)
	a := newRawServer(t, serveAll)
	b := newRawServer(t, serveAll)
	lb := mustNew(t, testConfig(StickyLearn))
	lb.SetBackends("p", []Backend{{ID: "a", URL: a.url}, {ID: "b", URL: b.url}})
	const sid = "0331C764C54C18BE926F5E2F468DB0D0"
	lb.sessions.Pin("p", sid, "a", time.Hour)
	front, c := newFront(t, lb)
	if code, _, _, body := get(t, c, front.URL+"/warm", "", "JSESSIONID="+sid); code != 200 || body != "/warm" {
		t.Fatalf("first request: status %d body %q", code, body)
	}
	a.crash()
	req, _ := http.NewRequest("POST", front.URL+"/services/Order", strings.NewReader("<order id='1'/>"))
	req.Header.Set("Cookie", "JSESSIONID="+sid)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "/services/Order" {
		t.Errorf("POST after A crashed: status %d body %q, want 200 from B", resp.StatusCode, body)
	}
	if diff := cmp.Diff([]string{"0 GET /warm"}, a.requests()); diff != "" {
		t.Errorf("requests A read (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"0 POST /services/Order <order id='1'/>"}, b.requests()); diff != "" {
		t.Errorf("requests B read (-want +got):\n%s", diff)
	}
}
