package hosts

import (
	"bytes"
	"maps"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// seedFiles adds every hosts file of testdata to the corpus of f.
func seedFiles(f *testing.F, add func(data []byte)) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*hosts"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		add(data)
	}
}

// FuzzParseWriteTo checks that Parse then WriteTo gives back any input, byte
// for byte, and that lookups and warnings hold up.
func FuzzParseWriteTo(f *testing.F) {
	seedFiles(f, func(data []byte) { f.Add(data) })
	f.Add([]byte("10.0.0.1 a\r\n\r\n#x\n\t::1%lo0 b c # d\n10.0.0.300 bad\n10.0.0.1"))
	f.Add([]byte("\r\r\n\x00 \xff\n#\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		hf, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		n, err := hf.WriteTo(&buf)
		if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("WriteTo = %d, %v, %q; want %q", n, err, buf.Bytes(), data)
		}
		lines := bytes.Count(data, []byte{'\n'}) + 1
		for _, w := range hf.Warnings() {
			if w.Line < 1 || w.Line > lines || w.Col < 1 || w.Text == "" {
				t.Errorf("bad warning %+v", w)
			}
		}
		// The forward and reverse indexes hold the pairs of the lines.
		type pair struct {
			name string
			addr netip.Addr
		}
		onLines, fwd, rev := map[pair]bool{}, map[pair]bool{}, map[pair]bool{}
		for _, l := range hf.lines {
			if l.isEntry() {
				for _, fd := range l.fields[1:] {
					onLines[pair{foldName(fd.text), l.addr}] = true
				}
			}
		}
		for name, as := range hf.names() {
			for _, a := range as {
				fwd[pair{name, a}] = true
			}
		}
		for a, names := range hf.rindex {
			for _, n := range names {
				rev[pair{foldName(n), a}] = true
			}
		}
		if !maps.Equal(onLines, fwd) || !maps.Equal(onLines, rev) {
			t.Fatalf("indexes disagree with the lines: %d pairs, %d forward, %d reverse", len(onLines), len(fwd), len(rev))
		}
	})
}

// FuzzSetLookup checks that after Set, Lookup returns what was set, that the
// written file says the same when parsed again, that other names keep their
// addresses, that a second Set changes nothing and that Remove removes.
func FuzzSetLookup(f *testing.F) {
	seedFiles(f, func(data []byte) {
		f.Add(data, "localhost", "10.0.0.1 fd00::1")
		f.Add(data, "mgt.as.example.com", "192.168.1.10")
	})
	f.Add([]byte("10.0.0.1 a b\n10.0.0.2 A\n"), "a", "10.0.0.2")
	f.Add([]byte("10.0.0.1 a # c\r\n"), "b.", "10.0.0.1 10.0.0.1")
	f.Add([]byte("fe80::1%eth0 r"), "r", "fe80::1%eth1 ::ffff:1.2.3.4")
	f.Fuzz(func(t *testing.T, data []byte, name, addrList string) {
		hf, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		var want []netip.Addr
		for _, s := range strings.Fields(addrList) {
			if a, err := netip.ParseAddr(s); err == nil {
				want = append(want, a)
			}
		}
		others := make(map[string][]netip.Addr)
		for k, v := range hf.names() {
			if k != foldName(name) {
				others[k] = slices.Clone(v)
			}
		}
		if err := hf.Set(name, want...); err != nil {
			if got := hf.Bytes(); !bytes.Equal(got, data) {
				t.Fatalf("failed Set (%v) changed the file", err)
			}
			return
		}
		sorted := func(as []netip.Addr) []netip.Addr {
			as = slices.Clone(as)
			slices.SortFunc(as, netip.Addr.Compare)
			return slices.Compact(as)
		}
		if got := hf.Lookup(name); !slices.Equal(sorted(got), sorted(want)) {
			t.Fatalf("Lookup after Set = %v, want %v", got, want)
		}
		out := hf.Bytes()
		again, _ := Parse(bytes.NewReader(out))
		if got := again.Lookup(name); !slices.Equal(sorted(got), sorted(want)) {
			t.Fatalf("Lookup after Set and reparse = %v, want %v\n%q", got, want, out)
		}
		for k, v := range others {
			if got := again.Lookup(k); !slices.Equal(got, v) {
				t.Fatalf("Set(%q) changed %q from %v to %v", name, k, v, got)
			}
		}
		if err := again.Set(name, want...); err != nil || !bytes.Equal(again.Bytes(), out) {
			t.Fatalf("second Set changed the file (%v):\n%q\n%q", err, out, again.Bytes())
		}
		if !again.Remove(name) || again.Lookup(name) != nil {
			t.Fatalf("Remove(%q) did not remove it", name)
		}
	})
}

// FuzzExtractAddrs feeds arbitrary DNS messages to the code that reads
// answers.
func FuzzExtractAddrs(f *testing.F) {
	z := newZone(60)
	z.set("app.example", "10.0.0.1", "fd00::1")
	for _, q := range []struct {
		name string
		qt   uint16
	}{{"app.example.", dns.TypeA}, {"app.example.", dns.TypeAAAA}, {"nope.example.", dns.TypeA}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qt)
		if b, err := z.reply(m).Pack(); err == nil {
			f.Add(b)
		}
	}
	cn := new(dns.Msg)
	cn.SetQuestion("www.example.", dns.TypeA)
	cn.Answer = []dns.RR{
		&dns.CNAME{Hdr: dns.RR_Header{Name: "www.example.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 5}, Target: "www.example."},
		&dns.A{Hdr: dns.RR_Header{Name: "www.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: []byte{1, 2, 3, 4}},
	}
	if b, err := cn.Pack(); err == nil {
		f.Add(b)
	}
	// TTLs with the top bit set, which count as 0 (RFC 2181 section 8).
	huge := new(dns.Msg)
	huge.SetQuestion("app.example.", dns.TypeA)
	huge.Answer = []dns.RR{
		&dns.A{Hdr: dns.RR_Header{Name: "app.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1 << 31}, A: []byte{10, 0, 0, 1}},
		&dns.A{Hdr: dns.RR_Header{Name: "app.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: math.MaxUint32}, A: []byte{10, 0, 0, 2}},
	}
	huge.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: math.MaxUint32},
		Ns: "ns.example.", Mbox: "hostmaster.example.", Minttl: 1 << 31}}
	if b, err := huge.Pack(); err == nil {
		f.Add(b)
	}
	// More addresses than the cap.
	many := new(dns.Msg)
	many.SetQuestion("app.example.", dns.TypeA)
	for i := range 100 {
		many.Answer = append(many.Answer, &dns.A{Hdr: dns.RR_Header{Name: "app.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{10, 0, 1, byte(i)}})
	}
	many.Compress = true
	if b, err := many.Pack(); err == nil {
		f.Add(b)
	}
	s, err := NewServer(ServerConfig{Zone: "example"})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Set("app.example", netip.MustParseAddr("10.0.0.1")); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(data); err != nil {
			return
		}
		name := "app.example."
		if len(m.Question) > 0 {
			name = m.Question[0].Name
		}
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			as, ttl := extractAddrs(m, name, qt, DefaultMaxAddrs)
			if ttl < 0 || ttl > math.MaxInt32*time.Second || len(as) == 0 && ttl != 0 {
				t.Fatalf("ttl %v with %d addresses", ttl, len(as))
			}
			if len(as) > DefaultMaxAddrs {
				t.Fatalf("%d addresses, more than %d", len(as), DefaultMaxAddrs)
			}
			for _, a := range as {
				if !a.IsValid() || a.Is4() != (qt == dns.TypeA) {
					t.Fatalf("type %d gave %v", qt, a)
				}
			}
		}
		negativeTTL(m)
		// The same bytes as a query to the responder: it must answer
		// with a message that packs.
		if _, err := s.answer(m).Pack(); err != nil {
			t.Fatalf("answer does not pack: %v", err)
		}
	})
}

// FuzzServeDNS feeds arbitrary DNS messages to the responder as queries over
// UDP and TCP: it never panics, and its reply is a response to the query
// that packs, fits the size allowed over UDP, and carries at most one OPT
// record, of version 0, and only if the query had one (RFC 6891).
func FuzzServeDNS(f *testing.F) {
	s, err := NewServer(ServerConfig{Zone: "cluster.example", ReverseZones: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}})
	if err != nil {
		f.Fatal(err)
	}
	var many []netip.Addr
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{10, 3, 0, byte(i)}))
	}
	for name, addrs := range map[string][]netip.Addr{
		"a.cluster.example":    {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")},
		"big.cluster.example":  many,
		"gone.cluster.example": {netip.MustParseAddr("10.0.5.9")},
	} {
		if err := s.Set(name, addrs...); err != nil {
			f.Fatal(err)
		}
	}
	s.Remove("gone.cluster.example")

	opt := func(size uint16, version uint8) *dns.OPT {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(size)
		o.SetVersion(version)
		return o
	}
	for _, q := range []struct {
		name  string
		qtype uint16
		extra []dns.RR
	}{
		{"a.cluster.example.", dns.TypeA, nil},
		{"a.cluster.example.", dns.TypeAAAA, []dns.RR{opt(4096, 0)}},
		{"big.cluster.example.", dns.TypeA, []dns.RR{opt(65535, 0)}},
		{"big.cluster.example.", dns.TypeANY, []dns.RR{opt(100, 0)}},
		{"a.cluster.example.", dns.TypeA, []dns.RR{opt(1232, 1)}},
		{"a.cluster.example.", dns.TypeA, []dns.RR{opt(1232, 0), opt(512, 0)}},
		{"cluster.example.", dns.TypeAXFR, nil},
		{"cluster.example.", dns.TypeIXFR, []dns.RR{opt(1232, 0)}},
		{"cluster.example.", dns.TypeSOA, []dns.RR{opt(1232, 0)}},
		{"9.5.0.10.in-addr.arpa.", dns.TypePTR, nil},
		{"1.0.0.10.in-addr.arpa.", dns.TypePTR, []dns.RR{opt(1232, 0)}},
		{"x.1.0.0.10.in-addr.arpa.", dns.TypeANY, nil},
		{"5.168.192.in-addr.arpa.", dns.TypePTR, nil},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, nil},
		{"example.org.", dns.TypeA, nil},
		{"a.cluster.example.", dns.TypeMAILB, nil},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.Extra = q.extra
		if b, err := m.Pack(); err == nil {
			f.Add(b, true)
			f.Add(b, false)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, udp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(data); err != nil {
			return // the dns.Server answers FORMERR itself
		}
		var opts []*dns.OPT
		for _, rr := range req.Extra {
			if o, ok := rr.(*dns.OPT); ok {
				opts = append(opts, o)
			}
		}
		resp := s.reply(req, udp)
		b, err := resp.Pack()
		if err != nil {
			t.Fatalf("reply does not pack: %v\n%v", err, resp)
		}
		limit := dns.MaxMsgSize
		if udp {
			limit = dns.MinMsgSize
			if len(opts) == 1 {
				limit = min(max(int(opts[0].UDPSize()), dns.MinMsgSize), 1232)
			}
		}
		if len(b) > limit {
			t.Fatalf("reply of %d bytes, more than %d", len(b), limit)
		}
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("not a response to the query: id %d, want %d", resp.Id, req.Id)
		}
		var got []*dns.OPT
		for _, rr := range resp.Extra {
			if o, ok := rr.(*dns.OPT); ok {
				got = append(got, o)
			}
		}
		switch {
		case len(got) > 1:
			t.Fatalf("%d OPT records in the reply", len(got))
		case len(got) == 1 && len(opts) == 0:
			t.Fatal("an OPT record in the reply to a query without one")
		case len(got) == 1 && (got[0].Version() != 0 || got[0].UDPSize() != 1232):
			t.Fatalf("reply OPT: version %d, size %d", got[0].Version(), got[0].UDPSize())
		case len(opts) > 1 && resp.Rcode != dns.RcodeFormatError:
			t.Fatalf("rcode %d to %d OPT records, want FORMERR", resp.Rcode, len(opts))
		case len(opts) == 1 && opts[0].Version() != 0 && resp.Rcode != dns.RcodeBadVers:
			t.Fatalf("rcode %d to EDNS version %d, want BADVERS", resp.Rcode, opts[0].Version())
		}
		// What was packed reads back.
		back := new(dns.Msg)
		if err := back.Unpack(b); err != nil {
			t.Fatalf("reply does not unpack: %v", err)
		}
	})
}
