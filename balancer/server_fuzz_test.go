package balancer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FuzzServerConn sends arbitrary bytes on a connection, its writing side
// then closed, to an engine whose handler reads the body and answers
// with its length: whatever arrives, what goes back parses as a sequence
// of well-framed HTTP/1.x responses, the engine does not panic (the
// handler's panics are logged at Error, the engine's would crash the
// test), and the connection ends.
func FuzzServerConn(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"\r\n\r\nGET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nCONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
	} {
		f.Add(seed)
	}
	var logs lockedBuffer
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/chunked" {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
		}
		fmt.Fprintf(w, "%s %d", r.Method, n)
	}), Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError})),
		ReadHeaderTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second}
	addr := startEngine(f, s)
	f.Fuzz(func(t *testing.T, in string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() { // the engine may answer before it has read everything
			io.WriteString(c, in)
			c.(*net.TCPConn).CloseWrite()
		}()
		br := bufio.NewReader(c)
		for range 100 {
			if _, err := br.Peek(1); err != nil {
				if isTimeoutErr(err) {
					t.Fatal("the connection did not end within 10 s")
				}
				break // the end of the connection: every response was whole
			}
			// A response to HEAD has no body, whatever its header says;
			// the fuzzed requests are not tracked, so read heads only
			// when HEAD is around.
			req := &http.Request{Method: "GET"}
			if strings.Contains(in, "HEAD") {
				req.Method = "HEAD"
			}
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("a malformed response: %v", err)
			}
			if req.Method == "HEAD" {
				resp.Body.Close()
				break
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("a malformed response body: %v", err)
			}
		}
		if got := logs.String(); got != "" {
			t.Fatalf("the engine logged an error: %s", got)
		}
	})
}
