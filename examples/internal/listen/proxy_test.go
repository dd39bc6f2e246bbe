package listen

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	proxyproto "github.com/pires/go-proxyproto"
)

// TestProxyProtocol serves a balancer, whose backend echoes the
// X-Forwarded-For it gets, on a listener that trusts the PROXY protocol
// from the given CIDRs, and sends it requests as a TCP front would.
func TestProxyProtocol(t *testing.T) {
	leakcheck.Check(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For"))
	}))
	defer backend.Close()
	cfg := balancer.DefaultConfig()
	lb, err := balancer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	if err := lb.SetBackends("default", []balancer.Backend{{ID: "b1", URL: backend.URL}}); err != nil {
		t.Fatal(err)
	}
	client := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 51000}
	for _, tc := range []struct {
		name    string
		trusted string
		version byte // PROXY header version; 0: none
		want    string
	}{
		{"v1 from a trusted peer", "127.0.0.0/8", 1, "203.0.113.7"},
		{"v2 from a trusted peer", "127.0.0.1/32", 2, "203.0.113.7"},
		{"v1 from another peer is refused", "10.0.0.0/8", 1, "refused"},
		{"v2 from another peer is refused", "10.0.0.0/8", 2, "refused"},
		{"no header from another peer is served", "10.0.0.0/8", 0, "127.0.0.1"},
		{"no header from a trusted peer is refused", "127.0.0.0/8", 0, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: lb}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(Proxy(ln, []netip.Prefix{netip.MustParsePrefix(tc.trusted)})) }()
			defer func() {
				srv.Close()
				<-done
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.version != 0 {
				h := proxyproto.HeaderProxyFromAddrs(tc.version, client, ln.Addr())
				if _, err := h.WriteTo(c); err != nil {
					t.Fatal(err)
				}
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n")
			got := "refused"
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got = strings.TrimSpace(string(b))
				if resp.StatusCode != 200 {
					got = resp.Status
				}
			}
			if got != tc.want {
				t.Errorf("X-Forwarded-For seen by the backend: %q, want %q", got, tc.want)
			}
		})
	}
}
