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
