package hosts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ServerConfig configures a [Server].
type ServerConfig struct {
	// Zone is the domain the Server is authoritative for, such as
	// "cluster.example.com". Required. Queries for names outside it are
	// REFUSED, except PTR queries for the addresses it publishes.
	Zone string
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
// (and SOA at the zone apex) over UDP and TCP: NXDOMAIN for unknown names in
// its zone, with the SOA record that lets resolvers cache that (RFC 2308),
// and REFUSED outside it.
//
// Server implements [dns.Handler], so it can also be mounted on a
// [dns.ServeMux]. It is safe for concurrent use.
type Server struct {
	zone   string // canonical: lower case, fully qualified
	ttl    uint32
	negTTL uint32
	log    *slog.Logger

	mu      sync.RWMutex            // protects the fields below
	names   map[string][]netip.Addr // canonical name to addresses, IPv4 first
	rev     map[netip.Addr][]string // address to canonical names
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
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		zone:   dns.CanonicalName(zone),
		ttl:    uint32(ttl / time.Second),
		negTTL: uint32(neg / time.Second),
		log:    log,
		names:  make(map[string][]netip.Addr),
		rev:    make(map[netip.Addr][]string),
		serial: 1,
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
	}
	s.serial++
	return nil
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
	resp := s.answer(req)
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), false)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("hosts: server: write failed", "client", w.RemoteAddr().String(), "err", err)
	}
}

// answer builds the reply to req.
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
	key := dns.CanonicalName(q.Name)

	s.mu.RLock()
	defer s.mu.RUnlock()
	if q.Qtype == dns.TypePTR && !dns.IsSubDomain(s.zone, key) {
		return s.answerPTR(req, resp, key)
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
			resp.Answer = append(resp.Answer, s.soa())
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
	resp.Ns = append(resp.Ns, s.soa())
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

// answerPTR answers a reverse query for an address the Server publishes;
// other reverse names are not its to answer.
func (s *Server) answerPTR(req, resp *dns.Msg, key string) *dns.Msg {
	a, ok := parseReverse(key)
	names := s.rev[a]
	if !ok || len(names) == 0 {
		return resp.SetRcode(req, dns.RcodeRefused)
	}
	resp.Authoritative = true
	for _, n := range names {
		resp.Answer = append(resp.Answer, &dns.PTR{
			Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: s.ttl},
			Ptr: n,
		})
	}
	return resp
}

// soa returns the zone's SOA record. Its MINIMUM is the negative TTL.
func (s *Server) soa() *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: s.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.negTTL},
		Ns:      dns.Fqdn("ns." + strings.TrimSuffix(s.zone, ".")),
		Mbox:    dns.Fqdn("hostmaster." + strings.TrimSuffix(s.zone, ".")),
		Serial:  s.serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  s.negTTL,
	}
}

// parseReverse turns an in-addr.arpa or ip6.arpa name into its address.
func parseReverse(name string) (netip.Addr, bool) {
	name = strings.TrimSuffix(name, ".")
	if v4, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(v4, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		slices.Reverse(parts)
		a, err := netip.ParseAddr(strings.Join(parts, "."))
		return a, err == nil && a.Is4()
	}
	if v6, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		nibbles := strings.Split(v6, ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nibbles {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			var v byte
			switch c := n[0]; {
			case '0' <= c && c <= '9':
				v = c - '0'
			case 'a' <= c && c <= 'f':
				v = c - 'a' + 10
			default:
				return netip.Addr{}, false
			}
			// nibbles[0] is the lowest nibble of the last byte.
			j := 31 - i
			if j%2 == 0 {
				b[j/2] |= v << 4
			} else {
				b[j/2] |= v
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
