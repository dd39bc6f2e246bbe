package h1

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// skipStdClient skips a test of Transport's own behaviour when it is built
// with the balancer_stdclient tag (or for a platform where it is off):
// every request then goes through its Fallback, net/http's Transport.
func skipStdClient(t testing.TB) {
	t.Helper()
	if !Enabled {
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

// answer writes a response whose body is the request's path.
func answer(c net.Conn, req *http.Request) {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
}

// evilResponse is a complete response that no request asked for.
const evilResponse = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nSet-Cookie: JSESSIONID=EVIL\r\n\r\nevil"

// deadURL returns the URL of a loopback port nothing listens on.
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}
