package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// skipStdClient skips a test of h1Transport's own internals when the
// package is built with the balancer_stdclient tag (or for a platform where
// h1Transport is off): every request then goes through net/http's Transport.
func skipStdClient(t testing.TB) {
	t.Helper()
	if !useH1 {
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
	return startRawServer(t, nil, serve)
}

// newRawTLSServer is newRawServer over TLS; it also returns a client
// configuration that trusts the server's certificate.
func newRawTLSServer(t testing.TB, serve func(s *rawServer, i int, c net.Conn, br *bufio.Reader)) (*rawServer, *tls.Config) {
	t.Helper()
	certs := httptest.NewUnstartedServer(http.NotFoundHandler())
	certs.StartTLS() // for its certificate and a client configuration that trusts it
	certs.Close()
	return startRawServer(t, certs.TLS, serve), certs.Client().Transport.(*http.Transport).TLSClientConfig
}

func startRawServer(t testing.TB, tc *tls.Config, serve func(s *rawServer, i int, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http://"
	if tc != nil {
		ln, scheme = tls.NewListener(ln, tc), "https://"
	}
	s := &rawServer{ln: ln, url: scheme + ln.Addr().String(), closed: make(chan int, 64), got: make(chan struct{}, 64)}
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

// newTestTransport returns the transport a service with timeouts to uses,
// keeping up to 4 idle connections per backend.
func newTestTransport(t testing.TB, to Timeouts) *h1Transport {
	t.Helper()
	lb := mustNew(t, testConfig(StickyOff))
	tr := lb.newTransport(to, 4)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// replayableRequest returns a request with a body of known length and
// GetBody, as ServeHTTP hands small bodies to the transport.
func replayableRequest(ctx context.Context, method, url, body string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	return req // NewRequest sets ContentLength and GetBody for a strings.Reader
}

// TestH1ErrorClassification: what the transport's errors prove about the
// request (requestNotSent, responseStarted), for its own exchanges and for
// its fallback's, and that timeouts and cancellation stay visible through
// them.
func TestH1ErrorClassification(t *testing.T) {
	closeAfterRequest := func(s *rawServer, i int, c net.Conn, br *bufio.Reader) { s.read(i, br) }
	reply := func(raw string) func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
		return func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
			if _, ok := s.read(i, br); ok {
				io.WriteString(c, raw)
			}
		}
	}
	stall := func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
		s.read(i, br)
		br.ReadByte() // until the client closes
	}
	type outcome struct {
		NotSent, Started, Timeout, Canceled bool
	}
	for _, tc := range []struct {
		name     string
		serve    func(s *rawServer, i int, c net.Conn, br *bufio.Reader) // nil: nothing listens
		method   string
		fallback bool // a body of unknown length: net/http's Transport
		readTO   time.Duration
		cancel   bool
		want     outcome
	}{
		{name: "dial refused", method: "POST", want: outcome{NotSent: true}},
		{name: "dial refused, fallback", method: "POST", fallback: true, want: outcome{NotSent: true}},
		{name: "closed after reading the request", serve: closeAfterRequest, method: "POST", want: outcome{}},
		{name: "closed after reading the request, fallback", serve: closeAfterRequest, method: "POST", fallback: true, want: outcome{}},
		{name: "garbage", serve: reply("SSH-2.0-OpenSSH_9.6\r\n"), method: "GET", want: outcome{Started: true}},
		{name: "garbage, fallback", serve: reply("SSH-2.0-OpenSSH_9.6\r\n"), method: "POST", fallback: true, want: outcome{Started: true}},
		{name: "header cut short", serve: reply("HTTP/1.1 200 OK\r\nContent-"), method: "GET", want: outcome{Started: true}},
		{name: "1xx flood", serve: reply(strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), method: "GET", want: outcome{Started: true}},
		{name: "header timeout", serve: stall, method: "GET", readTO: 50 * time.Millisecond, want: outcome{Timeout: true}},
		{name: "canceled", serve: stall, method: "GET", cancel: true, want: outcome{Canceled: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.fallback && !strings.Contains(tc.name, "refused") {
				skipStdClient(t)
			}
			url := deadURL(t)
			var srv *rawServer
			if tc.serve != nil {
				srv = newRawServer(t, tc.serve)
				url = srv.url
			}
			tr := newTestTransport(t, Timeouts{Dial: 5 * time.Second, Read: tc.readTO})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var req *http.Request
			if tc.fallback {
				req, _ = http.NewRequestWithContext(ctx, tc.method, url+"/x", io.MultiReader(strings.NewReader("body")))
			} else {
				req = replayableRequest(ctx, tc.method, url+"/x", "body")
			}
			if tc.cancel {
				go func() {
					<-srv.got
					cancel()
				}()
			}
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("RoundTrip succeeded: status %d", resp.StatusCode)
			}
			got := outcome{
				NotSent:  requestNotSent(err),
				Started:  responseStarted(err),
				Timeout:  isTimeout(err),
				Canceled: errors.Is(err, context.Canceled),
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error %q (-want +got):\n%s", err, diff)
			}
			if !strings.HasPrefix(err.Error(), "balancer: ") && !tc.fallback && useH1 {
				t.Errorf("error %q has no package prefix", err)
			}
		})
	}
}

// TestH1RewriteRules: on a reused connection the backend closed after
// reading a request, the request is written again on a new connection only
// when it is idempotent; one found closed before it was written is sent on
// a new connection whatever its method.
func TestH1RewriteRules(t *testing.T) {
	skipStdClient(t)
	for _, tc := range []struct {
		name       string
		method     string
		dropOnConn bool // the backend reads the second request and closes; else it closes the idle connection first
		wantOK     bool
		wantSeen   []string
	}{
		{"GET dropped after read: written again", "GET", true, true, []string{"0 GET /warm", "0 GET /x body", "1 GET /x body"}},
		{"POST dropped after read: not written again", "POST", true, false, []string{"0 GET /warm", "0 POST /x body"}},
		{"POST on a connection closed while idle: new connection", "POST", false, true, []string{"0 GET /warm", "1 POST /x body"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idleClosed := make(chan struct{})
			srv := newRawServer(t, func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
				for n := 0; ; n++ {
					req, ok := s.read(i, br)
					if !ok {
						return
					}
					if i == 0 && n == 1 {
						return
					}
					answer(c, req)
					if i == 0 && !tc.dropOnConn {
						c.(*net.TCPConn).CloseWrite()
						close(idleClosed)
					}
				}
			})
			tr := newTestTransport(t, Timeouts{Dial: 5 * time.Second})
			resp, err := tr.RoundTrip(replayableRequest(context.Background(), "GET", srv.url+"/warm", ""))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if !tc.dropOnConn {
				<-idleClosed
			}
			resp, err = tr.RoundTrip(replayableRequest(context.Background(), tc.method, srv.url+"/x", "body"))
			if (err == nil) != tc.wantOK {
				t.Errorf("second request: error %v, want success %v", err, tc.wantOK)
			}
			if err == nil {
				resp.Body.Close()
			} else if requestNotSent(err) || responseStarted(err) {
				t.Errorf("error %q: requestNotSent %v, responseStarted %v; want both false", err, requestNotSent(err), responseStarted(err))
			}
			if diff := cmp.Diff(tc.wantSeen, srv.requests()); diff != "" {
				t.Errorf("requests the backend read (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPoolTLSExtraBytes: over TLS, bytes after a response — in the same
// record as its end, in records of their own read with it, or arriving
// later on the idle connection — are never read as the next request's
// response.
func TestPoolTLSExtraBytes(t *testing.T) {
	skipStdClient(t)
	big := strings.Repeat("x", 40000) // several TLS records
	for _, tc := range []struct {
		name string
		send func(c net.Conn, poke <-chan struct{})
	}{
		{"same write", func(c net.Conn, _ <-chan struct{}) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlong"+evilResponse)
		}},
		{"large body, same write", func(c net.Conn, _ <-chan struct{}) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s%s", len(big), big, evilResponse+big)
		}},
		{"separate records", func(c net.Conn, _ <-chan struct{}) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
			io.WriteString(c, evilResponse+big)
		}},
		{"later", func(c net.Conn, poke <-chan struct{}) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlong")
			<-poke
			io.WriteString(c, evilResponse)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			poke, sent := make(chan struct{}), make(chan struct{})
			srv, clientTLS := newRawTLSServer(t, func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
				for n := 0; ; n++ {
					req, ok := s.read(i, br)
					if !ok {
						return
					}
					if i == 0 && n == 0 {
						tc.send(c, poke)
						close(sent)
						continue
					}
					answer(c, req)
				}
			})
			cfg := testConfig(StickyOff)
			cfg.TLSClientConfig = clientTLS
			lb := mustNew(t, cfg)
			tr := lb.newTransport(Timeouts{Dial: 5 * time.Second}, 4)
			t.Cleanup(tr.CloseIdleConnections)
			var got []string
			for i, path := range []string{"/a", "/b", "/c"} {
				if i == 1 {
					close(poke)
					<-sent
				}
				resp, err := tr.RoundTrip(replayableRequest(context.Background(), "GET", srv.url+path, ""))
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("GET %s: body: %v", path, err)
				}
				if len(b) > 10 {
					b = b[:10]
				}
				got = append(got, string(b)+" "+resp.Header.Get("Set-Cookie"))
			}
			first := "long "
			if strings.Contains(tc.name, "large") || strings.Contains(tc.name, "records") {
				first = "xxxxxxxxxx "
			}
			if diff := cmp.Diff([]string{first, "/b ", "/c "}, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"0 GET /a", "1 GET /b", "1 GET /c"}, srv.requests()); diff != "" {
				t.Errorf("requests the backend read (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTLSSocketTrack: the record framing tlsSocket follows, over reads that
// split records anywhere.
func TestTLSSocketTrack(t *testing.T) {
	rec := func(n int) string {
		return "\x17\x03\x03" + string([]byte{byte(n >> 8), byte(n)}) + strings.Repeat("r", n)
	}
	for _, tc := range []struct {
		name  string
		reads []string
		mid   bool
	}{
		{"nothing", nil, false},
		{"one record", []string{rec(10)}, false},
		{"two records in one read", []string{rec(10) + rec(300)}, false},
		{"record split in its body", []string{rec(10)[:8], rec(10)[8:]}, false},
		{"record split in its header", []string{rec(10)[:2], rec(10)[2:]}, false},
		{"a record and part of a header", []string{rec(10) + rec(5)[:3]}, true},
		{"a record and part of a body", []string{rec(10) + rec(500)[:100]}, true},
		{"an empty record", []string{rec(0)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ts tlsSocket
			for _, r := range tc.reads {
				ts.track([]byte(r))
			}
			if mid := ts.nhdr > 0 || ts.rest > 0; mid != tc.mid {
				t.Errorf("within a record: %v, want %v (nhdr %d, rest %d)", mid, tc.mid, ts.nhdr, ts.rest)
			}
		})
	}
}
