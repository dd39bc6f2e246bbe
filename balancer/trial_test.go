package balancer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTrialReleasedOnEveryExit: after a passive cool-off, the one trial
// request is released however it ends — success, backend failure, the
// client giving up, a client body fault, a body over the limit, a response
// cut short, a FailStatuses status — so the backend is never left cooling
// for good. Each case puts the backend in its cool-off, sends the trial
// request, and checks that the slot is free and the next verdict possible.
func TestTrialReleasedOnEveryExit(t *testing.T) {
	var mode atomic.Value // the backend's behaviour for /trial
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/trial" {
			io.WriteString(w, "ok\n")
			return
		}
		switch mode.Load().(string) {
		case "ok":
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok\n")
		case "503":
			w.WriteHeader(503)
		case "reset":
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		case "cut":
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "short")
			w.(http.Flusher).Flush()
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		case "stall":
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "read":
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok\n")
		}
	}))
	t.Cleanup(backend.Close)

	cfg := testConfig(StickyOff)
	cfg.Services[0].Health.FailStatuses = []int{503}
	cfg.Services[0].MaxBodyBytes = 100 << 10
	cfg.Services[0].Retry.Attempts = 1
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "b", URL: backend.URL}})
	front, done := watchedFront(t, lb)
	addr := front.Listener.Addr().String()
	be := lb.state.Load().pools["p"].backends[0]
	big := strings.Repeat("y", 70<<10)

	cases := []struct {
		name    string
		mode    string
		send    func(t *testing.T)
		cooling bool // the trial's verdict: the backend failed again
	}{
		{"success", "ok", func(t *testing.T) {
			rawExchange(t, addr, "GET /trial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		}, false},
		{"backend reset", "reset", func(t *testing.T) {
			rawExchange(t, addr, "GET /trial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		}, true},
		{"fail status", "503", func(t *testing.T) {
			rawExchange(t, addr, "GET /trial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		}, true},
		{"response cut short", "cut", func(t *testing.T) {
			rawExchange(t, addr, "GET /trial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		}, false},
		{"client gives up", "stall", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/trial", nil)
			errc := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
			}()
			<-arrived
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("client: %v", err)
			}
		}, false},
		{"malformed client body", "read", func(t *testing.T) {
			rawExchange(t, addr, "POST /trial HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
		}, false},
		{"client body over the limit", "read", func(t *testing.T) {
			rawExchange(t, addr, "POST /trial HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
				"11800\r\n"+big+big[:0x11800-len(big)]+"\r\n11800\r\n"+big+big[:0x11800-len(big)]+"\r\n0\r\n\r\n")
		}, false},
		{"client gone mid-body", "read", func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "POST /trial HTTP/1.1\r\nHost: x\r\nContent-Length: 90000\r\n\r\n"+big)
			c.Close()
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A failure puts the backend in its cool-off, then the
			// cool-off is over: the next request is the trial.
			lb.result(lb.state.Load().services[0], be, 0, errString("test failure"), time.Now())
			be.downUntil.Store(1)
			mode.Store(tc.mode)
			tc.send(t)
			<-done
			if tk := be.trial.Load(); tk != 0 {
				t.Fatalf("trial slot still held (ticket %d)", tk)
			}
			if a := be.active.Load(); a != 0 {
				t.Fatalf("%d requests still counted active", a)
			}
			cooling := be.downUntil.Load() > 1
			if cooling != tc.cooling {
				t.Errorf("cooling again = %v, want %v", cooling, tc.cooling)
			}
			// Another trial can be taken: the backend is not stuck.
			be.downUntil.Store(1)
			mode.Store("ok")
			rawExchange(t, addr, "GET /trial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			<-done
			if st := backendState(lb, "b"); st != "up" {
				t.Errorf("after a good trial the backend is %q, want up", st)
			}
		})
	}
}

// TestTrialSlowToServeBackend is the restarted Tomcat: its port accepts
// connections seconds before it answers. The trial request's client gives
// up while the backend is still silent; once the backend serves, the next
// request is a new trial and brings it back.
func TestTrialSlowToServeBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	accepted := make(chan struct{}, 8)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					select { // still starting: say nothing
					case <-serving:
					case <-time.After(10 * time.Second):
						return
					}
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
				}
			}()
		}
	}()
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "tomcat", URL: "http://" + ln.Addr().String()}})
	front, done := watchedFront(t, lb)
	be := lb.state.Load().pools["p"].backends[0]

	lb.result(lb.state.Load().services[0], be, 0, errString("connection refused"), time.Now())
	be.downUntil.Store(1) // the cool-off is over
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-accepted
	cancel() // the client's timeout
	<-errc
	<-done
	if be.trial.Load() != 0 {
		t.Fatal("the abandoned trial still holds the slot")
	}
	close(serving) // Tomcat has started
	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-done
	if resp.StatusCode != 200 || backendState(lb, "tomcat") != "up" {
		t.Errorf("after the backend started: %d, state %s", resp.StatusCode, backendState(lb, "tomcat"))
	}
}
