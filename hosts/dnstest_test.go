package hosts

import (
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeClock is the injected clock of the caches.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// queryCounter counts the queries a test DNS server receives, per type and
// transport.
type queryCounter struct {
	mu     sync.Mutex
	counts map[string]int // "udp A", "tcp AAAA", ...
	names  []string       // "A web.example." in arrival order
}

func (c *queryCounter) record(w dns.ResponseWriter, r *dns.Msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = make(map[string]int)
	}
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	if len(r.Question) == 1 {
		q := r.Question[0]
		c.counts[proto+" "+dns.TypeToString[q.Qtype]]++
		c.names = append(c.names, dns.TypeToString[q.Qtype]+" "+q.Name)
	}
}

func (c *queryCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

func (c *queryCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.counts {
		n += v
	}
	return n
}

func (c *queryCounter) queried() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names...)
}

// startDNS runs a miekg/dns server on 127.0.0.1, over UDP and TCP on the same
// port, until the test ends, and returns its address. Every query is counted
// in c before h sees it.
func startDNS(t testing.TB, c *queryCounter, h dns.HandlerFunc) string {
	t.Helper()
	var pc net.PacketConn
	var l net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if c != nil {
			c.record(w, r)
		}
		h(w, r)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: l, Handler: handler}} {
		started := make(chan struct{})
		done := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			defer close(done)
			srv.ActivateAndServe()
		}()
		select {
		case <-started:
		case <-done:
			t.Fatal("test DNS server did not start")
		}
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return pc.LocalAddr().String()
}

// zone is a tiny authoritative data set for test handlers.
type zone struct {
	mu      sync.Mutex
	records map[string][]dns.RR // by lower-case owner name
	ttl     uint32
}

func newZone(ttl uint32) *zone { return &zone{records: make(map[string][]dns.RR), ttl: ttl} }

func (z *zone) set(name string, addrs ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	name = dns.CanonicalName(name)
	var rrs []dns.RR
	for _, s := range addrs {
		a := netip.MustParseAddr(s)
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: z.ttl}
		if a.Is4() {
			hdr.Rrtype = dns.TypeA
			rrs = append(rrs, &dns.A{Hdr: hdr, A: a.AsSlice()})
		} else {
			hdr.Rrtype = dns.TypeAAAA
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	z.records[name] = rrs
}

// soa is the SOA of the test zone: TTL 300, MINIMUM 60.
func soa() *dns.SOA {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
		Ns:  "ns.example.", Mbox: "hostmaster.example.", Serial: 1, Minttl: 60,
	}
}

// reply answers r from the zone: the records of the asked type, NODATA or
// NXDOMAIN with the SOA.
func (z *zone) reply(r *dns.Msg) *dns.Msg {
	z.mu.Lock()
	defer z.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	rrs, ok := z.records[dns.CanonicalName(q.Name)]
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	if len(m.Answer) == 0 {
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = []dns.RR{soa()}
	}
	return m
}

func (z *zone) handler(w dns.ResponseWriter, r *dns.Msg) { w.WriteMsg(z.reply(r)) }

// isTCP reports whether w answers over TCP.
func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

// newTestResolver builds a Resolver on servers with a fake clock, and closes
// it when the test ends.
func newTestResolver(t testing.TB, clock *fakeClock, cfg ResolverConfig) *Resolver {
	t.Helper()
	if clock != nil {
		cfg.Clock = clock.Now
	}
	r, err := NewResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// addrStrings renders addresses for comparison.
func addrStrings(as []netip.Addr) string {
	var b strings.Builder
	for i, a := range as {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// checkGoroutines fails the test if more goroutines run than before. The
// goroutines being checked have been waited for, but a goroutine that has
// returned can still be counted for a moment while the runtime retires it
// (more so under the race detector and with several Ps), so the check looks
// again, yielding and then backing off, for up to five seconds before it
// fails: a leaked goroutine stays for ever, a retiring one does not.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	wait := 50 * time.Microsecond
	for {
		for range 100 {
			if runtime.NumGoroutine() <= before {
				return
			}
			runtime.Gosched()
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(wait) // back off: not synchronisation, a bounded re-check
		wait = min(2*wait, 10*time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Errorf("%d goroutines left running, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
}
