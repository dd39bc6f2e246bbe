package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/carbonlb/carbonlb/balancer/internal/rawtest"
	"github.com/google/go-cmp/cmp"
)

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
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlong"+rawtest.EvilResponse)
		}},
		{"large body, same write", func(c net.Conn, _ <-chan struct{}) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s%s", len(big), big, rawtest.EvilResponse+big)
		}},
		{"separate records", func(c net.Conn, _ <-chan struct{}) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
			io.WriteString(c, rawtest.EvilResponse+big)
		}},
		{"later", func(c net.Conn, poke <-chan struct{}) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlong")
			<-poke
			io.WriteString(c, rawtest.EvilResponse)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			poke, sent := make(chan struct{}), make(chan struct{})
			srv, clientTLS := rawtest.NewTLS(t, func(s *rawtest.Server, i int, c net.Conn, br *bufio.Reader) {
				for n := 0; ; n++ {
					req, ok := s.Read(i, br)
					if !ok {
						return
					}
					if i == 0 && n == 0 {
						tc.send(c, poke)
						close(sent)
						continue
					}
					rawtest.Answer(c, req)
				}
			})
			tr := newTestTransport(t, clientTLS, 0)
			var got []string
			for i, path := range []string{"/a", "/b", "/c"} {
				if i == 1 {
					close(poke)
					<-sent
				}
				resp, err := tr.RoundTrip(replayableRequest(context.Background(), "GET", srv.URL+path, ""))
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
			if diff := cmp.Diff([]string{"0 GET /a", "1 GET /b", "1 GET /c"}, srv.Requests()); diff != "" {
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
