// Package rawtest is a backend for the tests of the balancer and of its
// HTTP/1.1 client that speaks HTTP/1.1 by hand on 127.0.0.1, so that a test
// can make it misbehave exactly: lie about lengths, send responses nobody
// asked for, close mid-request, crash. It records what it read.
package rawtest

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
	"time"
)

// EvilResponse is a complete response that no request asked for.
const EvilResponse = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nSet-Cookie: JSESSIONID=EVIL\r\n\r\nevil"

// Server is a hand-speaking backend: its serve function runs for each
// accepted connection, on its own goroutine, with the connection's index
// (0 for the first).
type Server struct {
	URL    string        // "http://127.0.0.1:port", or https
	Closed chan int      // the index of each connection the client closed, as Read saw it
	Got    chan struct{} // a request was read (best effort: the channel holds 64)

	ln    net.Listener
	mu    sync.Mutex // protects conns and seen
	conns []net.Conn
	seen  []string // "index METHOD path body" per request read
	wg    sync.WaitGroup
}

// New starts a Server; t's cleanup crashes it.
func New(t testing.TB, serve func(s *Server, i int, c net.Conn, br *bufio.Reader)) *Server {
	t.Helper()
	return start(t, nil, serve)
}

// NewTLS is New over TLS; it also returns a client configuration that
// trusts the server's certificate.
func NewTLS(t testing.TB, serve func(s *Server, i int, c net.Conn, br *bufio.Reader)) (*Server, *tls.Config) {
	t.Helper()
	certs := httptest.NewUnstartedServer(http.NotFoundHandler())
	certs.StartTLS() // for its certificate and a client configuration that trusts it
	certs.Close()
	return start(t, certs.TLS, serve), certs.Client().Transport.(*http.Transport).TLSClientConfig
}

func start(t testing.TB, tc *tls.Config, serve func(s *Server, i int, c net.Conn, br *bufio.Reader)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http://"
	if tc != nil {
		ln, scheme = tls.NewListener(ln, tc), "https://"
	}
	s := &Server{ln: ln, URL: scheme + ln.Addr().String(), Closed: make(chan int, 64), Got: make(chan struct{}, 64)}
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
	t.Cleanup(s.Crash)
	return s
}

// Crash closes the listener and every connection, as a killed process
// would, and waits for the serving goroutines.
func (s *Server) Crash() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Read reads a request and its body on connection i and records it; it
// reports false, and sends i on Closed, when the client closed the
// connection.
func (s *Server) Read(i int, br *bufio.Reader) (*http.Request, bool) {
	req, err := http.ReadRequest(br)
	if err != nil {
		s.Closed <- i // EOF, or a reset when unread bytes were left
		return nil, false
	}
	body, _ := io.ReadAll(req.Body)
	s.mu.Lock()
	s.seen = append(s.seen, strings.TrimSpace(fmt.Sprintf("%d %s %s %s", i, req.Method, req.URL.Path, body)))
	s.mu.Unlock()
	select {
	case s.Got <- struct{}{}:
	default:
	}
	return req, true
}

// Requests returns what the backend read so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// WaitClosed waits until the client closed connection i; it fails t after
// 10 s.
func (s *Server) WaitClosed(t testing.TB, i int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case j := <-s.Closed:
			if j == i {
				return
			}
		case <-timeout:
			t.Fatalf("the client did not close backend connection %d within 10 s", i)
		}
	}
}

// Answer writes a response whose body is the request's path.
func Answer(c net.Conn, req *http.Request) {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
}

// ServeAll answers every request on a connection with its path.
func ServeAll(s *Server, i int, c net.Conn, br *bufio.Reader) {
	for {
		req, ok := s.Read(i, br)
		if !ok {
			return
		}
		Answer(c, req)
	}
}

// DeadURL returns the URL of a loopback port nothing listens on.
func DeadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}
