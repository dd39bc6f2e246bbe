package balancer

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The serving benchmarks put the balancer behind each engine, in front of
// a loopback backend, and drive it with keep-alive clients over loopback.
// The backend and the clients speak HTTP/1.1 by hand with canned bytes, so
// that what differs between the two is the engine: ns/op is the time per
// request with 8 clients per CPU, cpu-ns/op the process's CPU time
// (user and system) per request, allocs/op and B/op the process's.
// BenchmarkServeDirect is the clients and the backend without a balancer:
// what the other two spend beyond it is the balancer's and its engine's.
//
//	go test -run '^$' -bench 'Serve(Engine|NetHTTP|Direct)' -benchtime 20000x -count 5 ./balancer/

func BenchmarkServeEngine(b *testing.B) {
	benchServe(b, func(lb *Balancer, ln net.Listener) func() {
		s := &Server{Balancer: lb}
		go s.Serve(ln)
		return func() { s.Close() }
	})
}

func BenchmarkServeNetHTTP(b *testing.B) {
	benchServe(b, func(lb *Balancer, ln net.Listener) func() {
		s := &http.Server{Handler: lb, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
		go s.Serve(ln)
		return func() { s.Close() }
	})
}

func BenchmarkServeDirect(b *testing.B) {
	benchServe(b, nil)
}

// benchRequestBytes is what a benchmark client sends: a browser-like GET
// with a session cookie.
const benchRequestBytes = "GET /carbon/index.jsp HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: wrk\r\n" +
	"Accept: */*\r\nCookie: JSESSIONID=0331C764C54C18BE926F5E2F468DB0D0\r\n\r\n"

// benchServe runs the clients against the balancer served by serve, or
// against the backend itself when serve is nil.
func benchServe(b *testing.B, serve func(*Balancer, net.Listener) (stop func())) {
	backend := rawBenchBackend(b)
	addr := backend
	cfg := testConfig(StickyLearn)
	lb, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer lb.Close()
	lb.SetBackends("p", []Backend{{ID: "b1", URL: "http://" + backend}})
	if serve != nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		stop := serve(lb, ln)
		defer stop()
		addr = ln.Addr().String()
	}

	// Warm up: the backend connections and the pools.
	for range 8 {
		c := newBenchClient(b, addr)
		for range 10 {
			if err := c.do(); err != nil {
				b.Fatal(err)
			}
		}
		c.c.Close()
	}
	var mu sync.Mutex
	var clients []*benchClient
	b.SetParallelism(8)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := newBenchClient(b, addr)
		mu.Lock()
		clients = append(clients, c)
		mu.Unlock()
		for pb.Next() {
			if err := c.do(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	for _, c := range clients {
		c.c.Close()
	}
}

// cpuTime is the process's CPU time so far, user and system, in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// benchClient is a keep-alive client that sends benchRequestBytes and
// reads a response with a Content-Length.
type benchClient struct {
	c  net.Conn
	br *bufio.Reader
}

func newBenchClient(b *testing.B, addr string) *benchClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	return &benchClient{c: c, br: bufio.NewReader(c)}
}

func (c *benchClient) do() error {
	if _, err := io.WriteString(c.c, benchRequestBytes); err != nil {
		return err
	}
	return readCannedResponse(c.br)
}

// readCannedResponse reads a response head and a body of its
// Content-Length.
func readCannedResponse(br *bufio.Reader) error {
	n := -1
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
				return &benchError{string(line)}
			}
			first = false
			continue
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return err
			}
		}
	}
	if n < 0 {
		return &benchError{"no Content-Length"}
	}
	_, err := br.Discard(n)
	return err
}

type benchError struct{ s string }

func (e *benchError) Error() string { return "unexpected response: " + e.s }

// rawBenchBackend is a backend on 127.0.0.1 that answers every request
// head with a canned response, as the harness's fake Carbon node does;
// it returns its address.
func rawBenchBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Backend: b1\r\nContent-Length: 3\r\n\r\nb1\n")
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				mu.Lock()
				for _, c := range conns {
					c.Close()
				}
				mu.Unlock()
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// A request head ends with an empty line; the
					// balancer sends GETs without a body.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
