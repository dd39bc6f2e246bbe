package hosts

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

func lookup(t *testing.T, r *Resolver, host string) string {
	t.Helper()
	as, err := r.LookupAddr(context.Background(), host)
	if err != nil {
		t.Fatalf("LookupAddr(%q): %v", host, err)
	}
	return addrStrings(as)
}

func TestResolverTTLExpiry(t *testing.T) {
	var qc queryCounter
	z := newZone(30)
	z.set("app.example", "10.0.0.1")
	srv := startDNS(t, &qc, z.handler)
	clock := newFakeClock()
	r := newTestResolver(t, clock, ResolverConfig{Servers: []string{srv}})

	if got := lookup(t, r, "app.example."); got != "10.0.0.1" {
		t.Fatalf("first lookup = %q", got)
	}
	z.set("app.example", "10.0.0.2")
	clock.Advance(29 * time.Second)
	if got := lookup(t, r, "app.example."); got != "10.0.0.1" {
		t.Errorf("lookup within the TTL = %q, want the cached 10.0.0.1", got)
	}
	if n := qc.get("udp A"); n != 1 {
		t.Errorf("A queries within the TTL = %d, want 1", n)
	}
	clock.Advance(time.Second)
	if got := lookup(t, r, "app.example."); got != "10.0.0.2" {
		t.Errorf("lookup after the TTL = %q, want 10.0.0.2", got)
	}
	if n := qc.get("udp A"); n != 2 {
		t.Errorf("A queries after the TTL = %d, want 2", n)
	}
}

func TestResolverMaxTTLCaps(t *testing.T) {
	var qc queryCounter
	z := newZone(86400)
	z.set("app.example", "10.0.0.1")
	srv := startDNS(t, &qc, z.handler)
	clock := newFakeClock()
	r := newTestResolver(t, clock, ResolverConfig{Servers: []string{srv}, MaxTTL: time.Minute})
	lookup(t, r, "app.example.")
	clock.Advance(59 * time.Second)
	lookup(t, r, "app.example.")
	if n := qc.get("udp A"); n != 1 {
		t.Errorf("A queries before MaxTTL = %d, want 1", n)
	}
	clock.Advance(time.Second)
	lookup(t, r, "app.example.")
	if n := qc.get("udp A"); n != 2 {
		t.Errorf("A queries at MaxTTL = %d, want 2", n)
	}
}

func TestResolverTruncatedAnswerRetriedOverTCP(t *testing.T) {
	var qc queryCounter
	var want []string
	for i := range 200 {
		want = append(want, netip.AddrFrom4([4]byte{10, 1, byte(i / 256), byte(i)}).String())
	}
	z := newZone(60)
	z.set("big.example", want...)
	srv := startDNS(t, &qc, func(w dns.ResponseWriter, r *dns.Msg) {
		m := z.reply(r)
		if !isTCP(w) {
			size := dns.MinMsgSize
			if opt := r.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(size)
		}
		w.WriteMsg(m)
	})
	r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv}, MaxAddrs: len(want)})
	if got := lookup(t, r, "big.example."); got != strings.Join(want, " ") {
		t.Errorf("lookup = %q, want the 200 addresses", got)
	}
	if n := qc.get("udp A"); n != 1 {
		t.Errorf("UDP A queries = %d, want 1", n)
	}
	if n := qc.get("tcp A"); n != 1 {
		t.Errorf("TCP A queries = %d, want 1 (retry of the truncated answer)", n)
	}
	if n := qc.get("tcp AAAA"); n != 0 {
		t.Errorf("TCP AAAA queries = %d, want 0 (that answer fits)", n)
	}
}

func TestResolverSERVFAILAnsweredByNextServer(t *testing.T) {
	var bad, good queryCounter
	z := newZone(60)
	z.set("app.example", "10.0.0.1", "fd00::1")
	srv1 := startDNS(t, &bad, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		w.WriteMsg(m.SetRcode(r, dns.RcodeServerFailure))
	})
	srv2 := startDNS(t, &good, z.handler)
	r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv1, srv2}})
	if got := lookup(t, r, "app.example."); got != "10.0.0.1 fd00::1" {
		t.Errorf("lookup = %q", got)
	}
	for _, qt := range []string{"udp A", "udp AAAA"} {
		if bad.get(qt) != 1 || good.get(qt) != 1 {
			t.Errorf("%s queries: first server %d, second %d; want 1 and 1", qt, bad.get(qt), good.get(qt))
		}
	}
}

func TestResolverTimeoutTriesNextServer(t *testing.T) {
	var silent queryCounter
	z := newZone(60)
	z.set("app.example", "10.0.0.1")
	srv1 := startDNS(t, &silent, func(dns.ResponseWriter, *dns.Msg) {}) // never answers
	srv2 := startDNS(t, nil, z.handler)
	r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv1, srv2}, Timeout: 50 * time.Millisecond})
	if got := lookup(t, r, "app.example."); got != "10.0.0.1" {
		t.Errorf("lookup = %q", got)
	}
	if silent.get("udp A") != 1 {
		t.Errorf("silent server got %d A queries, want 1", silent.get("udp A"))
	}

	// With only silent servers, the lookup times out after Attempts rounds.
	r2 := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv1}, Timeout: 20 * time.Millisecond, Attempts: 2})
	before := silent.get("udp A")
	_, err := r2.LookupAddr(context.Background(), "other.example.")
	var le *LookupError
	if !errors.As(err, &le) || !le.Timeout() || !errors.Is(err, ErrTimeout) || le.Server != srv1 {
		t.Fatalf("err = %#v, want a *LookupError timeout from %s", err, srv1)
	}
	if n := silent.get("udp A") - before; n != 2 {
		t.Errorf("A queries = %d, want 2 (Attempts)", n)
	}
}

func TestResolverNXDOMAINFromNegativeCache(t *testing.T) {
	var qc queryCounter
	z := newZone(60) // NXDOMAIN carries an SOA with TTL 300, MINIMUM 60
	srv := startDNS(t, &qc, z.handler)
	clock := newFakeClock()
	r := newTestResolver(t, clock, ResolverConfig{Servers: []string{srv}, MaxNegativeTTL: time.Hour})

	for i := range 3 {
		_, err := r.LookupAddr(context.Background(), "missing.example.")
		var le *LookupError
		if !errors.As(err, &le) || !errors.Is(err, ErrNotFound) || !le.NotFound() || le.Timeout() {
			t.Fatalf("lookup %d: err = %v, want not found", i, err)
		}
		clock.Advance(29 * time.Second)
	}
	if n := qc.get("udp A"); n != 1 {
		t.Errorf("A queries within the SOA minimum = %d, want 1", n)
	}
	clock.Advance(3 * time.Second) // 87 s: expired
	z.set("missing.example", "10.0.0.9")
	if got := lookup(t, r, "missing.example."); got != "10.0.0.9" {
		t.Errorf("lookup after the negative TTL = %q", got)
	}
	if n := qc.get("udp A"); n != 2 {
		t.Errorf("A queries = %d, want 2", n)
	}
}

func TestResolverNegativeAnswerWithoutSOANotCached(t *testing.T) {
	var qc queryCounter
	srv := startDNS(t, &qc, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		w.WriteMsg(m.SetRcode(r, dns.RcodeNameError))
	})
	r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv}})
	for range 2 {
		if _, err := r.LookupAddr(context.Background(), "missing.example."); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	}
	if n := qc.get("udp A"); n != 2 {
		t.Errorf("A queries = %d, want 2: an answer without SOA is not cached (RFC 2308 section 5)", n)
	}
}

func TestResolverCollapsesConcurrentLookups(t *testing.T) {
	const n = 1000
	var qc queryCounter
	z := newZone(60)
	z.set("app.example", "10.0.0.1", "fd00::1")
	release := make(chan struct{})
	srv := startDNS(t, &qc, func(w dns.ResponseWriter, r *dns.Msg) {
		<-release // answer once every lookup waits on the query
		z.handler(w, r)
	})
	before := runtime.NumGoroutine()
	r, err := NewResolver(ResolverConfig{Servers: []string{srv}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var joined atomic.Int64
	r.joined = func() {
		if joined.Add(1) == n {
			close(release)
		}
	}
	var wg sync.WaitGroup
	results := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			as, err := r.LookupAddr(context.Background(), "app.example.")
			results[i], errs[i] = addrStrings(as), err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || results[i] != "10.0.0.1 fd00::1" {
			t.Fatalf("lookup %d = %q, %v", i, results[i], errs[i])
		}
	}
	if a, aaaa := qc.get("udp A"), qc.get("udp AAAA"); a != 1 || aaaa != 1 {
		t.Errorf("%d concurrent lookups sent %d A and %d AAAA queries, want 1 and 1", n, a, aaaa)
	}
	r.Close()
	checkGoroutines(t, before)
}

func TestResolverHostsFileEditsPickedUp(t *testing.T) {
	var qc queryCounter
	srv := startDNS(t, &qc, newZone(60).handler)
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n10.0.0.1 app.cluster\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	var logs syncBuffer
	r := newTestResolver(t, clock, ResolverConfig{HostsFile: path, Servers: []string{srv}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if got := lookup(t, r, "APP.cluster"); got != "10.0.0.1" {
		t.Fatalf("lookup = %q", got)
	}

	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Set("app.cluster", netip.MustParseAddr("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("new.cluster", netip.MustParseAddr("10.0.0.3")); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	clock.Advance(999 * time.Millisecond)
	if got := lookup(t, r, "app.cluster"); got != "10.0.0.1" {
		t.Errorf("lookup within a second of the last check = %q, want 10.0.0.1", got)
	}
	if n := r.hostsLoads.Load(); n != 1 {
		t.Errorf("hosts file parsed %d times within a second, want 1", n)
	}
	clock.Advance(time.Millisecond)
	if got := lookup(t, r, "app.cluster"); got != "10.0.0.2" {
		t.Errorf("lookup after the edit = %q, want 10.0.0.2", got)
	}
	if got := lookup(t, r, "new.cluster"); got != "10.0.0.3" {
		t.Errorf("lookup of the added name = %q, want 10.0.0.3", got)
	}
	clock.Advance(5 * time.Second) // a check that finds no change does not parse again
	lookup(t, r, "app.cluster")
	if n := r.hostsLoads.Load(); n != 2 {
		t.Errorf("hosts file parsed %d times, want 2", n)
	}
	if n := qc.total(); n != 0 {
		t.Errorf("%d DNS queries for names in the hosts file, want 0", n)
	}

	// A removed name falls through to DNS.
	f.Remove("new.cluster")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if _, err := r.LookupAddr(context.Background(), "new.cluster."); !errors.Is(err, ErrNotFound) {
		t.Errorf("lookup of a removed name: err = %v, want ErrNotFound", err)
	}

	// A file that cannot be read any more leaves the last good copy in
	// use, and a warning for the operator.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if got := lookup(t, r, "app.cluster"); got != "10.0.0.2" {
		t.Errorf("lookup after the file disappeared = %q, want the last 10.0.0.2", got)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"hosts: cannot reload hosts file") {
		t.Errorf("no warning logged: %q", logs.String())
	}
}

// syncBuffer is a bytes.Buffer for a logger used from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestDefaultResolverConfig(t *testing.T) {
	c := DefaultResolverConfig()
	if c.HostsFile != "/etc/hosts" || c.ResolvConf != "/etc/resolv.conf" || c.HostsCheckInterval != time.Second ||
		c.MaxTTL != 5*time.Minute || c.MaxNegativeTTL != time.Minute || c.UDPSize != 1232 {
		t.Errorf("DefaultResolverConfig() = %+v", c)
	}
}

func TestResolverOrder(t *testing.T) {
	var qc queryCounter
	z := newZone(60)
	z.set("static.example", "10.9.9.1")
	z.set("file.example", "10.9.9.2")
	z.set("dns.example", "10.9.9.3")
	srv := startDNS(t, &qc, z.handler)
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("10.0.0.1 static.example\n10.0.0.2 file.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newTestResolver(t, newFakeClock(), ResolverConfig{
		Static:    map[string][]netip.Addr{"Static.Example.": {netip.MustParseAddr("10.0.0.100")}},
		HostsFile: path,
		Servers:   []string{srv},
	})
	for host, want := range map[string]string{
		"192.0.2.1":       "192.0.2.1",
		"fe80::1%eth0":    "fe80::1%eth0",
		"static.example":  "10.0.0.100",
		"file.example":    "10.0.0.2",
		"dns.example.":    "10.9.9.3",
		"DNS.Example.":    "10.9.9.3",
		"static.example.": "10.0.0.100",
	} {
		if got := lookup(t, r, host); got != want {
			t.Errorf("LookupAddr(%q) = %q, want %q", host, got, want)
		}
	}
	if n := qc.get("udp A"); n != 1 {
		t.Errorf("A queries = %d, want 1 (dns.example only)", n)
	}
}

func TestResolverSearchAndNdots(t *testing.T) {
	var qc queryCounter
	z := newZone(60)
	z.set("web.b.example", "10.0.0.1")
	z.set("x.y.z", "10.0.0.2")
	srv := startDNS(t, &qc, z.handler)
	r := newTestResolver(t, newFakeClock(), ResolverConfig{
		Servers: []string{srv}, Search: []string{"a.example", "B.example."}, Ndots: 2,
	})
	if got := lookup(t, r, "web"); got != "10.0.0.1" {
		t.Errorf("lookup(web) = %q", got)
	}
	if got := lookup(t, r, "x.y.z"); got != "10.0.0.2" {
		t.Errorf("lookup(x.y.z) = %q", got)
	}
	var a []string
	for _, q := range qc.queried() {
		if strings.HasPrefix(q, "A ") {
			a = append(a, q)
		}
	}
	want := []string{"A web.a.example.", "A web.b.example.", "A x.y.z."}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("A queries mismatch (-want +got):\n%s", diff)
	}
}

func TestResolverEDNS0(t *testing.T) {
	var size atomic.Int64
	z := newZone(60)
	z.set("app.example", "10.0.0.1")
	srv := startDNS(t, nil, func(w dns.ResponseWriter, r *dns.Msg) {
		if opt := r.IsEdns0(); opt != nil {
			size.Store(int64(opt.UDPSize()))
		}
		z.handler(w, r)
	})
	r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv}})
	lookup(t, r, "app.example.")
	if got := size.Load(); got != 1232 {
		t.Errorf("EDNS0 UDP size = %d, want 1232", got)
	}
}

func TestResolverFORMERRRetriedWithoutEDNS0(t *testing.T) {
	z := newZone(60)
	z.set("app.example", "10.0.0.1")
	srv := startDNS(t, nil, func(w dns.ResponseWriter, r *dns.Msg) {
		if r.IsEdns0() != nil {
			m := new(dns.Msg)
			w.WriteMsg(m.SetRcode(r, dns.RcodeFormatError))
			return
		}
		z.handler(w, r)
	})
	r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv}})
	if got := lookup(t, r, "app.example."); got != "10.0.0.1" {
		t.Errorf("lookup = %q", got)
	}
}

func TestResolverCNAME(t *testing.T) {
	srv := startDNS(t, nil, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		m.Answer = append(m.Answer,
			&dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "lb.example."},
			&dns.A{Hdr: dns.RR_Header{Name: "other.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{10, 6, 6, 6}},
		)
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "lb.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{10, 0, 0, 7}})
		}
		w.WriteMsg(m)
	})
	r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv}})
	if got := lookup(t, r, "www.example."); got != "10.0.0.7" {
		t.Errorf("lookup through a CNAME = %q, want 10.0.0.7", got)
	}
}

func TestResolverContextCanceled(t *testing.T) {
	release := make(chan struct{})
	z := newZone(60)
	z.set("slow.example", "10.0.0.1")
	srv := startDNS(t, nil, func(w dns.ResponseWriter, r *dns.Msg) {
		<-release
		z.handler(w, r)
	})
	r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv}, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	joined := make(chan struct{})
	r.joined = func() { close(joined) }
	errc := make(chan error, 1)
	go func() {
		_, err := r.LookupAddr(ctx, "slow.example.")
		errc <- err
	}()
	<-joined
	cancel()
	err := <-errc
	var le *LookupError
	if !errors.As(err, &le) || !errors.Is(err, context.Canceled) || le.Name != "slow.example." {
		t.Errorf("err = %v, want a *LookupError wrapping context.Canceled", err)
	}
	r.joined = nil
	close(release)
	// The query went on and filled the cache.
	if got := lookup(t, r, "slow.example."); got != "10.0.0.1" {
		t.Errorf("lookup after the canceled one = %q", got)
	}

	if _, err := r.LookupAddr(ctx, "other.example."); !errors.Is(err, context.Canceled) {
		t.Errorf("lookup with a canceled context: err = %v", err)
	}
}

func TestResolverCloseStopsQueries(t *testing.T) {
	srv := startDNS(t, nil, func(dns.ResponseWriter, *dns.Msg) {}) // never answers
	before := runtime.NumGoroutine()
	r, err := NewResolver(ResolverConfig{Servers: []string{srv}, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	joined := make(chan struct{})
	r.joined = func() { close(joined) }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := r.LookupAddr(ctx, "app.example.")
		errc <- err
	}()
	<-joined
	cancel()
	<-errc
	// The query is still in flight, waiting on an hour-long timeout;
	// Close cancels it and waits for it.
	closed := make(chan struct{})
	go func() {
		r.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not stop the query in flight")
	}
	checkGoroutines(t, before)
	r.joined = nil
	if _, err := r.LookupAddr(context.Background(), "app.example."); !errors.Is(err, ErrClosed) {
		t.Errorf("lookup after Close: err = %v, want ErrClosed", err)
	}
}

func TestResolverInvalidNames(t *testing.T) {
	var qc queryCounter
	srv := startDNS(t, &qc, newZone(60).handler)
	r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv}})
	for _, host := range []string{"", ".", "a..b", strings.Repeat("a", 64) + ".example"} {
		if _, err := r.LookupAddr(context.Background(), host); !errors.Is(err, ErrInvalidName) {
			t.Errorf("LookupAddr(%q): err = %v, want ErrInvalidName", host, err)
		}
	}
	if qc.total() != 0 {
		t.Errorf("invalid names sent %d queries", qc.total())
	}
}

func TestResolverZeroConfigReadsNothing(t *testing.T) {
	r := newTestResolver(t, nil, ResolverConfig{})
	if _, err := r.LookupAddr(context.Background(), "localhost"); !errors.Is(err, ErrNotFound) {
		t.Errorf("zero config lookup(localhost): err = %v, want ErrNotFound", err)
	}
	if got := lookup(t, r, "::1"); got != "::1" {
		t.Errorf("literal = %q", got)
	}
}

func TestNewResolverReadsResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "# comment\nnameserver 127.0.0.1\nnameserver ::1\nsearch Corp.Example svc.example\noptions ndots:3 timeout:1 attempts:4\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newTestResolver(t, nil, ResolverConfig{ResolvConf: path})
	c := r.conf.Load()
	got := []any{c.servers, c.search, c.ndots, c.timeout, c.attempts}
	want := []any{[]string{"127.0.0.1:53", "[::1]:53"}, []string{"corp.example.", "svc.example."}, 3, time.Second, 4}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolv.conf settings mismatch (-want +got):\n%s", diff)
	}
	// Explicit settings win.
	r2 := newTestResolver(t, nil, ResolverConfig{ResolvConf: path, Servers: []string{"127.0.0.2"}, Ndots: 1})
	if c2 := r2.conf.Load(); c2.servers[0] != "127.0.0.2:53" || c2.ndots != 1 {
		t.Errorf("explicit settings lost: %v %d", c2.servers, c2.ndots)
	}
	for _, cfg := range []ResolverConfig{
		{ResolvConf: filepath.Join(t.TempDir(), "missing")},
		{HostsFile: filepath.Join(t.TempDir(), "missing")},
		{Servers: []string{"[::1"}},
		{Search: []string{"a..b"}},
		{Static: map[string][]netip.Addr{"a": nil}},
	} {
		if _, err := NewResolver(cfg); err == nil {
			t.Errorf("NewResolver(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestLookupError(t *testing.T) {
	e := &LookupError{Name: "app.example", Server: "127.0.0.1:53", Err: ErrNotFound}
	if got := e.Error(); got != "hosts: lookup app.example on 127.0.0.1:53: no such host" {
		t.Errorf("Error() = %q", got)
	}
	if errors.Is(e, ErrTimeout) || !errors.Is(e, ErrNotFound) {
		t.Error("errors.Is mismatch for a not-found error")
	}
	d := &LookupError{Name: "x", Err: context.DeadlineExceeded}
	if !errors.Is(d, ErrTimeout) || !d.Timeout() || !errors.Is(d, context.DeadlineExceeded) {
		t.Error("a deadline is a timeout")
	}
}

func TestScanHost(t *testing.T) {
	tests := []struct {
		in             string
		upper, maybeIP bool
	}{
		{"", false, false},
		{"app.example.", false, false},
		{"App.Example", true, false},
		{"10.0.0.1", false, true},
		{"123", false, true},
		{"::1", false, true},
		{"FE80::1%eth0", true, true},
		{"1.2.3.4.nip.io", false, false},
		{"ZZ", true, false},
		{"host-1_x", false, false},
	}
	for _, tc := range tests {
		if upper, maybeIP := scanHost(tc.in); upper != tc.upper || maybeIP != tc.maybeIP {
			t.Errorf("scanHost(%q) = %v, %v; want %v, %v", tc.in, upper, maybeIP, tc.upper, tc.maybeIP)
		}
	}
}

// TestResolverHostsFileWinsOverCache adds to the hosts file a name whose DNS
// answer is cached: the hosts file answers as soon as it is re-read.
func TestResolverHostsFileWinsOverCache(t *testing.T) {
	var qc queryCounter
	z := newZone(3600)
	z.set("app.example", "10.9.9.9")
	srv := startDNS(t, &qc, z.handler)
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	r := newTestResolver(t, clock, ResolverConfig{HostsFile: path, Servers: []string{srv}})
	if got := lookup(t, r, "app.example"); got != "10.9.9.9" {
		t.Fatalf("lookup = %q", got)
	}
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n10.0.0.1 app.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	for range 2 {
		if got := lookup(t, r, "app.example"); got != "10.0.0.1" {
			t.Errorf("lookup after the hosts file gained the name = %q, want 10.0.0.1", got)
		}
	}
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if got := lookup(t, r, "app.example"); got != "10.9.9.9" {
		t.Errorf("lookup after the hosts file lost the name = %q, want the cached 10.9.9.9", got)
	}
	if n := qc.get("udp A"); n != 1 {
		t.Errorf("A queries = %d, want 1", n)
	}
}

// TestResolverResolvConfEditsPickedUp: a changed resolv.conf applies to the
// lookups after the next check; one that cannot be read or holds an invalid
// search domain is logged and the previous settings kept.
func TestResolverResolvConfEditsPickedUp(t *testing.T) {
	var qc queryCounter
	z := newZone(60)
	z.set("app.a.example", "10.0.0.1")
	z.set("app.bb.example", "10.0.0.2")
	srv := startDNS(t, &qc, z.handler)
	path := filepath.Join(t.TempDir(), "resolv.conf")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("search a.example\n")
	clock := newFakeClock()
	var logs syncBuffer
	r := newTestResolver(t, clock, ResolverConfig{ResolvConf: path, Servers: []string{srv}, MaxTTL: -1,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if got := lookup(t, r, "app"); got != "10.0.0.1" {
		t.Fatalf("lookup with search a.example = %q", got)
	}
	write("search bb.example\n")
	clock.Advance(999 * time.Millisecond)
	if got := lookup(t, r, "app"); got != "10.0.0.1" {
		t.Errorf("lookup within a second of the last check = %q, want 10.0.0.1", got)
	}
	clock.Advance(time.Millisecond)
	if got := lookup(t, r, "app"); got != "10.0.0.2" {
		t.Errorf("lookup after the edit = %q, want 10.0.0.2 (search bb.example)", got)
	}

	write("search bad..example\n")
	clock.Advance(time.Second)
	if got := lookup(t, r, "app"); got != "10.0.0.2" {
		t.Errorf("lookup after an invalid edit = %q, want the previous settings' 10.0.0.2", got)
	}
	os.Remove(path)
	clock.Advance(time.Second)
	if got := lookup(t, r, "app"); got != "10.0.0.2" {
		t.Errorf("lookup after the file was removed = %q, want 10.0.0.2", got)
	}
	if n := strings.Count(logs.String(), "cannot reload resolv.conf"); n != 2 {
		t.Errorf("%d reload warnings, want 2; log:\n%s", n, logs.String())
	}
}

// TestResolverHugeTTL checks RFC 2181 section 8: a TTL with its most
// significant bit set counts as zero, so the answer is not cached and the
// next lookup asks the server again.
func TestResolverHugeTTL(t *testing.T) {
	tests := []struct {
		name string
		ttl  uint32
	}{
		{"2^31", 1 << 31},
		{"2^32-1", math.MaxUint32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var qc queryCounter
			z := newZone(tc.ttl)
			z.set("app.example", "10.0.0.1")
			srv := startDNS(t, &qc, z.handler)
			r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv}, MaxTTL: time.Hour})
			for i := range 2 {
				if got := lookup(t, r, "app.example."); got != "10.0.0.1" {
					t.Fatalf("lookup %d = %q", i, got)
				}
			}
			if n := qc.get("udp A"); n != 2 {
				t.Errorf("A queries = %d, want 2: an answer with TTL %d is not cached", n, tc.ttl)
			}
		})
		t.Run(tc.name+" in the SOA", func(t *testing.T) {
			var qc queryCounter
			srv := startDNS(t, &qc, func(w dns.ResponseWriter, r *dns.Msg) {
				m := new(dns.Msg)
				m.SetRcode(r, dns.RcodeNameError)
				s := soa()
				s.Hdr.Ttl = tc.ttl
				m.Ns = []dns.RR{s}
				w.WriteMsg(m)
			})
			r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv}, MaxNegativeTTL: time.Hour})
			for range 2 {
				if _, err := r.LookupAddr(context.Background(), "missing.example."); !errors.Is(err, ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
			}
			if n := qc.get("udp A"); n != 2 {
				t.Errorf("A queries = %d, want 2: a negative answer whose SOA TTL is %d is not cached", n, tc.ttl)
			}
		})
	}
}

// TestResolverAnswerCap checks that of 4,000 addresses, fetched over TCP
// after a truncated UDP answer, at most MaxAddrs are returned and cached.
func TestResolverAnswerCap(t *testing.T) {
	const total = 4000
	var qc queryCounter
	var addrs []string
	for i := range total {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 4, byte(i / 256), byte(i)}).String())
	}
	z := newZone(60)
	z.set("big.example", addrs...)
	srv := startDNS(t, &qc, func(w dns.ResponseWriter, r *dns.Msg) {
		m := z.reply(r)
		m.Compress = true // 4,000 A records fit in 64 KiB only compressed
		if !isTCP(w) {
			m.Truncate(dns.MinMsgSize)
		}
		w.WriteMsg(m)
	})
	tests := []struct {
		name string
		max  int
		want int
	}{
		{"default", 0, DefaultMaxAddrs},
		{"MaxAddrs 5", 5, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{srv}, MaxAddrs: tc.max})
			before := qc.get("tcp A")
			want := strings.Join(addrs[:tc.want], " ")
			for i := range 2 {
				if got := lookup(t, r, "big.example."); got != want {
					t.Errorf("lookup %d = %q, want the first %d addresses", i, got, tc.want)
				}
			}
			if n := qc.get("tcp A") - before; n != 1 {
				t.Errorf("TCP A queries = %d, want 1: the second lookup is answered by the cache", n)
			}
			e := r.cache.get("big.example.", r.ticks())
			if e == nil || len(e.addrs) != tc.want {
				t.Errorf("cache entry = %+v, want %d addresses", e, tc.want)
			}
		})
	}
}

func TestCapAddrs(t *testing.T) {
	tests := []struct {
		n4, n6, limit int
		k4, k6        int
	}{
		{3, 2, 32, 3, 2},
		{4000, 0, 32, 32, 0},
		{0, 4000, 32, 0, 32},
		{4000, 4000, 32, 16, 16},
		{5, 4000, 32, 5, 27},
		{4000, 5, 32, 27, 5},
		{20, 20, 32, 16, 16},
		{4000, 4000, 1, 1, 0},
	}
	for _, tc := range tests {
		k4, k6 := capAddrs(tc.n4, tc.n6, tc.limit)
		if k4 != tc.k4 || k6 != tc.k6 {
			t.Errorf("capAddrs(%d, %d, %d) = %d, %d; want %d, %d", tc.n4, tc.n6, tc.limit, k4, k6, tc.k4, tc.k6)
		}
	}
}

// TestResolverSearchPastRefused checks that, as with glibc's res_search, a
// candidate of the search list that the server refuses (or fails) does not
// end the lookup, and which error is left when no candidate has an
// address.
func TestResolverSearchPastRefused(t *testing.T) {
	for _, rcode := range []int{dns.RcodeRefused, dns.RcodeServerFailure} {
		t.Run(dns.RcodeToString[rcode], func(t *testing.T) {
			var qc queryCounter
			z := newZone(60)
			z.set("db.b.test", "10.0.0.5")
			srv := startDNS(t, &qc, func(w dns.ResponseWriter, r *dns.Msg) {
				if dns.IsSubDomain("other.zone.", dns.CanonicalName(r.Question[0].Name)) {
					m := new(dns.Msg)
					w.WriteMsg(m.SetRcode(r, rcode))
					return
				}
				z.handler(w, r)
			})
			r := newTestResolver(t, newFakeClock(), ResolverConfig{
				Servers: []string{srv}, Search: []string{"other.zone", "b.test"}, Attempts: 1, MaxNegativeTTL: time.Hour,
			})
			if got := lookup(t, r, "db"); got != "10.0.0.5" {
				t.Errorf("lookup(db) = %q, want 10.0.0.5 from the second search domain", got)
			}
			var a []string
			for _, q := range qc.queried() {
				if strings.HasPrefix(q, "A ") {
					a = append(a, q)
				}
			}
			if diff := cmp.Diff([]string{"A db.other.zone.", "A db.b.test."}, a); diff != "" {
				t.Errorf("A queries mismatch (-want +got):\n%s", diff)
			}

			// No candidate has an address: one was refused, the others
			// do not exist. The failure is returned, and not cached.
			before := qc.get("udp A")
			for range 2 {
				_, err := r.LookupAddr(context.Background(), "nohost")
				var le *LookupError
				if !errors.As(err, &le) || !errors.Is(err, ErrServerFailure) || errors.Is(err, ErrNotFound) || le.Name != "nohost" {
					t.Fatalf("err = %v, want a *LookupError for nohost wrapping ErrServerFailure", err)
				}
			}
			if n := qc.get("udp A") - before; n != 6 {
				t.Errorf("A queries = %d, want 6: three candidates, twice, nothing cached", n)
			}
		})
	}
}

// TestResolverServerUnreachable checks that a closed port makes an error
// callers can test for with ErrUnreachable, over UDP and over TCP after a
// truncated answer.
func TestResolverServerUnreachable(t *testing.T) {
	t.Run("UDP port closed", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		pc.Close()
		r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{addr}, Timeout: 5 * time.Second})
		start := time.Now()
		_, err = r.LookupAddr(context.Background(), "app.example.")
		var le *LookupError
		if !errors.As(err, &le) || !errors.Is(err, ErrUnreachable) || le.Server != addr {
			t.Fatalf("err = %v, want a *LookupError from %s wrapping ErrUnreachable", err, addr)
		}
		if errors.Is(err, ErrTimeout) || errors.Is(err, ErrServerFailure) || errors.Is(err, ErrNotFound) || le.Timeout() {
			t.Errorf("err = %v also matches another kind", err)
		}
		if d := time.Since(start); d >= 5*time.Second {
			t.Errorf("took %v: the refusal was not noticed before the timeout", d)
		}
	})
	t.Run("TCP port closed after truncation", func(t *testing.T) {
		var qc queryCounter
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			qc.record(w, r)
			m := new(dns.Msg)
			m.SetReply(r)
			m.Truncated = true
			w.WriteMsg(m)
		})}
		started, done := make(chan struct{}), make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			defer close(done)
			srv.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
		addr := pc.LocalAddr().String()
		r := newTestResolver(t, newFakeClock(), ResolverConfig{Servers: []string{addr}, Attempts: 1})
		_, err = r.LookupAddr(context.Background(), "app.example.")
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("err = %v, want ErrUnreachable", err)
		}
		if n := qc.get("udp A"); n != 1 {
			t.Errorf("UDP A queries = %d, want 1", n)
		}
	})
}
