package hosts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
)

// answer is what DNS said about one name, both address types together.
type answer struct {
	addrs  []netip.Addr  // IPv4 first, then IPv6
	ttl    time.Duration // the least TTL of the records used
	negTTL time.Duration // for no address: how long to cache that (RFC 2308), or -1 when not cacheable
}

// lookupName asks the servers for the A and AAAA records of the fully
// qualified name, in parallel. It fails only when neither query got an
// answer; one type failing while the other has addresses still succeeds.
// It keeps at most r.maxAddrs addresses, see capAddrs.
func (r *Resolver) lookupName(ctx context.Context, c *dnsConf, name string) (answer, *LookupError) {
	var res [2]typeAnswer
	var g errgroup.Group
	for i, qt := range [2]uint16{dns.TypeA, dns.TypeAAAA} {
		g.Go(func() error {
			res[i] = r.exchange(ctx, c, name, qt)
			return nil
		})
	}
	g.Wait()

	var ans answer
	ans.ttl = time.Duration(math.MaxInt64)
	ans.negTTL = -1
	n4, n6 := capAddrs(len(res[0].addrs), len(res[1].addrs), r.maxAddrs)
	for i, t := range res {
		if len(t.addrs) > 0 {
			ans.addrs = append(ans.addrs, t.addrs[:[2]int{n4, n6}[i]]...)
			ans.ttl = min(ans.ttl, t.ttl)
		}
	}
	if len(ans.addrs) > 0 {
		return ans, nil
	}
	for _, t := range res {
		if t.err != nil {
			return answer{}, t.err
		}
	}
	ans.negTTL = min(res[0].negTTL, res[1].negTTL)
	if res[0].negTTL < 0 || res[1].negTTL < 0 {
		ans.negTTL = -1
	}
	return ans, nil
}

// capAddrs returns how many of n4 IPv4 and n6 IPv6 addresses to keep so
// that at most limit remain: all of both when they fit, otherwise each kind
// gets half of limit, and a kind with fewer leaves the rest to the other.
func capAddrs(n4, n6, limit int) (int, int) {
	if n4+n6 <= limit {
		return n4, n6
	}
	k4 := min(n4, limit-min(n6, limit/2))
	return k4, min(n6, limit-k4)
}

// typeAnswer is the outcome of one query type.
type typeAnswer struct {
	addrs  []netip.Addr
	ttl    time.Duration
	negTTL time.Duration
	err    *LookupError
}

// exchange asks the servers in order, Attempts rounds, for the records of
// type qt of name, until one answers with NOERROR or NXDOMAIN.
func (r *Resolver) exchange(ctx context.Context, c *dnsConf, name string, qt uint16) typeAnswer {
	m := new(dns.Msg)
	m.SetQuestion(name, qt)
	m.SetEdns0(r.udpSize, false)
	var last error
	server := ""
	for range c.attempts {
		for _, s := range c.servers {
			server = s
			resp, err := r.exchangeServer(ctx, c, m, s)
			if ctx.Err() != nil {
				return typeAnswer{err: &LookupError{Server: s, Err: ctx.Err()}}
			}
			if err != nil {
				last = err
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				addrs, ttl := extractAddrs(resp, name, qt, r.maxAddrs)
				return typeAnswer{addrs: addrs, ttl: ttl, negTTL: negativeTTL(resp)}
			default:
				last = fmt.Errorf("%w: %s answered %s", ErrServerFailure, s, dns.RcodeToString[resp.Rcode])
			}
		}
	}
	var ne net.Error
	switch {
	case errors.As(last, &ne) && ne.Timeout():
		last = fmt.Errorf("%w: %w", ErrTimeout, last)
	case isUnreachable(last):
		last = fmt.Errorf("%w: %w", ErrUnreachable, last)
	}
	return typeAnswer{err: &LookupError{Server: server, Err: last}}
}

// exchangeServer sends m to one server over UDP and, when the answer is
// truncated, again over TCP (RFC 7766 section 5). A server that does not
// understand EDNS0 (FORMERR) is asked again without it (RFC 6891 section 7).
func (r *Resolver) exchangeServer(ctx context.Context, c *dnsConf, m *dns.Msg, server string) (*dns.Msg, error) {
	resp, err := r.roundTrip(ctx, c.timeout, c.udp, m, server)
	if err == nil && resp.Rcode == dns.RcodeFormatError && m.IsEdns0() != nil {
		plain := m.Copy()
		plain.Extra = nil
		m = plain
		resp, err = r.roundTrip(ctx, c.timeout, c.udp, m, server)
	}
	if err == nil && resp.Truncated {
		resp, err = r.roundTrip(ctx, c.timeout, c.tcp, m, server)
	}
	return resp, err
}

// aLongTimeAgo is a deadline in the past, to unblock reads.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip sends m to server with c's network and reads the reply, within
// timeout, returning early when ctx is done.
func (r *Resolver) roundTrip(ctx context.Context, timeout time.Duration, c *dns.Client, m *dns.Msg, server string) (*dns.Msg, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	co, err := c.DialContext(dctx, server)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	deadline, _ := dctx.Deadline()
	co.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { co.SetDeadline(aLongTimeAgo) })
	defer stop()
	if c.Net == "udp" {
		co.UDPSize = r.udpSize
	}
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	for {
		resp, err := co.ReadMsg()
		if err != nil {
			if resp != nil && resp.Truncated && resp.Id == m.Id {
				// A truncated answer may not unpack whole; the TC bit
				// is all that is needed to retry over TCP.
				return resp, nil
			}
			return nil, err
		}
		if resp.Id == m.Id && sameQuestion(resp, m) {
			return resp, nil
		}
		if c.Net != "udp" {
			return nil, dns.ErrId
		}
		// Over UDP, a reply to an earlier query (or a spoof) is skipped.
	}
}

func sameQuestion(a, b *dns.Msg) bool {
	if len(a.Question) != 1 || len(b.Question) != 1 {
		return len(a.Question) == 0 && a.Truncated // some servers drop the question from a truncated reply
	}
	qa, qb := a.Question[0], b.Question[0]
	return qa.Qtype == qb.Qtype && qa.Qclass == qb.Qclass && strings.EqualFold(qa.Name, qb.Name)
}

// maxCNAMEs bounds the CNAME chain followed in an answer.
const maxCNAMEs = 8

// extractAddrs returns up to limit addresses of type qt (A or AAAA) that
// resp gives for name, following CNAME records in the answer section, and
// the least TTL of the records used, a TTL of 2^31 seconds or more counting
// as 0 (RFC 2181 section 8). Records for other names are ignored.
func extractAddrs(resp *dns.Msg, name string, qt uint16, limit int) ([]netip.Addr, time.Duration) {
	ttl := uint32(math.MaxInt32)
	target := name
	for range maxCNAMEs {
		next := ""
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, target) {
				next = c.Target
				ttl = min(ttl, rfc2181TTL(c.Hdr.Ttl))
				break
			}
		}
		if next == "" {
			break
		}
		target = next
	}
	var addrs []netip.Addr
	var attl uint32 = math.MaxInt32
	for _, rr := range resp.Answer {
		if len(addrs) >= limit {
			break
		}
		if !strings.EqualFold(rr.Header().Name, target) {
			continue
		}
		var a netip.Addr
		var ok bool
		switch v := rr.(type) {
		case *dns.A:
			if qt == dns.TypeA {
				a, ok = netip.AddrFromSlice(v.A.To4())
			}
		case *dns.AAAA:
			if qt == dns.TypeAAAA && len(v.AAAA) == net.IPv6len {
				a, ok = netip.AddrFromSlice(v.AAAA)
			}
		}
		if ok && a.IsValid() {
			if !containsAddr(addrs, a) {
				addrs = append(addrs, a)
			}
			attl = min(attl, rfc2181TTL(rr.Header().Ttl))
		}
	}
	if len(addrs) == 0 {
		return nil, 0
	}
	return addrs, time.Duration(min(ttl, attl)) * time.Second
}

// rfc2181TTL returns ttl, or 0 when its most significant bit is set:
// RFC 2181 section 8 makes TTLs 31-bit values and says to treat one with
// the top bit set as if it were zero.
func rfc2181TTL(ttl uint32) uint32 {
	if ttl > math.MaxInt32 {
		return 0
	}
	return ttl
}

func containsAddr(s []netip.Addr, a netip.Addr) bool {
	for _, b := range s {
		if a == b {
			return true
		}
	}
	return false
}

// negativeTTL returns how long a negative answer may be cached: the lesser
// of the TTL of the SOA record in the authority section and its MINIMUM
// field (RFC 2308 section 5), either being 0 when its most significant bit
// is set (RFC 2181 section 8), or -1 when there is no SOA, which RFC 2308
// says not to cache.
func negativeTTL(resp *dns.Msg) time.Duration {
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(rfc2181TTL(soa.Hdr.Ttl), rfc2181TTL(soa.Minttl))) * time.Second
		}
	}
	return -1
}
