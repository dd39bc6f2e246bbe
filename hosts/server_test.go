package hosts

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// startServer runs s on 127.0.0.1 over UDP and TCP (same port) and shuts it
// down when the test ends, checking that Serve returned ErrServerClosed.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	var pc net.PacketConn
	var l net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	errc := make(chan error, 2)
	go func() { errc <- s.ServePacket(pc) }()
	go func() { errc <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		for range 2 {
			if err := <-errc; !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		}
	})
	return pc.LocalAddr().String()
}

// ask sends one query and returns the rcode, the answer as text without
// TTLs and flags, and the reply.
func ask(t *testing.T, network, server, name string, qtype uint16) (string, []string, *dns.Msg) {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	resp, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	var ans []string
	for _, rr := range resp.Answer {
		f := strings.Fields(rr.String())
		ans = append(ans, f[0]+" "+f[1]+" "+f[3]+" "+strings.Join(f[4:], " "))
	}
	return dns.RcodeToString[resp.Rcode], ans, resp
}

func TestServer(t *testing.T) {
	s, err := NewServer(ServerConfig{Zone: "Cluster.Example", TTL: 10 * time.Second, NegativeTTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("mgt.cluster.example", netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("Workers.Cluster.Example.", netip.MustParseAddr("fd00::2"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("::ffff:10.0.0.3")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("a.b.cluster.example", netip.MustParseAddr("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, s)

	tests := []struct {
		name   string
		net    string
		q      string
		qtype  uint16
		rcode  string
		answer []string
	}{
		{"A", "udp", "mgt.cluster.example.", dns.TypeA, "NOERROR", []string{"mgt.cluster.example. 10 A 10.0.0.1"}},
		{"A over TCP", "tcp", "mgt.cluster.example.", dns.TypeA, "NOERROR", []string{"mgt.cluster.example. 10 A 10.0.0.1"}},
		{"case kept", "udp", "MGT.Cluster.example.", dns.TypeA, "NOERROR", []string{"MGT.Cluster.example. 10 A 10.0.0.1"}},
		{"several A", "udp", "workers.cluster.example.", dns.TypeA, "NOERROR", []string{
			"workers.cluster.example. 10 A 10.0.0.2", "workers.cluster.example. 10 A 10.0.0.3"}},
		{"AAAA", "udp", "workers.cluster.example.", dns.TypeAAAA, "NOERROR", []string{"workers.cluster.example. 10 AAAA fd00::2"}},
		{"NODATA", "udp", "mgt.cluster.example.", dns.TypeAAAA, "NOERROR", nil},
		{"NXDOMAIN", "udp", "nope.cluster.example.", dns.TypeA, "NXDOMAIN", nil},
		{"empty non-terminal", "udp", "b.cluster.example.", dns.TypeA, "NOERROR", nil},
		{"outside the zone", "udp", "example.org.", dns.TypeA, "REFUSED", nil},
		{"apex SOA", "udp", "cluster.example.", dns.TypeSOA, "NOERROR", []string{
			"cluster.example. 5 SOA ns.cluster.example. hostmaster.cluster.example. 4 3600 600 86400 5"}},
		{"PTR v4", "udp", "2.0.0.10.in-addr.arpa.", dns.TypePTR, "NOERROR", []string{
			"2.0.0.10.in-addr.arpa. 10 PTR workers.cluster.example.", "2.0.0.10.in-addr.arpa. 10 PTR a.b.cluster.example."}},
		{"PTR v6", "udp", "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, "NOERROR", []string{
			"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 10 PTR workers.cluster.example."}},
		{"PTR unknown", "udp", "9.9.9.9.in-addr.arpa.", dns.TypePTR, "REFUSED", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rcode, ans, resp := ask(t, tc.net, srv, tc.q, tc.qtype)
			if rcode != tc.rcode {
				t.Errorf("rcode = %s, want %s", rcode, tc.rcode)
			}
			if diff := cmp.Diff(tc.answer, ans); diff != "" {
				t.Errorf("answer mismatch (-want +got):\n%s", diff)
			}
			if tc.rcode != "REFUSED" && !resp.Authoritative {
				t.Error("AA bit not set")
			}
			if (tc.rcode == "NXDOMAIN" || len(tc.answer) == 0 && tc.rcode == "NOERROR") && (len(resp.Ns) != 1 || resp.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Errorf("negative answer without SOA: %v", resp.Ns)
			}
		})
	}

	if !s.Remove("mgt.cluster.example.") || s.Remove("mgt.cluster.example") {
		t.Error("Remove results wrong")
	}
	if rcode, _, _ := ask(t, "udp", srv, "mgt.cluster.example.", dns.TypeA); rcode != "NXDOMAIN" {
		t.Errorf("removed name: rcode = %s, want NXDOMAIN", rcode)
	}
	if rcode, _, _ := ask(t, "udp", srv, "1.0.0.10.in-addr.arpa.", dns.TypePTR); rcode != "REFUSED" {
		t.Errorf("PTR of a removed name: rcode = %s, want REFUSED", rcode)
	}
}

func TestServerSetErrors(t *testing.T) {
	if _, err := NewServer(ServerConfig{}); err == nil {
		t.Error("NewServer without a zone succeeded")
	}
	s, err := NewServer(ServerConfig{Zone: "cluster.example"})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("10.0.0.1")
	if err := s.Set("x.example.org", a); err == nil {
		t.Error("Set outside the zone succeeded")
	}
	if err := s.Set("bad_name.cluster.example", a); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Set of an invalid name: %v, want ErrInvalidName", err)
	}
	if err := s.Set("x.cluster.example"); err == nil {
		t.Error("Set without addresses succeeded")
	}
	if s.Lookup("x.cluster.example") != nil {
		t.Error("a failed Set left records")
	}
}

// TestServerWithResolver resolves through the Server: truncation to TCP,
// negative caching from its SOA, and updates after the TTL.
func TestServerWithResolver(t *testing.T) {
	s, err := NewServer(ServerConfig{Zone: "cluster.example", TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var many []netip.Addr
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{10, 2, 0, byte(i)}))
	}
	if err := s.Set("lb.cluster.example", many...); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, s)
	clock := newFakeClock()
	r := newTestResolver(t, clock, ResolverConfig{Servers: []string{srv}, Search: []string{"cluster.example"}})
	got, err := r.LookupAddr(context.Background(), "lb")
	if err != nil || len(got) != 100 {
		t.Fatalf("lookup = %d addresses, %v; want 100", len(got), err)
	}
	if _, err := r.LookupAddr(context.Background(), "new.cluster.example."); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if err := s.Set("new.cluster.example", netip.MustParseAddr("10.0.0.9")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LookupAddr(context.Background(), "new.cluster.example."); !errors.Is(err, ErrNotFound) {
		t.Errorf("within the negative TTL: err = %v, want the cached ErrNotFound", err)
	}
	clock.Advance(10 * time.Second)
	if got := lookup(t, r, "new.cluster.example."); got != "10.0.0.9" {
		t.Errorf("after the negative TTL = %q", got)
	}
}

func TestServerShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := NewServer(ServerConfig{Zone: "cluster.example"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("a.cluster.example", netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	t.Run("serving", func(t *testing.T) {
		srv := startServer(t, s)
		if _, ans, _ := ask(t, "tcp", srv, "a.cluster.example.", dns.TypeA); len(ans) != 1 {
			t.Errorf("answer = %v", ans)
		}
	}) // the subtest's cleanup shuts the server down
	checkGoroutines(t, before)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown of an idle server: %v", err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := s.ServePacket(pc); !errors.Is(err, ErrServerClosed) {
		t.Errorf("ServePacket after Shutdown = %v, want ErrServerClosed", err)
	}
}
