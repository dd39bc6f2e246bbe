package hosts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// ResolverConfig configures a [Resolver]. The zero value resolves only IP
// literals and Static: it reads no file and asks no server. Use
// [DefaultResolverConfig] for the system's /etc/hosts and /etc/resolv.conf.
type ResolverConfig struct {
	// Static maps names to addresses that win over the hosts file and DNS.
	// Names compare case-insensitively, without a trailing dot.
	Static map[string][]netip.Addr

	// HostsFile is the path of a hosts(5) file consulted after Static.
	// "" means none. The file is re-read when it changes (its size,
	// modification time or inode), checked at most once per
	// HostsCheckInterval, on lookup: the Resolver runs no goroutine for it.
	HostsFile string
	// HostsCheckInterval is the least time between two checks of HostsFile,
	// and of ResolvConf. Zero means one second.
	HostsCheckInterval time.Duration

	// ResolvConf is the path of a resolv.conf(5) file that supplies
	// nameserver, search, ndots, timeout and attempts for the fields below
	// left at zero. "" means none. Like HostsFile, it is re-read when it
	// changes, checked at most once per HostsCheckInterval on lookup; a
	// changed file that cannot be read or holds an invalid server or search
	// domain is logged and the previous settings kept.
	ResolvConf string
	// Servers are the DNS servers, "host:port" or "host" (port 53), asked in
	// order: the next one on a timeout, a network error (such as a closed
	// port), SERVFAIL, REFUSED or NOTIMP. Empty means those of ResolvConf; with neither, names that
	// are not static or in the hosts file are not found.
	Servers []string
	// Search lists the domains appended to names with fewer than Ndots dots,
	// as resolv.conf's search option does. Empty means ResolvConf's. As
	// glibc's res_search, the next name of the list is tried after a name
	// that does not exist, has no address, or that every server failed to
	// answer (SERVFAIL, REFUSED, NOTIMP); a timeout or an unreachable server
	// ends the lookup.
	Search []string
	// Ndots is the number of dots from which a name is first tried as it
	// is. Zero means ResolvConf's ndots, or 1.
	Ndots int
	// Timeout bounds each query to each server. Zero means ResolvConf's
	// timeout, or 5 seconds.
	Timeout time.Duration
	// Attempts is how many times the whole server list is tried. Zero
	// means ResolvConf's attempts, or 2.
	Attempts int
	// UDPSize is the EDNS0 UDP payload size offered to servers. Zero means
	// 1232, the size that avoids IP fragmentation (DNS Flag Day 2020).
	UDPSize uint16

	// MaxTTL caps how long an answer is cached, whatever its TTL. Zero means
	// 5 minutes; a negative value disables the positive cache. A TTL with
	// its most significant bit set (2^31 seconds or more) counts as zero, as
	// RFC 2181 section 8 says: the answer is returned but not cached.
	MaxTTL time.Duration
	// MaxAddrs caps the number of addresses kept from one DNS answer, A and
	// AAAA records together; the others are dropped, neither returned nor
	// cached. When both kinds are more than half of MaxAddrs, each gets
	// half. Zero means DefaultMaxAddrs.
	MaxAddrs int
	// MaxNegativeTTL caps how long a "no such name" or "no address" answer
	// is cached; the TTL itself comes from the SOA record of the answer
	// (RFC 2308 section 5), and answers without one are not cached. Zero
	// means 1 minute; a negative value disables the negative cache.
	MaxNegativeTTL time.Duration

	// Logger receives debug records of hosts file reloads and warnings for
	// hosts file lines that do not parse. Nil means slog.Default().
	Logger *slog.Logger
	// Clock returns the current time for cache expiry and the hosts file
	// check interval. Nil means time.Now. Socket deadlines always use the
	// real clock.
	Clock func() time.Time
}

// DefaultMaxAddrs is the number of addresses a Resolver keeps from one DNS
// answer unless [ResolverConfig.MaxAddrs] says otherwise: more than any
// cluster's balancers or members under one name, little enough that a
// hostile or broken server cannot fill the cache with thousands of them.
const DefaultMaxAddrs = 32

// DefaultResolverConfig returns the configuration of a system resolver:
// /etc/hosts and /etc/resolv.conf, with the other fields at their defaults.
func DefaultResolverConfig() ResolverConfig {
	return ResolverConfig{
		HostsFile:          "/etc/hosts",       // as glibc's "hosts: files dns"
		HostsCheckInterval: time.Second,        // an edit is seen within a second
		ResolvConf:         "/etc/resolv.conf", // servers, search, ndots, timeout, attempts
		UDPSize:            1232,               // no IP fragmentation
		MaxTTL:             5 * time.Minute,    // a moved name is seen within 5 minutes
		MaxNegativeTTL:     time.Minute,        // a new name is seen within a minute
		MaxAddrs:           DefaultMaxAddrs,    // addresses kept per answer
	}
}

// Resolver resolves host names to addresses: IP literals as they are, then
// static entries, then a hosts file, then DNS, with a cache of positive and
// negative DNS answers. Concurrent lookups of one name share one query. It
// is safe for concurrent use.
//
// Its goroutines live only while DNS queries are in flight; Close stops them.
type Resolver struct {
	static     map[string][]netip.Addr
	hostsPath  string
	checkEvery time.Duration
	hosts      atomic.Pointer[hostsSnapshot]
	nextCheck  atomic.Int64 // ticks of the next hosts file check
	hostsLoads atomic.Int64 // hosts file parses, for tests
	hostsGen   uint64       // the gen of the last snapshot; only loadHosts uses it

	explicit   ResolverConfig // the DNS settings given, over those of resolvPath
	resolvPath string
	conf       atomic.Pointer[dnsConf]
	nextConf   atomic.Int64 // ticks of the next resolv.conf check
	udpSize    uint16
	maxTTL     time.Duration
	maxNeg     time.Duration
	maxAddrs   int

	// The clock: ticks returns nanoseconds since base. With the real
	// clock, whose reading costs as much as a cached lookup on some
	// systems, ticks reuses a reading for up to clockGrain while lookups
	// keep coming; the timer marks the reading stale.
	clock  func() time.Time // ResolverConfig.Clock, or nil for time.Now
	base   time.Time
	coarse atomic.Int64 // the last reading of the real clock
	fresh  atomic.Bool  // coarse is at most clockGrain old
	timer  *time.Timer  // clears fresh

	log   *slog.Logger
	cache *cache

	flights singleflight.Group
	ctx     context.Context // canceled by Close; parent of every query
	cancel  context.CancelFunc
	mu      sync.Mutex // protects closed and wg.Add
	closed  bool
	wg      sync.WaitGroup // in-flight queries

	// joined, when set, is called after a lookup joined a query in flight.
	joined func()
}

// dnsConf is an immutable set of DNS settings: the configuration's own over
// those of the resolv.conf file, then the defaults.
type dnsConf struct {
	servers  []string
	search   []string
	ndots    int
	timeout  time.Duration
	attempts int
	udp, tcp *dns.Client
	info     os.FileInfo // of the resolv.conf file read; nil: none
}

// hostsSnapshot is an immutable parse of the hosts file.
type hostsSnapshot struct {
	names map[string][]netip.Addr
	info  os.FileInfo
	gen   uint64 // increases with every parse
}

// NewResolver returns a Resolver for cfg. It reads cfg.ResolvConf and
// cfg.HostsFile, and fails if they cannot be read or a server address is
// invalid.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	r := &Resolver{
		static:     make(map[string][]netip.Addr, len(cfg.Static)),
		hostsPath:  cfg.HostsFile,
		checkEvery: cfg.HostsCheckInterval,
		explicit: ResolverConfig{Servers: cfg.Servers, Search: cfg.Search, Ndots: cfg.Ndots,
			Timeout: cfg.Timeout, Attempts: cfg.Attempts},
		resolvPath: cfg.ResolvConf,
		udpSize:    cfg.UDPSize,
		maxTTL:     cfg.MaxTTL,
		maxNeg:     cfg.MaxNegativeTTL,
		maxAddrs:   cfg.MaxAddrs,
		clock:      cfg.Clock,
		log:        cfg.Logger,
		cache:      newCache(),
	}
	for name, addrs := range cfg.Static {
		if len(addrs) == 0 {
			return nil, fmt.Errorf("hosts: static %q: no addresses", name)
		}
		for _, a := range addrs {
			if !a.IsValid() {
				return nil, fmt.Errorf("hosts: static %q: invalid address", name)
			}
		}
		k := foldName(name)
		r.static[k] = slices.Clip(append(r.static[k], addrs...))
	}
	if r.checkEvery <= 0 {
		r.checkEvery = time.Second
	}
	if r.udpSize < dns.MinMsgSize {
		r.udpSize = 1232
	}
	if r.maxTTL == 0 {
		r.maxTTL = 5 * time.Minute
	}
	if r.maxNeg == 0 {
		r.maxNeg = time.Minute
	}
	if cfg.MaxAddrs < 0 {
		return nil, fmt.Errorf("hosts: MaxAddrs %d is negative", cfg.MaxAddrs)
	}
	if r.maxAddrs == 0 {
		r.maxAddrs = DefaultMaxAddrs
	}
	if r.clock != nil {
		r.base = r.clock()
	} else {
		r.base = time.Now()
		r.timer = time.AfterFunc(time.Hour, func() { r.fresh.Store(false) })
		r.timer.Stop()
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	c, err := r.readConf(nil)
	if err != nil {
		return nil, err
	}
	r.conf.Store(c)
	r.nextConf.Store(r.ticks() + int64(r.checkEvery))
	if r.hostsPath != "" {
		if err := r.loadHosts(); err != nil {
			return nil, err
		}
		r.nextCheck.Store(r.ticks() + int64(r.checkEvery))
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Close cancels the DNS queries in flight and waits for their goroutines.
// Lookups after Close fail with ErrClosed unless they are answered by a
// literal, a static entry, the hosts file or the cache.
func (r *Resolver) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	if r.timer != nil {
		r.timer.Stop()
	}
	return nil
}

// clockGrain is how long a reading of the real clock is reused: cache
// entries and the hosts file check may be up to this late.
const clockGrain = 10 * time.Millisecond

// ticks returns the time, in nanoseconds since the Resolver was created, for
// cache expiry and the hosts file check.
func (r *Resolver) ticks() int64 {
	if r.clock != nil {
		return int64(r.clock().Sub(r.base))
	}
	if r.fresh.Load() {
		return r.coarse.Load()
	}
	t := int64(time.Since(r.base))
	r.coarse.Store(t)
	if r.fresh.CompareAndSwap(false, true) {
		r.timer.Reset(clockGrain)
	}
	return t
}

// LookupAddr returns the addresses of host. An IP literal is returned as it
// is; then the first of these that knows the name answers: Static, the
// hosts file, the DNS cache, DNS. DNS asks for A and AAAA records in
// parallel, IPv4 addresses first in the result.
//
// The returned slice is shared with the cache and other callers: the caller
// must not modify its elements (copy it with slices.Clone first). Appending
// to it is safe, as its capacity equals its length.
//
// Errors are *LookupError, wrapping ErrNotFound, ErrTimeout,
// ErrServerFailure, ErrUnreachable, ErrClosed, ErrInvalidName or ctx's
// error. When the search list gives several names and none has an
// address, the error is ErrServerFailure if the servers failed for at
// least one of them (its address is unknown, and the failure is not
// cached), and ErrNotFound only if every name was answered without one;
// a timeout or an unreachable server ends the lookup with that error. ctx bounds
// this call only: a query another caller shares goes on, to fill the cache.
//
// With the real clock, expiry is checked against a clock reading that may
// be up to 10 ms old, so that a cached lookup does not pay for reading the
// clock on systems where that is slow.
func (r *Resolver) LookupAddr(ctx context.Context, host string) ([]netip.Addr, error) {
	upper, maybeIP := scanHost(host)
	if maybeIP {
		if a, err := netip.ParseAddr(host); err == nil {
			return []netip.Addr{a}, nil
		}
	}
	lower := host
	if upper {
		lower = strings.ToLower(host)
	}
	key := strings.TrimSuffix(lower, ".")
	if len(r.static) > 0 {
		if a, ok := r.static[key]; ok {
			return a, nil
		}
	}
	now := r.ticks()
	var snap *hostsSnapshot
	if r.hostsPath != "" {
		snap = r.hostsSnapshot(now)
	}
	e := r.cache.get(lower, now)
	// A cache entry made while the current hosts file was in use saves
	// looking the name up there: it was not in it.
	if e == nil || snap != nil && e.hostsGen != snap.gen {
		if snap != nil {
			if a := snap.names[key]; a != nil {
				return a, nil
			}
		}
	}
	if e != nil {
		if e.err != nil {
			return nil, e.err
		}
		return e.addrs, nil
	}
	var gen uint64
	if snap != nil {
		gen = snap.gen
	}
	return r.resolve(ctx, host, lower, gen)
}

// Classes of bytes in a host name, for scanHost.
const (
	classUpper   = 1 << iota // 'A' to 'Z'
	classColon               // ':', only in IPv6 literals
	classNotIPv4             // neither a digit nor a dot
)

// hostByteClass maps each byte to its classes. It is a constant table,
// never written after its initialisation.
var hostByteClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case 'A' <= c && c <= 'Z':
			t[c] = classUpper | classNotIPv4
		case c == ':':
			t[c] = classColon | classNotIPv4
		case c == '.' || '0' <= c && c <= '9':
		default:
			t[c] = classNotIPv4
		}
	}
	return t
}()

// scanHost reports in one pass whether s has upper-case ASCII letters, and
// whether it may be an IP literal: it holds a colon, or only digits and
// dots. It spares names the cost of a failed parse.
func scanHost(s string) (upper, maybeIP bool) {
	var acc uint8
	for i := 0; i < len(s); i++ {
		acc |= hostByteClass[s[i]]
	}
	return acc&classUpper != 0, acc&classColon != 0 || acc&classNotIPv4 == 0 && s != ""
}

// hostsSnapshot returns the current parse of the hosts file, re-reading
// the file first when the check interval has passed.
func (r *Resolver) hostsSnapshot(n int64) *hostsSnapshot {
	if next := r.nextCheck.Load(); n >= next && r.nextCheck.CompareAndSwap(next, n+int64(r.checkEvery)) {
		if err := r.loadHosts(); err != nil {
			// Keep answering from the last good copy; the operator must
			// fix the file.
			r.log.Warn("hosts: cannot reload hosts file, keeping the previous one", "path", r.hostsPath, "err", err)
		}
	}
	return r.hosts.Load()
}

// loadHosts parses the hosts file if it changed since the last parse.
func (r *Resolver) loadHosts() error {
	info, err := os.Stat(r.hostsPath)
	if err != nil {
		return fmt.Errorf("hosts: %w", err)
	}
	if old := r.hosts.Load(); old != nil && os.SameFile(old.info, info) &&
		old.info.Size() == info.Size() && old.info.ModTime().Equal(info.ModTime()) {
		return nil
	}
	f, err := Load(r.hostsPath)
	if err != nil {
		return err
	}
	r.hostsLoads.Add(1)
	for _, w := range f.Warnings() {
		r.log.Warn("hosts: line ignored", "warning", w.String())
	}
	names := f.names()
	for k, v := range names {
		names[k] = v[:len(v):len(v)]
	}
	r.hostsGen++ // loads are serialised by nextCheck, or happen in NewResolver
	r.hosts.Store(&hostsSnapshot{names: names, info: info, gen: r.hostsGen})
	r.log.Debug("hosts: hosts file loaded", "path", r.hostsPath, "names", len(names))
	return nil
}

// dnsSettings returns the current DNS settings, re-reading the resolv.conf
// file first when the check interval has passed and it changed.
func (r *Resolver) dnsSettings() *dnsConf {
	old := r.conf.Load()
	if r.resolvPath == "" {
		return old
	}
	n := r.ticks()
	if next := r.nextConf.Load(); n >= next && r.nextConf.CompareAndSwap(next, n+int64(r.checkEvery)) {
		c, err := r.readConf(old)
		switch {
		case err != nil:
			r.log.Warn("hosts: cannot reload resolv.conf, keeping the previous settings", "path", r.resolvPath, "err", err)
		case c != old:
			r.conf.Store(c)
			r.log.Debug("hosts: resolv.conf loaded", "path", r.resolvPath, "servers", c.servers, "search", c.search)
			return c
		}
	}
	return old
}

// readConf builds the DNS settings from the configuration and the
// resolv.conf file. It returns old when the file has not changed since old
// was built.
func (r *Resolver) readConf(old *dnsConf) (*dnsConf, error) {
	e := r.explicit
	c := &dnsConf{servers: e.Servers, search: e.Search, ndots: e.Ndots, timeout: e.Timeout, attempts: e.Attempts}
	if r.resolvPath != "" {
		info, err := os.Stat(r.resolvPath)
		if err != nil {
			return nil, fmt.Errorf("hosts: resolv.conf: %w", err)
		}
		if old != nil && old.info != nil && os.SameFile(old.info, info) &&
			old.info.Size() == info.Size() && old.info.ModTime().Equal(info.ModTime()) {
			return old, nil
		}
		rc, err := dns.ClientConfigFromFile(r.resolvPath)
		if err != nil {
			return nil, fmt.Errorf("hosts: resolv.conf: %w", err)
		}
		c.info = info
		if len(c.servers) == 0 {
			for _, s := range rc.Servers {
				c.servers = append(c.servers, net.JoinHostPort(s, rc.Port))
			}
		}
		if len(c.search) == 0 {
			c.search = rc.Search
		}
		if c.ndots == 0 {
			c.ndots = rc.Ndots
		}
		if c.timeout == 0 && rc.Timeout > 0 {
			c.timeout = time.Duration(rc.Timeout) * time.Second
		}
		if c.attempts == 0 {
			c.attempts = rc.Attempts
		}
	}
	servers := make([]string, len(c.servers))
	for i, s := range c.servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(s, "53")
		}
		host, _, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			return nil, fmt.Errorf("hosts: server %q: expected host:port or an IP address", c.servers[i])
		}
		servers[i] = s
	}
	c.servers = servers
	search := make([]string, len(c.search))
	for i, d := range c.search {
		if _, ok := dns.IsDomainName(d); !ok || d == "" {
			return nil, fmt.Errorf("hosts: search domain %q: not a domain name", d)
		}
		search[i] = dns.Fqdn(strings.ToLower(strings.TrimPrefix(d, ".")))
	}
	c.search = search
	if c.ndots <= 0 {
		c.ndots = 1
	}
	if c.timeout <= 0 {
		c.timeout = 5 * time.Second
	}
	if c.attempts <= 0 {
		c.attempts = 2
	}
	c.udp = &dns.Client{Net: "udp", UDPSize: r.udpSize, Timeout: c.timeout}
	c.tcp = &dns.Client{Net: "tcp", Timeout: c.timeout}
	return c, nil
}

// resolve asks DNS, sharing the query with concurrent lookups of the same
// name. hostsGen is the generation of the hosts file that did not hold it.
func (r *Resolver) resolve(ctx context.Context, host, lower string, hostsGen uint64) ([]netip.Addr, error) {
	c := r.dnsSettings()
	if len(c.servers) == 0 {
		return nil, &LookupError{Name: host, Err: ErrNotFound}
	}
	if _, ok := dns.IsDomainName(lower); !ok || strings.TrimSuffix(lower, ".") == "" || strings.Contains(lower, "..") {
		return nil, &LookupError{Name: host, Err: ErrInvalidName}
	}
	if err := ctx.Err(); err != nil {
		return nil, &LookupError{Name: host, Err: err}
	}
	ch := r.flights.DoChan(lower, func() (any, error) { return r.query(c, host, lower, hostsGen) })
	if r.joined != nil {
		r.joined()
	}
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]netip.Addr), nil
	case <-ctx.Done():
		return nil, &LookupError{Name: host, Err: ctx.Err()}
	}
}

// query runs one DNS resolution of lower: each candidate name of the search
// list in turn, A and AAAA in parallel, and caches the outcome.
func (r *Resolver) query(c *dnsConf, host, lower string, hostsGen uint64) ([]netip.Addr, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, &LookupError{Name: host, Err: ErrClosed}
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()

	// A lookup that missed the cache just before the previous query of the
	// same name stored its answer finds it here.
	if e := r.cache.get(lower, r.ticks()); e != nil {
		if e.err != nil {
			return nil, e.err
		}
		return e.addrs, nil
	}

	negTTL, negCacheable := time.Duration(-1), true
	var failed *LookupError // the first candidate every server failed to answer
	for _, name := range c.candidates(lower) {
		ans, err := r.lookupName(r.ctx, c, name)
		if err != nil {
			err.Name = host
			if r.ctx.Err() != nil {
				err.Err = ErrClosed
				return nil, err
			}
			if !errors.Is(err.Err, ErrServerFailure) {
				return nil, err
			}
			// Go on with the next name, as glibc's res_search does
			// after SERVFAIL: another zone may know the host.
			if failed == nil {
				failed = err
			}
			continue
		}
		if len(ans.addrs) > 0 {
			addrs := ans.addrs[:len(ans.addrs):len(ans.addrs)]
			if ttl := min(ans.ttl, r.maxTTL); ttl > 0 {
				now := r.ticks()
				r.cache.put(lower, &cacheEntry{addrs: addrs, expires: now + int64(ttl), hostsGen: hostsGen}, now)
			}
			return addrs, nil
		}
		if ans.negTTL < 0 {
			negCacheable = false
		} else if negTTL < 0 || ans.negTTL < negTTL {
			negTTL = ans.negTTL
		}
	}
	if failed != nil {
		// Not found where servers answered, unknown where they failed:
		// the failure says more, and is not cached.
		return nil, failed
	}
	le := &LookupError{Name: host, Err: ErrNotFound}
	if ttl := min(negTTL, r.maxNeg); negCacheable && ttl > 0 {
		now := r.ticks()
		r.cache.put(lower, &cacheEntry{err: le, expires: now + int64(ttl), hostsGen: hostsGen}, now)
	}
	return nil, le
}

// candidates returns the fully qualified names to try for lower, following
// resolv.conf(5): a name ending in a dot is tried alone; a name with at
// least ndots dots is tried as it is before the search domains, any other
// name after them.
func (c *dnsConf) candidates(lower string) []string {
	if strings.HasSuffix(lower, ".") {
		return []string{lower}
	}
	out := make([]string, 0, len(c.search)+1)
	asIs := lower + "."
	if strings.Count(lower, ".") >= c.ndots {
		out = append(out, asIs)
	}
	for _, d := range c.search {
		out = append(out, lower+"."+d)
	}
	if strings.Count(lower, ".") < c.ndots {
		out = append(out, asIs)
	}
	return out
}
