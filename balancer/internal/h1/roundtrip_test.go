package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/balancer/internal/rawtest"
	"github.com/google/go-cmp/cmp"
)

// newTestTransport returns a Transport as the balancer makes one, trusting
// tlsc for https backends (nil: the system's roots) and waiting header for
// a response header (0: no bound), keeping up to 4 idle connections per
// backend.
func newTestTransport(t testing.TB, tlsc *tls.Config, header time.Duration) *Transport {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &Transport{
		Dial:             d.DialContext,
		TLSConfig:        tlsc,
		HandshakeTimeout: 5 * time.Second,
		MaxIdlePerHost:   4,
		IdleTimeout:      time.Minute,
		HeaderTimeout:    header,
		Fallback: &http.Transport{
			DialContext:            d.DialContext,
			TLSClientConfig:        tlsc,
			TLSHandshakeTimeout:    5 * time.Second,
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        time.Minute,
			ResponseHeaderTimeout:  header,
			DisableCompression:     true,
			MaxResponseHeaderBytes: MaxResponseHeader,
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// replayableRequest returns a request with a body of known length and
// GetBody, as the balancer hands small bodies to the transport.
func replayableRequest(ctx context.Context, method, url, body string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	return req // NewRequest sets ContentLength and GetBody for a strings.Reader
}

// TestErrorClassification: what the transport's errors prove about the
// request (RequestNotSent, ResponseStarted), for its own exchanges and for
// its fallback's, and that timeouts and cancellation stay visible through
// them.
func TestErrorClassification(t *testing.T) {
	closeAfterRequest := func(s *rawtest.Server, i int, c net.Conn, br *bufio.Reader) { s.Read(i, br) }
	reply := func(raw string) func(s *rawtest.Server, i int, c net.Conn, br *bufio.Reader) {
		return func(s *rawtest.Server, i int, c net.Conn, br *bufio.Reader) {
			if _, ok := s.Read(i, br); ok {
				io.WriteString(c, raw)
			}
		}
	}
	stall := func(s *rawtest.Server, i int, c net.Conn, br *bufio.Reader) {
		s.Read(i, br)
		br.ReadByte() // until the client closes
	}
	type outcome struct {
		NotSent, Started, Timeout, Canceled bool
	}
	for _, tc := range []struct {
		name     string
		serve    func(s *rawtest.Server, i int, c net.Conn, br *bufio.Reader) // nil: nothing listens
		method   string
		fallback bool // a body of unknown length: net/http's Transport
		readTO   time.Duration
		cancel   bool
		want     outcome
	}{
		{name: "dial refused", method: "POST", want: outcome{NotSent: true}},
		{name: "dial refused, fallback", method: "POST", fallback: true, want: outcome{NotSent: true}},
		{name: "closed after reading the request", serve: closeAfterRequest, method: "POST", want: outcome{}},
		{name: "closed after reading the request, fallback", serve: closeAfterRequest, method: "POST", fallback: true, want: outcome{}},
		{name: "garbage", serve: reply("SSH-2.0-OpenSSH_9.6\r\n"), method: "GET", want: outcome{Started: true}},
		{name: "garbage, fallback", serve: reply("SSH-2.0-OpenSSH_9.6\r\n"), method: "POST", fallback: true, want: outcome{Started: true}},
		{name: "header cut short", serve: reply("HTTP/1.1 200 OK\r\nContent-"), method: "GET", want: outcome{Started: true}},
		{name: "1xx flood", serve: reply(strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), method: "GET", want: outcome{Started: true}},
		{name: "header timeout", serve: stall, method: "GET", readTO: 50 * time.Millisecond, want: outcome{Timeout: true}},
		{name: "canceled", serve: stall, method: "GET", cancel: true, want: outcome{Canceled: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.fallback && !strings.Contains(tc.name, "refused") {
				skipStdClient(t)
			}
			url := rawtest.DeadURL(t)
			var srv *rawtest.Server
			if tc.serve != nil {
				srv = rawtest.New(t, tc.serve)
				url = srv.URL
			}
			tr := newTestTransport(t, nil, tc.readTO)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var req *http.Request
			if tc.fallback {
				req, _ = http.NewRequestWithContext(ctx, tc.method, url+"/x", io.MultiReader(strings.NewReader("body")))
			} else {
				req = replayableRequest(ctx, tc.method, url+"/x", "body")
			}
			if tc.cancel {
				go func() {
					<-srv.Got
					cancel()
				}()
			}
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("RoundTrip succeeded: status %d", resp.StatusCode)
			}
			got := outcome{
				NotSent:  RequestNotSent(err),
				Started:  ResponseStarted(err),
				Timeout:  isTimeout(err),
				Canceled: errors.Is(err, context.Canceled),
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error %q (-want +got):\n%s", err, diff)
			}
			if !strings.HasPrefix(err.Error(), "balancer: ") && !tc.fallback && Enabled {
				t.Errorf("error %q has no package prefix", err)
			}
		})
	}
}

// TestRewriteRules: on a reused connection the backend closed after
// reading a request, the request is written again on a new connection only
// when it is idempotent; one found closed before it was written is sent on
// a new connection whatever its method.
func TestRewriteRules(t *testing.T) {
	skipStdClient(t)
	for _, tc := range []struct {
		name       string
		method     string
		dropOnConn bool // the backend reads the second request and closes; else it closes the idle connection first
		wantOK     bool
		wantSeen   []string
	}{
		{"GET dropped after read: written again", "GET", true, true, []string{"0 GET /warm", "0 GET /x body", "1 GET /x body"}},
		{"POST dropped after read: not written again", "POST", true, false, []string{"0 GET /warm", "0 POST /x body"}},
		{"POST on a connection closed while idle: new connection", "POST", false, true, []string{"0 GET /warm", "1 POST /x body"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idleClosed := make(chan struct{})
			srv := rawtest.New(t, func(s *rawtest.Server, i int, c net.Conn, br *bufio.Reader) {
				for n := 0; ; n++ {
					req, ok := s.Read(i, br)
					if !ok {
						return
					}
					if i == 0 && n == 1 {
						return
					}
					rawtest.Answer(c, req)
					if i == 0 && !tc.dropOnConn {
						c.(*net.TCPConn).CloseWrite()
						close(idleClosed)
					}
				}
			})
			tr := newTestTransport(t, nil, 0)
			resp, err := tr.RoundTrip(replayableRequest(context.Background(), "GET", srv.URL+"/warm", ""))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if !tc.dropOnConn {
				<-idleClosed
			}
			resp, err = tr.RoundTrip(replayableRequest(context.Background(), tc.method, srv.URL+"/x", "body"))
			if (err == nil) != tc.wantOK {
				t.Errorf("second request: error %v, want success %v", err, tc.wantOK)
			}
			if err == nil {
				resp.Body.Close()
			} else if RequestNotSent(err) || ResponseStarted(err) {
				t.Errorf("error %q: RequestNotSent %v, ResponseStarted %v; want both false", err, RequestNotSent(err), ResponseStarted(err))
			}
			if diff := cmp.Diff(tc.wantSeen, srv.Requests()); diff != "" {
				t.Errorf("requests the backend read (-want +got):\n%s", diff)
			}
		})
	}
}
