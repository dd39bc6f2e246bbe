package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/carbonlb/carbonlb/examples/internal/front"
	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
)

// TestEngineFlag: -engine chooses what serves the listener. Over TLS, an
// HTTP/2 client gets HTTP/2 but from -engine own; an HTTP/1.1 chunked
// request keeps its connection with the balancer's own engine, which
// closes a connection only after a request with Content-Length and
// Transfer-Encoding, and not with net/http's server, under which the
// balancer closes the connection of every chunked request. Without the
// flag, the engine is the build's default (front.DefaultEngine).
func TestEngineFlag(t *testing.T) {
	leakcheck.Check(t)
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Proto+" "+string(b))
	}))
	defer back.Close()
	if _, err := parseFlags([]string{"-backends", back.URL, "-engine", "fast"}, io.Discard); err == nil {
		t.Error("-engine fast was accepted")
	}
	for _, tc := range []struct {
		engine  string
		proto   int  // the protocol an HTTP/2 client gets
		closing bool // a chunked request closes its connection
	}{
		{"", map[front.Engine]int{front.EngineAuto: 2, front.EngineOwn: 1, front.EngineNetHTTP: 2}[front.DefaultEngine], front.DefaultEngine == front.EngineNetHTTP},
		{"auto", 2, false},
		{"own", 1, false},
		{"net/http", 2, true},
	} {
		t.Run("engine="+tc.engine, func(t *testing.T) {
			args := []string{"-listen", "127.0.0.1:0", "-backends", back.URL, "-sticky", "off", "-tls-self-signed", "localhost"}
			if tc.engine != "" {
				args = append(args, "-engine", tc.engine)
			}
			o, err := parseFlags(args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			addr := make(chan string, 1)
			o.ready = func(a string) { addr <- a }
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
			var base string
			select {
			case a := <-addr:
				base = "https://" + a
			case err := <-done:
				t.Fatal(err)
			}
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			}()
			for _, h2 := range []bool{true, false} {
				tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: h2} // the gateway's own self-signed certificate
				c := &http.Client{Transport: tr}
				// io.MultiReader hides the length: the body goes chunked.
				resp, err := c.Post(base+"/", "text/plain", io.MultiReader(strings.NewReader("chunked body")))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				tr.CloseIdleConnections()
				if string(body) != "HTTP/1.1 chunked body" {
					t.Errorf("h2 client %v: backend answered %q", h2, body)
				}
				if h2 && resp.ProtoMajor != tc.proto {
					t.Errorf("HTTP/2 client got %s, want HTTP/%d", resp.Proto, tc.proto)
				}
				if !h2 && resp.Close != tc.closing {
					t.Errorf("HTTP/1.1 chunked request: Connection: close %v, want %v", resp.Close, tc.closing)
				}
			}
		})
	}
}
