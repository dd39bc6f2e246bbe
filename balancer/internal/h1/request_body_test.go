package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// stepLoopback returns both ends of a TCP connection on 127.0.0.1, closed
// at the test's end, for tests that write to the client end step by step.
func stepLoopback(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		client.Close()
		t.Fatal("accept failed")
	}
	deadline := time.Now().Add(loopbackDeadline)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline)
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// write writes s to c or fails the test.
func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// mustReadRequest reads a request head from br or fails the test.
func mustReadRequest(t *testing.T, br *bufio.Reader) *http.Request {
	t.Helper()
	r := new(http.Request)
	if err := ReadRequest(br, RequestLimits{}, r); err != nil {
		t.Fatalf("ReadRequest: %v", err)
	}
	return r
}

// TestChunkedReadDoesNotWait shows that a Read returns the data that
// arrived without waiting for the framing after it, and that the body's
// end comes with its last data when both arrived together.
func TestChunkedReadDoesNotWait(t *testing.T) {
	client, server := stepLoopback(t)
	br := bufio.NewReader(server)
	write(t, client, post+"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	r := mustReadRequest(t, br)
	body := NewBody(br, r, RequestLimits{})
	buf := make([]byte, 64)
	// Nothing more is sent until this Read returns: waiting for the next
	// chunk would run into the connection's deadline.
	n, err := body.Read(buf)
	if string(buf[:n]) != "hello" || err != nil {
		t.Fatalf("Read = %q, %v; want hello, nil", buf[:n], err)
	}
	write(t, client, "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"+next)
	var got []byte
	for err == nil {
		n, err = body.Read(buf)
		got = append(got, buf[:n]...)
	}
	if string(got) != "abc" || err != io.EOF {
		t.Fatalf("rest of the body = %q, %v; want abc, io.EOF", got, err)
	}
	if n, err := body.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
	if diff := cmp.Diff(http.Header{"X-T": {"1"}}, r.Trailer); diff != "" {
		t.Errorf("trailer mismatch (-want +got):\n%s", diff)
	}
	if rest, _ := br.Peek(br.Buffered()); string(rest) != next {
		t.Errorf("left in br: %q, want the next request", rest)
	}
}

func TestBodyEndsWithData(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
	}{
		{"length", post + "Content-Length: 5\r\n\r\nhello" + next},
		{"chunked", post + "Transfer-Encoding: chunked\r\n\r\n" + body5 + next},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := stepLoopback(t)
			write(t, client, tc.raw)
			br := bufio.NewReader(server)
			r := mustReadRequest(t, br)
			for br.Buffered() < len(tc.raw)-strings.Index(tc.raw, "\r\n\r\n")-4 {
				if _, err := br.Peek(br.Buffered() + 1); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 64)
			n, err := NewBody(br, r, RequestLimits{}).Read(buf)
			if string(buf[:n]) != "hello" || err != io.EOF {
				t.Errorf("Read = %q, %v; want hello with io.EOF", buf[:n], err)
			}
		})
	}
}

func TestBodyClose(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
	}{
		{"length", post + "Content-Length: 5\r\n\r\nhello" + next},
		{"chunked", post + "Transfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n" + next},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := readerFor(t, tc.raw, deliveries[0])
			r := mustReadRequest(t, br)
			body := NewBody(br, r, RequestLimits{})
			buf := make([]byte, 2)
			if n, err := body.Read(buf); n == 0 || err != nil {
				t.Fatalf("Read = %d, %v", n, err)
			}
			body.Close()
			if _, err := body.Read(buf); err != http.ErrBodyReadAfterClose {
				t.Errorf("Read after Close: %v, want http.ErrBodyReadAfterClose", err)
			}
			if err := DiscardBody(body, 3); err != nil {
				t.Fatalf("DiscardBody: %v", err)
			}
			next := mustReadRequest(t, br)
			if next.URL.Path != "/next" {
				t.Errorf("next request's path %q, want /next", next.URL.Path)
			}
		})
	}
}

func TestDiscardBody(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		max  int64
		ok   bool
	}{
		{"no body", "GET / HTTP/1.1\r\nHost: a\r\n\r\n" + next, 0, true},
		{"length within", post + "Content-Length: 5\r\n\r\nhello" + next, 5, true},
		{"length over", post + "Content-Length: 5\r\n\r\nhello" + next, 4, false},
		{"chunked within", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" + next, 5, true},
		{"chunked over", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" + next, 4, false},
		{"chunked malformed", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n" + next, 10, false},
		{"length cut short", post + "Content-Length: 9\r\n\r\nhello", 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := readerFor(t, tt.raw, deliveries[0])
			r := mustReadRequest(t, br)
			err := DiscardBody(NewBody(br, r, RequestLimits{}), tt.max)
			if (err == nil) != tt.ok {
				t.Fatalf("DiscardBody = %v, want ok %v", err, tt.ok)
			}
			if tt.ok {
				if rest, _ := io.ReadAll(br); string(rest) != next {
					t.Errorf("left in br: %q, want the next request", rest)
				}
			}
		})
	}
	if err := DiscardBody(strings.NewReader("x"), 10); err == nil {
		t.Error("DiscardBody of another reader: no error")
	}
}

// TestTrailerSharedWithCopies shows that a shallow copy of the request,
// as a handler's WithContext makes, sees the trailers the body brings.
func TestTrailerSharedWithCopies(t *testing.T) {
	br := readerFor(t, post+"Transfer-Encoding: chunked\r\n\r\n0\r\nX-Sum: 1\r\nx-sum: 2\r\nCookie: c=1\r\n\r\n", deliveries[0])
	r := mustReadRequest(t, br)
	cp := r.WithContext(context.Background())
	if _, err := io.ReadAll(NewBody(br, r, RequestLimits{})); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(http.Header{"X-Sum": {"1", "2"}}, cp.Trailer); diff != "" {
		t.Errorf("the copy's trailer mismatch (-want +got):\n%s", diff)
	}
}

func TestBodyErrorsSticky(t *testing.T) {
	br := readerFor(t, post+"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", deliveries[0])
	r := mustReadRequest(t, br)
	body := NewBody(br, r, RequestLimits{})
	buf := make([]byte, 8)
	_, err1 := body.Read(buf)
	_, err2 := body.Read(buf)
	re, ok := errors.AsType[*RequestError](err1)
	if !ok || re.Status != 400 || err2 != err1 {
		t.Errorf("errors %v then %v; want the same *RequestError with status 400", err1, err2)
	}
	if !strings.HasPrefix(err1.Error(), "balancer: request refused with 400 Bad Request: ") {
		t.Errorf("error text %q", err1)
	}
}
