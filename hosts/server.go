package hosts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ServerConfig configures a [Server].
type ServerConfig struct {
	// Zone is the domain the Server is authoritative for, such as
	// "cluster.example.com". Required. Queries for names outside it and
	// outside its reverse zones (see ReverseZones) are REFUSED.
	Zone string
	// ReverseZones are address prefixes whose reverse zones (in-addr.arpa
	// for IPv4, ip6.arpa for IPv6) the Server answers for, in addition to
	// the ones it learns: the /24 of every IPv4 address and the /64 of every
	// IPv6 address it has published since it was created. In a reverse zone,
	// the name of an address that is not published gets NXDOMAIN with the
	// zone's SOA. The length of an IPv4 prefix must be a multiple of 8 and
	// that of an IPv6 prefix a multiple of 4, so that each is one zone
	// (RFC 2317 delegation is not supported). Nil means only the learned
	// zones.
	ReverseZones []netip.Prefix
	// TTL is the TTL of the A, AAAA and PTR records served. Zero means 30
	// seconds: short, because the records follow live cluster membership.
	TTL time.Duration
	// NegativeTTL is how long resolvers may cache a "no such name" answer
	// (the SOA MINIMUM, RFC 2308). Zero means TTL.
	NegativeTTL time.Duration
	// Logger receives a debug record per failed write. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Server is a small authoritative DNS responder for a record set changed at
// runtime with Set and Remove, such as the live members of a cluster or the
// healthy instances of a load balancer. It answers A, AAAA and PTR queries
// (and SOA at the apex of its zones) over UDP and TCP: NXDOMAIN for unknown
// names in its zones, with the SOA record that lets resolvers cache that
// (RFC 2308), and REFUSED outside them.
//
// Its zones are the forward zone of [ServerConfig.Zone] and the reverse
// zones of [ServerConfig.ReverseZones] and of the addresses it has
// published: the PTR query of an address that was published and has been
// removed gets NXDOMAIN, not REFUSED, which a forwarding resolver would turn
// into SERVFAIL. Other names, and reverse names outside those zones, get
// REFUSED.
//
// Zone transfers (AXFR, IXFR) are REFUSED, as a server whose zone allows no
// transfer answers: the records change with every Set, and a secondary
// holding a copy would answer from stale data. Other query types get an
// empty answer (NOERROR with the SOA) for a name that exists, except the
// obsolete MAILA and MAILB (NOTIMP) and the types that cannot be asked for,
// OPT, TSIG and TKEY (FORMERR).
//
// EDNS follows RFC 6891: to a query with an OPT record the Server answers
// with its own, of version 0, advertising a UDP payload size of 1232 bytes,
// whatever the client's; it answers BADVERS to an EDNS version above 0 and
// FORMERR to a query with more than one OPT record. A UDP answer is cut to
// the client's payload size (512 bytes without EDNS), and at most 1232 bytes,
// with the TC bit set when records were left out, so that the client asks
// again over TCP.
//
// Server implements [dns.Handler], so it can also be mounted on a
// [dns.ServeMux]. It is safe for concurrent use.
type Server struct {
	zone     string // canonical: lower case, fully qualified
	ttl      uint32
	negTTL   uint32
	log      *slog.Logger
	revZones []netip.Prefix // ServerConfig.ReverseZones, masked

	mu      sync.RWMutex            // protects the fields below
	names   map[string][]netip.Addr // canonical name to addresses, IPv4 first
	rev     map[netip.Addr][]string // address to canonical names
	learned map[netip.Prefix]bool   // the /24 or /64 of every address ever published
	serial  uint32
	closed  bool
	servers []*serving
}

// serving is one running dns.Server.
type serving struct {
	srv     *dns.Server
	started chan struct{} // closed when it serves
	done    chan struct{} // closed when ActivateAndServe returned
}

var _ dns.Handler = (*Server)(nil)

// serverUDPSize is the UDP payload size the Server advertises and the most
// it sends over UDP: the size that avoids IP fragmentation (DNS Flag Day
// 2020), as the Resolver offers.
const serverUDPSize = 1232

// ErrServerClosed is returned by [Server.Serve] and [Server.ServePacket]
// after [Server.Shutdown].
var ErrServerClosed = errors.New("hosts: server closed")

// NewServer returns a Server with no records.
func NewServer(cfg ServerConfig) (*Server, error) {
	zone := strings.TrimSpace(cfg.Zone)
	if zone == "" {
		return nil, errors.New("hosts: server: Zone is required")
	}
	if zone != "." {
		if err := checkName(zone); err != nil {
			return nil, fmt.Errorf("hosts: server zone: %w", err)
		}
	}
	if cfg.TTL < 0 || cfg.NegativeTTL < 0 {
		return nil, errors.New("hosts: server: negative TTL")
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	neg := cfg.NegativeTTL
	if neg == 0 {
		neg = ttl
	}
	var revZones []netip.Prefix
	for _, p := range cfg.ReverseZones {
		step := 4
		if p.Addr().Is4() {
			step = 8
		}
		if !p.IsValid() || p.Addr().Zone() != "" || p.Bits()%step != 0 {
			return nil, fmt.Errorf("hosts: server: reverse zone %s: want an IPv4 prefix of 0, 8, 16, 24 or 32 bits or an IPv6 prefix of a multiple of 4 bits", p)
		}
		revZones = append(revZones, p.Masked())
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		zone:     dns.CanonicalName(zone),
		ttl:      uint32(ttl / time.Second),
		negTTL:   uint32(neg / time.Second),
		log:      log,
		revZones: revZones,
		names:    make(map[string][]netip.Addr),
		rev:      make(map[netip.Addr][]string),
		learned:  make(map[netip.Prefix]bool),
		serial:   1,
	}, nil
}

// Set makes name, which must be inside the zone, answer with addrs (IPv4
// addresses for A queries, IPv6 for AAAA), replacing what it had. It returns
// an error wrapping [ErrInvalidName] for a name that is not an RFC 1123 host
// name, and an error for a name outside the zone or no addresses.
// IPv4-mapped IPv6 addresses are served as IPv4, and zones are dropped.
func (s *Server) Set(name string, addrs ...netip.Addr) error {
	if err := checkName(name); err != nil {
		return err
	}
	key := dns.CanonicalName(name)
	if !dns.IsSubDomain(s.zone, key) {
		return fmt.Errorf("hosts: server: %q is outside the zone %q", name, s.zone)
	}
	plain := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		plain[i] = a.Unmap().WithZone("")
	}
	want, err := dedupAddrs(name, plain)
	if err != nil {
		return err
	}
	slices.SortStableFunc(want, func(a, b netip.Addr) int {
		switch {
		case a.Is4() == b.Is4():
			return 0
		case a.Is4():
			return -1
		}
		return 1
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(s.names[key], want) {
		return nil
	}
	s.removeLocked(key)
	s.names[key] = want
	for _, a := range want {
		s.rev[a] = append(s.rev[a], key)
		s.learned[learnedZone(a)] = true
	}
	s.serial++
	return nil
}

// learnedZone returns the reverse zone the Server serves from the time it
// publishes a: its /24 or /64. It is kept after a is removed, so that the
// removed address gets NXDOMAIN rather than REFUSED.
func learnedZone(a netip.Addr) netip.Prefix {
	bits := 64
	if a.Is4() {
		bits = 24
	}
	return netip.PrefixFrom(a, bits).Masked()
}

// Remove deletes name and its addresses. It reports whether name existed.
func (s *Server) Remove(name string) bool {
	key := dns.CanonicalName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.names[key]; !ok {
		return false
	}
	s.removeLocked(key)
	s.serial++
	return true
}

func (s *Server) removeLocked(key string) {
	for _, a := range s.names[key] {
		names := slices.DeleteFunc(slices.Clone(s.rev[a]), func(n string) bool { return n == key })
		if len(names) == 0 {
			delete(s.rev, a)
		} else {
			s.rev[a] = names
		}
	}
	delete(s.names, key)
}

// Lookup returns the addresses name has, or nil. The caller must not modify
// the slice.
func (s *Server) Lookup(name string) []netip.Addr {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.names[dns.CanonicalName(name)]
}

// ServePacket answers DNS queries arriving on pc, typically a UDP socket,
// until Shutdown. It always returns an error: ErrServerClosed after
// Shutdown. Shutdown closes pc.
func (s *Server) ServePacket(pc net.PacketConn) error {
	return s.serve(&dns.Server{PacketConn: pc})
}

// Serve answers DNS queries over the stream connections accepted from l,
// typically a TCP listener, until Shutdown. It always returns an error:
// ErrServerClosed after Shutdown. Shutdown closes l.
func (s *Server) Serve(l net.Listener) error {
	return s.serve(&dns.Server{Listener: l})
}

func (s *Server) serve(srv *dns.Server) error {
	sv := &serving{srv: srv, started: make(chan struct{}), done: make(chan struct{})}
	srv.Handler = s
	srv.NotifyStartedFunc = func() { close(sv.started) }
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.servers = append(s.servers, sv)
	s.mu.Unlock()

	err := srv.ActivateAndServe()
	close(sv.done)
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrServerClosed
	}
	if err == nil {
		err = errors.New("hosts: server stopped")
	}
	return fmt.Errorf("hosts: serve: %w", err)
}

// Shutdown stops every Serve and ServePacket, closes their listeners and
// connections, and waits for the queries being answered, or for ctx to be
// done, whose error it then returns. Once ctx is done, the servers left are
// still told to stop, without waiting.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, sv := range servers {
		select {
		case <-sv.started:
		case <-sv.done:
			continue
		case <-ctx.Done():
			// Not started yet: closing its socket makes it return as
			// soon as it starts.
			if sv.srv.PacketConn != nil {
				sv.srv.PacketConn.Close()
			}
			if sv.srv.Listener != nil {
				sv.srv.Listener.Close()
			}
			continue
		}
		if err := sv.srv.ShutdownContext(ctx); err != nil && !errors.Is(err, ctx.Err()) {
			errs = append(errs, err)
		}
		select {
		case <-sv.done:
		case <-ctx.Done():
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// ServeDNS answers one query. It implements [dns.Handler].
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	if err := w.WriteMsg(s.reply(req, udp)); err != nil {
		s.log.Debug("hosts: server: write failed", "client", w.RemoteAddr().String(), "err", err)
	}
}

// reply builds the whole reply to req, EDNS (RFC 6891) and truncation
// included; udp says whether it goes over UDP.
func (s *Server) reply(req *dns.Msg, udp bool) *dns.Msg {
	var opt *dns.OPT
	opts := 0
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opts == 0 {
				opt = o
			}
			opts++
		}
	}
	resp := new(dns.Msg)
	switch {
	case opts > 1:
		// RFC 6891 section 6.1.1: more than one OPT is a format error.
		return resp.SetRcode(req, dns.RcodeFormatError)
	case opt != nil && opt.Version() != 0:
		// RFC 6891 section 6.1.3: BADVERS, with an OPT of the highest
		// version the Server implements.
		resp.SetReply(req)
		resp.SetEdns0(serverUDPSize, false)
		resp.Rcode = dns.RcodeBadVers
		return resp
	}
	resp = s.answer(req)
	size := dns.MaxMsgSize
	if udp {
		size = dns.MinMsgSize
	}
	if opt != nil {
		// The Server's own size, not the client's (RFC 6891 section
		// 6.2.5); the answer fits both.
		resp.SetEdns0(serverUDPSize, false)
		if udp {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), serverUDPSize)
		}
	}
	resp.Truncate(size)
	return resp
}

// answer builds the reply to req, without EDNS.
func (s *Server) answer(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		return resp.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return resp.SetRcode(req, dns.RcodeFormatError)
	}
	resp.SetReply(req)
	resp.RecursionAvailable = false
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return resp.SetRcode(req, dns.RcodeRefused)
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return resp.SetRcode(req, dns.RcodeRefused)
	case dns.TypeMAILA, dns.TypeMAILB:
		return resp.SetRcode(req, dns.RcodeNotImplemented)
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return resp.SetRcode(req, dns.RcodeFormatError)
	}
	key := dns.CanonicalName(q.Name)

	s.mu.RLock()
	defer s.mu.RUnlock()
	if p, below, ok := parseReverseName(key); ok {
		if z, ok := s.reverseZoneLocked(p); ok {
			return s.answerReverse(resp, q, p, below, z)
		}
	}
	if !dns.IsSubDomain(s.zone, key) {
		return resp.SetRcode(req, dns.RcodeRefused)
	}
	resp.Authoritative = true
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: s.ttl}
	}
	addrs, exists := s.names[key]
	if key == s.zone {
		exists = true
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, s.soa(s.zone))
		}
	}
	for _, a := range addrs {
		switch {
		case a.Is4() && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
			resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
		case a.Is6() && (q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY):
			resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	if len(resp.Answer) > 0 {
		return resp
	}
	if !exists && !s.hasChildLocked(key) {
		// An empty non-terminal exists (RFC 8020); anything else does not.
		resp.Rcode = dns.RcodeNameError
	}
	resp.Ns = append(resp.Ns, s.soa(s.zone))
	return resp
}

// hasChildLocked reports whether some name lies below key.
func (s *Server) hasChildLocked(key string) bool {
	for n := range s.names {
		if n != key && dns.IsSubDomain(key, n) {
			return true
		}
	}
	return false
}

// reverseZoneLocked returns the most specific reverse zone the Server
// serves that holds the reverse name of p.
func (s *Server) reverseZoneLocked(p netip.Prefix) (netip.Prefix, bool) {
	var zone netip.Prefix
	found := false
	if l := learnedZone(p.Addr()); p.Bits() >= l.Bits() && s.learned[l] {
		zone, found = l, true
	}
	for _, z := range s.revZones {
		if z.Addr().Is4() == p.Addr().Is4() && p.Bits() >= z.Bits() && z.Contains(p.Addr()) &&
			(!found || z.Bits() > zone.Bits()) {
			zone, found = z, true
		}
	}
	return zone, found
}

// answerReverse answers q, for the reverse name of p in the reverse zone z,
// or for a name below it when below is set. It gives the PTR records of a
// published address, and otherwise NOERROR without records for a name that
// exists (the zone apex, a prefix holding published addresses: RFC 8020) or
// NXDOMAIN, with z's SOA.
func (s *Server) answerReverse(resp *dns.Msg, q dns.Question, p netip.Prefix, below bool, z netip.Prefix) *dns.Msg {
	resp.Authoritative = true
	apex := reverseName(z)
	exists := false
	switch {
	case below:
		// A label under a full address, or one that is no nibble or
		// octet: no such name.
	case p.IsSingleIP():
		names := s.rev[p.Addr()]
		exists = len(names) > 0
		if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
			for _, n := range names {
				resp.Answer = append(resp.Answer, &dns.PTR{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: s.ttl},
					Ptr: n,
				})
			}
		}
	case p == z:
		exists = true
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, s.soa(apex))
		}
	default:
		for a := range s.rev {
			if p.Contains(a) {
				exists = true
				break
			}
		}
	}
	if len(resp.Answer) > 0 {
		return resp
	}
	if !exists {
		resp.Rcode = dns.RcodeNameError
	}
	resp.Ns = append(resp.Ns, s.soa(apex))
	return resp
}

// soa returns the SOA record of the zone whose apex is owner, the forward
// zone or a reverse one. Its MINIMUM is the negative TTL.
func (s *Server) soa(owner string) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: owner, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.negTTL},
		Ns:      dns.Fqdn("ns." + strings.TrimSuffix(s.zone, ".")),
		Mbox:    dns.Fqdn("hostmaster." + strings.TrimSuffix(s.zone, ".")),
		Serial:  s.serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  s.negTTL,
	}
}

// reverseName returns the in-addr.arpa or ip6.arpa name of p, whose length
// is a multiple of 8 (IPv4) or 4 (IPv6).
func reverseName(p netip.Prefix) string {
	var b strings.Builder
	a := p.Addr().AsSlice()
	if p.Addr().Is4() {
		for i := p.Bits()/8 - 1; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(a[i])))
			b.WriteByte('.')
		}
		b.WriteString("in-addr.arpa.")
		return b.String()
	}
	const hex = "0123456789abcdef"
	for i := p.Bits()/4 - 1; i >= 0; i-- {
		v := a[i/2]
		if i%2 == 0 {
			v >>= 4
		}
		b.WriteByte(hex[v&0xf])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa.")
	return b.String()
}

// parseReverseName reads a canonical name under in-addr.arpa or ip6.arpa as
// the prefix it names: "10.in-addr.arpa." is 10.0.0.0/8, a full name is a
// single address. Labels in front of the longest part that reads as a
// prefix are reported by below: such a name lies under the prefix's name.
// ok is false for names outside in-addr.arpa and ip6.arpa.
func parseReverseName(name string) (p netip.Prefix, below, ok bool) {
	var rest string
	v4 := false
	switch {
	case name == "in-addr.arpa.":
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), false, true
	case name == "ip6.arpa.":
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0), false, true
	case strings.HasSuffix(name, ".in-addr.arpa."):
		rest, v4 = strings.TrimSuffix(name, ".in-addr.arpa."), true
	case strings.HasSuffix(name, ".ip6.arpa."):
		rest = strings.TrimSuffix(name, ".ip6.arpa.")
	default:
		return netip.Prefix{}, false, false
	}
	labels := strings.Split(rest, ".")
	var b [16]byte
	n := 0 // labels read, from the right
	for i := len(labels) - 1; i >= 0; i-- {
		l := labels[i]
		if v4 {
			v, err := strconv.ParseUint(l, 10, 8)
			if n == 4 || err != nil || len(l) > 1 && l[0] == '0' {
				break
			}
			b[n] = byte(v)
		} else {
			if n == 32 || len(l) != 1 || !isHexDigit(l[0]) {
				break
			}
			v := hexValue(l[0])
			if n%2 == 0 {
				b[n/2] |= v << 4
			} else {
				b[n/2] |= v
			}
		}
		n++
	}
	below = n < len(labels)
	if v4 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), 8*n), below, true
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 4*n), below, true
}

func isHexDigit(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

func hexValue(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}
