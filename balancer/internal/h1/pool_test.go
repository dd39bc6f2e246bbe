package h1

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// idleConns returns the number of idle connections to key in tr's pool.
func idleConns(tr *Transport, key connKey) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.idle[key])
}

// TestKeepAlivePool: body-less requests (GET and HEAD), answered with and
// without a body, share one backend connection, plain or TLS, which is kept
// in the Transport's own pool, not its Fallback's.
func TestKeepAlivePool(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "https"}[useTLS]
		t.Run(name, func(t *testing.T) {
			var conns atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/empty":
					w.WriteHeader(http.StatusNoContent)
				case "/chunked":
					io.WriteString(w, "a")
					w.(http.Flusher).Flush()
					io.WriteString(w, "b\n")
				default:
					io.WriteString(w, "ok\n")
				}
			}))
			srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			}
			var tr *Transport
			if useTLS {
				srv.StartTLS()
				tr = newTestTransport(t, srv.Client().Transport.(*http.Transport).TLSClientConfig, 0)
			} else {
				srv.Start()
				tr = newTestTransport(t, nil, 0)
			}
			t.Cleanup(srv.Close)
			want := map[string]string{"/": "ok\n", "/empty": "", "/chunked": "ab\n"}
			for i, path := range []string{"/", "/empty", "/chunked", "/", "/empty", "/chunked"} {
				resp, err := tr.RoundTrip(replayableRequest(context.Background(), "GET", srv.URL+path, ""))
				if err != nil {
					t.Fatalf("request %d %s: %v", i, path, err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode/100 != 2 || string(body) != want[path] {
					t.Fatalf("request %d %s: status %d body %q err %v, want 2xx %q", i, path, resp.StatusCode, body, err, want[path])
				}
			}
			for range 2 {
				resp, err := tr.RoundTrip(replayableRequest(context.Background(), "HEAD", srv.URL+"/", ""))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.ContentLength != 3 {
					t.Fatalf("HEAD: status %d, Content-Length %d; want 200 and the GET's 3", resp.StatusCode, resp.ContentLength)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("%d backend connections for 8 sequential requests, want 1", n)
			}
			key := connKey{tls: useTLS, addr: srv.Listener.Addr().String()}
			if idle := idleConns(tr, key); Enabled && idle != 1 {
				t.Errorf("%d idle connections in the pool, want 1", idle)
			}
		})
	}
}
