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

	"github.com/carbonlb/carbonlb/balancer/internal/h1"
)

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
		{"header over 1 MiB", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", h1.MaxResponseHeader+1) + "\r\n\r\n", true, http.StatusBadGateway, ""},
		{"informational headers over 1 MiB", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: "+strings.Repeat("l", 300<<10)+"\r\n\r\n", 4) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, http.StatusBadGateway, ""},
		{"informational flood", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6 /* over the client's 5 */) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, http.StatusBadGateway, ""},
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
	if h1.Enabled {
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
	big := strings.Repeat("x", h1.MaxBufferedBody+1)
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
