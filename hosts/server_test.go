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
	if rcode, _, _ := ask(t, "udp", srv, "1.0.0.10.in-addr.arpa.", dns.TypePTR); rcode != "NXDOMAIN" {
		t.Errorf("PTR of a removed name: rcode = %s, want NXDOMAIN", rcode)
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
	r := newTestResolver(t, clock, ResolverConfig{Servers: []string{srv}, Search: []string{"cluster.example"}, MaxAddrs: len(many)})
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

// exchange sends m to server over network and returns the reply.
func exchange(t *testing.T, network, server string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 10 * time.Second, UDPSize: dns.MaxMsgSize}
	resp, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("query %v over %s: %v", m.Question, network, err)
	}
	return resp
}

// rcodeName names an rcode; 16 is BADVERS in a reply to a query, not
// BADSIG, which miekg/dns's table says.
func rcodeName(rcode int) string {
	if rcode == dns.RcodeBadVers {
		return "BADVERS"
	}
	return dns.RcodeToString[rcode]
}

// optRecord returns an OPT record with the given UDP size and version.
func optRecord(size uint16, version uint8) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(size)
	o.SetVersion(version)
	return o
}

// TestServerEDNS checks RFC 6891: the Server's own payload size, BADVERS,
// FORMERR for two OPT records, and truncation to the smaller of the two
// sizes.
func TestServerEDNS(t *testing.T) {
	s, err := NewServer(ServerConfig{Zone: "cluster.example"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("a.cluster.example", netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	var many []netip.Addr // 100 A records: about 1.7 KB
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{10, 3, 0, byte(i)}))
	}
	if err := s.Set("big.cluster.example", many...); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, s)

	type want struct {
		Rcode   string
		Answers int
		TC      bool
		OPT     bool   // the reply has an OPT record
		Size    uint16 // its UDP size
		Version uint8  // its version
		MaxLen  int    // the reply's length at most, 0: any
	}
	tests := []struct {
		name string
		net  string
		q    string
		opts []*dns.OPT
		want want
	}{
		{"own size, not the client's", "udp", "a.cluster.example.", []*dns.OPT{optRecord(65535, 0)},
			want{Rcode: "NOERROR", Answers: 1, OPT: true, Size: 1232}},
		{"own size over TCP", "tcp", "a.cluster.example.", []*dns.OPT{optRecord(4096, 0)},
			want{Rcode: "NOERROR", Answers: 1, OPT: true, Size: 1232}},
		{"no EDNS, no OPT", "udp", "a.cluster.example.", nil,
			want{Rcode: "NOERROR", Answers: 1}},
		{"version 1: BADVERS", "udp", "a.cluster.example.", []*dns.OPT{optRecord(1232, 1)},
			want{Rcode: "BADVERS", OPT: true, Size: 1232}},
		{"version 1 over TCP: BADVERS", "tcp", "a.cluster.example.", []*dns.OPT{optRecord(1232, 1)},
			want{Rcode: "BADVERS", OPT: true, Size: 1232}},
		{"two OPT records: FORMERR", "udp", "a.cluster.example.", []*dns.OPT{optRecord(1232, 0), optRecord(1232, 0)},
			want{Rcode: "FORMERR"}},
		{"two OPT records over TCP: FORMERR", "tcp", "a.cluster.example.", []*dns.OPT{optRecord(1232, 0), optRecord(4096, 0)},
			want{Rcode: "FORMERR"}},
		{"client offers 4096: cut at 1232", "udp", "big.cluster.example.", []*dns.OPT{optRecord(4096, 0)},
			want{Rcode: "NOERROR", Answers: 74, TC: true, OPT: true, Size: 1232, MaxLen: 1232}},
		{"client offers 800: cut at 800", "udp", "big.cluster.example.", []*dns.OPT{optRecord(800, 0)},
			want{Rcode: "NOERROR", Answers: 47, TC: true, OPT: true, Size: 1232, MaxLen: 800}},
		{"client offers 100: cut at 512", "udp", "big.cluster.example.", []*dns.OPT{optRecord(100, 0)},
			want{Rcode: "NOERROR", Answers: 29, TC: true, OPT: true, Size: 1232, MaxLen: 512}},
		{"no EDNS: cut at 512", "udp", "big.cluster.example.", nil,
			want{Rcode: "NOERROR", Answers: 29, TC: true, MaxLen: 512}},
		{"TCP: whole", "tcp", "big.cluster.example.", []*dns.OPT{optRecord(512, 0)},
			want{Rcode: "NOERROR", Answers: 100, OPT: true, Size: 1232}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tc.q, dns.TypeA)
			for _, o := range tc.opts {
				m.Extra = append(m.Extra, o)
			}
			resp := exchange(t, tc.net, srv, m)
			resp.Compress = true // as sent
			packed, err := resp.Pack()
			if err != nil {
				t.Fatal(err)
			}
			got := want{Rcode: rcodeName(resp.Rcode), Answers: len(resp.Answer), TC: resp.Truncated, MaxLen: tc.want.MaxLen}
			if opt := resp.IsEdns0(); opt != nil {
				got.OPT, got.Size, got.Version = true, opt.UDPSize(), opt.Version()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("reply mismatch (-want +got):\n%s", diff)
			}
			if tc.want.MaxLen > 0 && len(packed) > tc.want.MaxLen {
				t.Errorf("reply of %d bytes, want at most %d", len(packed), tc.want.MaxLen)
			}
			n := 0
			for _, rr := range resp.Extra {
				if rr.Header().Rrtype == dns.TypeOPT {
					n++
				}
			}
			if n > 1 {
				t.Errorf("reply has %d OPT records", n)
			}
		})
	}
}

// TestServerZoneTransferRefused checks that AXFR and IXFR are REFUSED over
// both transports, for the zone and for names in it.
func TestServerZoneTransferRefused(t *testing.T) {
	s, err := NewServer(ServerConfig{Zone: "cluster.example"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("a.cluster.example", netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, s)
	for _, network := range []string{"udp", "tcp"} {
		for _, qt := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
			for _, name := range []string{"cluster.example.", "a.cluster.example.", "0.0.10.in-addr.arpa."} {
				t.Run(network+" "+dns.TypeToString[qt]+" "+name, func(t *testing.T) {
					m := new(dns.Msg)
					m.SetQuestion(name, qt)
					if qt == dns.TypeIXFR { // RFC 1995 section 3: the client's SOA
						m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET},
							Ns: "ns.cluster.example.", Mbox: "hostmaster.cluster.example.", Serial: 1}}
					}
					resp := exchange(t, network, srv, m)
					if got := dns.RcodeToString[resp.Rcode]; got != "REFUSED" {
						t.Errorf("rcode = %s, want REFUSED", got)
					}
					if len(resp.Answer) != 0 || len(resp.Ns) != 0 {
						t.Errorf("records in a refusal: answer %v, authority %v", resp.Answer, resp.Ns)
					}
				})
			}
		}
	}
}

// TestServerOtherTypes checks the answers to query types the Server has no
// records of.
func TestServerOtherTypes(t *testing.T) {
	s, err := NewServer(ServerConfig{Zone: "cluster.example"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("a.cluster.example", netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, s)
	tests := []struct {
		q     string
		qtype uint16
		rcode string
		soa   bool // the SOA in the authority section
	}{
		{"a.cluster.example.", dns.TypeMX, "NOERROR", true},
		{"a.cluster.example.", dns.TypeTXT, "NOERROR", true},
		{"cluster.example.", dns.TypeNS, "NOERROR", true},
		{"nope.cluster.example.", dns.TypeMX, "NXDOMAIN", true},
		{"a.cluster.example.", dns.TypeMAILB, "NOTIMP", false},
		{"a.cluster.example.", dns.TypeTSIG, "FORMERR", false},
		{"example.org.", dns.TypeMX, "REFUSED", false},
	}
	for _, tc := range tests {
		t.Run(dns.TypeToString[tc.qtype]+" "+tc.q, func(t *testing.T) {
			rcode, ans, resp := ask(t, "udp", srv, tc.q, tc.qtype)
			if rcode != tc.rcode || len(ans) != 0 {
				t.Errorf("rcode %s, answer %v; want %s and none", rcode, ans, tc.rcode)
			}
			if got := len(resp.Ns) == 1 && resp.Ns[0].Header().Rrtype == dns.TypeSOA; got != tc.soa {
				t.Errorf("SOA in the authority section: %v, want %v", got, tc.soa)
			}
		})
	}
}

// TestServerUnpublishedPTR checks that reverse names inside the Server's
// reverse zones that are not published get NXDOMAIN with the zone's SOA,
// and only names outside every zone get REFUSED.
func TestServerUnpublishedPTR(t *testing.T) {
	s, err := NewServer(ServerConfig{Zone: "cluster.example", TTL: 10 * time.Second, NegativeTTL: 5 * time.Second,
		ReverseZones: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fd00:1::/32")}})
	if err != nil {
		t.Fatal(err)
	}
	for name, addrs := range map[string][]string{
		"a.cluster.example":    {"10.0.0.1", "fd00::1"},
		"b.cluster.example":    {"10.0.0.2"},
		"gone.cluster.example": {"10.0.5.9", "fd00:2::9"},
	} {
		var as []netip.Addr
		for _, a := range addrs {
			as = append(as, netip.MustParseAddr(a))
		}
		if err := s.Set(name, as...); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServer(t, s)
	if !s.Remove("gone.cluster.example") || !s.Remove("b.cluster.example") {
		t.Fatal("Remove failed")
	}

	const v6gone = "9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.0.0.d.f.ip6.arpa."
	tests := []struct {
		name   string
		q      string
		qtype  uint16
		rcode  string
		answer []string
		soa    string // owner of the SOA in the authority section, "" for none
	}{
		{"published", "1.0.0.10.in-addr.arpa.", dns.TypePTR, "NOERROR",
			[]string{"1.0.0.10.in-addr.arpa. 10 PTR a.cluster.example."}, ""},
		{"removed, another in its /24 still published", "2.0.0.10.in-addr.arpa.", dns.TypePTR, "NXDOMAIN", nil, "0.0.10.in-addr.arpa."},
		{"removed, alone in its /24", "9.5.0.10.in-addr.arpa.", dns.TypePTR, "NXDOMAIN", nil, "5.0.10.in-addr.arpa."},
		{"never published, in a learned /24", "77.0.0.10.in-addr.arpa.", dns.TypePTR, "NXDOMAIN", nil, "0.0.10.in-addr.arpa."},
		{"removed IPv6, alone in its /64", v6gone, dns.TypePTR, "NXDOMAIN", nil,
			"0.0.0.0.0.0.0.0.2.0.0.0.0.0.d.f.ip6.arpa."},
		{"in a configured zone", "5.5.168.192.in-addr.arpa.", dns.TypePTR, "NXDOMAIN", nil, "168.192.in-addr.arpa."},
		{"in a configured IPv6 zone", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, "NXDOMAIN", nil,
			"1.0.0.0.0.0.d.f.ip6.arpa."},
		{"A of a published address's name", "1.0.0.10.in-addr.arpa.", dns.TypeA, "NOERROR", nil, "0.0.10.in-addr.arpa."},
		{"below an address", "x.1.0.0.10.in-addr.arpa.", dns.TypePTR, "NXDOMAIN", nil, "0.0.10.in-addr.arpa."},
		{"reverse zone apex", "0.0.10.in-addr.arpa.", dns.TypeSOA, "NOERROR",
			[]string{"0.0.10.in-addr.arpa. 5 SOA ns.cluster.example. hostmaster.cluster.example. 6 3600 600 86400 5"}, ""},
		{"empty non-terminal in a configured zone", "5.168.192.in-addr.arpa.", dns.TypePTR, "NXDOMAIN", nil, "168.192.in-addr.arpa."},
		{"outside every zone", "9.9.9.9.in-addr.arpa.", dns.TypePTR, "REFUSED", nil, ""},
		{"next /24", "1.1.0.10.in-addr.arpa.", dns.TypePTR, "REFUSED", nil, ""},
		{"above a learned zone", "0.10.in-addr.arpa.", dns.TypePTR, "REFUSED", nil, ""},
		{"IPv6 outside", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.f.ip6.arpa.", dns.TypePTR, "REFUSED", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rcode, ans, resp := ask(t, "udp", srv, tc.q, tc.qtype)
			if rcode != tc.rcode {
				t.Errorf("rcode = %s, want %s", rcode, tc.rcode)
			}
			if diff := cmp.Diff(tc.answer, ans); diff != "" {
				t.Errorf("answer mismatch (-want +got):\n%s", diff)
			}
			soa := ""
			if len(resp.Ns) == 1 && resp.Ns[0].Header().Rrtype == dns.TypeSOA {
				soa = resp.Ns[0].Header().Name
			}
			if soa != tc.soa {
				t.Errorf("SOA owner = %q, want %q (authority %v)", soa, tc.soa, resp.Ns)
			}
			if resp.Authoritative != (tc.rcode != "REFUSED") {
				t.Errorf("AA = %v", resp.Authoritative)
			}
		})
	}
}

func TestNewServerReverseZones(t *testing.T) {
	for _, p := range []string{"10.0.0.0/12", "fd00::/33", "10.0.0.0/25"} {
		if _, err := NewServer(ServerConfig{Zone: "cluster.example", ReverseZones: []netip.Prefix{netip.MustParsePrefix(p)}}); err == nil {
			t.Errorf("reverse zone %s accepted", p)
		}
	}
	if _, err := NewServer(ServerConfig{Zone: "cluster.example", ReverseZones: []netip.Prefix{{}}}); err == nil {
		t.Error("invalid prefix accepted")
	}
}

func TestReverseName(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		below  bool
		ok     bool
	}{
		{"1.0.0.10.in-addr.arpa.", "10.0.0.1/32", false, true},
		{"0.10.in-addr.arpa.", "10.0.0.0/16", false, true},
		{"in-addr.arpa.", "0.0.0.0/0", false, true},
		{"x.1.0.0.10.in-addr.arpa.", "10.0.0.1/32", true, true},
		{"9.1.0.0.10.in-addr.arpa.", "10.0.0.1/32", true, true},
		{"01.0.10.in-addr.arpa.", "10.0.0.0/16", true, true},
		{"256.0.10.in-addr.arpa.", "10.0.0.0/16", true, true},
		{"d.f.ip6.arpa.", "fd00::/8", false, true},
		{"g.d.f.ip6.arpa.", "fd00::/8", true, true},
		{"ip6.arpa.", "::/0", false, true},
		{"example.org.", "invalid Prefix", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, below, ok := parseReverseName(tc.name)
			if got := p.String(); got != tc.prefix || below != tc.below || ok != tc.ok {
				t.Errorf("parseReverseName = %s, %v, %v; want %s, %v, %v", got, below, ok, tc.prefix, tc.below, tc.ok)
			}
			if ok && p.Bits()%8 == 0 || ok && p.Addr().Is6() {
				if back := reverseName(p); !below && back != tc.name {
					t.Errorf("reverseName(%s) = %q", p, back)
				}
			}
		})
	}
}
