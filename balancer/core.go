package balancer

// This file and sessions.go, health.go hold the decisions — virtual host to
// service, sticky lookup and learn, policy, health, retry budget — on plain
// values (host, path, session id, client address). Nothing here uses
// net/http's request or response types, so another HTTP engine can drive the
// same core.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is one server of a pool.
type Backend struct {
	// ID identifies the backend within its pool; sessions and health state
	// follow the ID across SetBackends calls. Required.
	ID string
	// URL is the backend's base, "http://10.0.0.5:9763" or
	// "https://10.0.0.5:9443". Only scheme and host are used; the request's
	// path is sent unchanged. Required.
	URL string
	// Weight is the backend's share of new sessions relative to the
	// others. Zero means 1.
	Weight int
	// Metadata is free-form information (a member's properties) shown in
	// Status.
	Metadata map[string]string
	// Draining keeps the backend serving the sessions pinned to it while it
	// gets no new ones, as before a rolling restart.
	Draining bool
	// MaxConns bounds the requests the backend serves at once (HAProxy's
	// server maxconn, nginx's max_conns; set it to Tomcat's maxThreads).
	// Zero means the service's Service.MaxConns.
	MaxConns int
}

// backend is the live state of a Backend. It survives SetBackends and
// Update as long as the pool keeps a backend with the same ID and URL.
type backend struct {
	pool   string
	id     string
	rawURL string
	scheme string                 // "http" or "https"
	host   string                 // host:port
	token  atomic.Pointer[string] // the StickyInsert cookie value naming this backend

	weight atomic.Int64

	draining atomic.Bool
	removed  atomic.Bool

	active   atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64
	lat      latency

	maxConns atomic.Int64 // Backend.MaxConns; 0: the service's
	queue    *waitQueue   // the pool's queue, woken when a request ends

	// Health. activeDown is the active checker's verdict; downUntil
	// (unix ns, 0 = up) is the passive cool-off; trial holds the ticket of
	// the one request allowed after the cool-off while it is in flight (0:
	// none), so that only that request can give the slot back.
	activeDown   atomic.Bool
	passiveFails atomic.Int32
	downUntil    atomic.Int64
	trial        atomic.Uint64
	trialSeq     atomic.Uint64 // the last ticket handed out
	upSince      atomic.Int64  // unix ns when it (re)entered service, for slow start

	mu       sync.Mutex // protects since, lastErr, meta
	since    time.Time
	lastErr  string
	meta     map[string]string
	checker  *checker // guarded by Balancer.mu
	checkCfg HealthCheck
}

func newBackend(pool string, b Backend, key []byte, q *waitQueue, now time.Time) (*backend, error) {
	u, err := url.Parse(b.URL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errString("scheme " + u.Scheme + " is not http or https")
	}
	if u.Host == "" {
		return nil, errString("no host")
	}
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			host += ":443"
		} else {
			host += ":80"
		}
	}
	w := b.Weight
	if w <= 0 {
		w = 1
	}
	be := &backend{
		pool: pool, id: b.ID, rawURL: b.URL, scheme: u.Scheme, host: host,
		meta: cloneMap(b.Metadata), since: now, queue: q,
	}
	be.maxConns.Store(int64(max(b.MaxConns, 0)))
	be.weight.Store(int64(w))
	tok := stickyToken(key, pool, b.ID)
	be.token.Store(&tok)
	be.upSince.Store(now.UnixNano())
	be.draining.Store(b.Draining)
	return be, nil
}

type errString string

func (e errString) Error() string { return string(e) }

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// stickyToken is the StickyInsert cookie value for a backend: 128 bits of
// HMAC-SHA256 over pool and ID, so the cookie names the backend without
// revealing its address, cannot be forged without the key, and every
// instance sharing the key computes the same value.
func stickyToken(key []byte, pool, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(pool))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// usable reports whether b may take a request now, its connection limit
// aside. For a backend past its passive cool-off, only one trial request is
// allowed; claim takes it.
func (b *backend) usable(now int64) bool {
	if b.removed.Load() || b.activeDown.Load() {
		return false
	}
	d := b.downUntil.Load()
	return d == 0 || (now >= d && b.trial.Load() == 0)
}

// full reports whether b serves limit requests already (limit 0: never).
func (b *backend) full(limit int64) bool {
	return limit > 0 && b.active.Load() >= limit
}

// acquire counts a request in b.active, unless limit (> 0) requests are
// active already.
func (b *backend) acquire(limit int64) bool {
	if limit <= 0 {
		b.active.Add(1)
		return true
	}
	for {
		n := b.active.Load()
		if n >= limit {
			return false
		}
		if b.active.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// claim is called on the chosen backend: it counts the request in
// b.active within limit and, for a backend past its cool-off, takes the
// trial slot, returning its ticket (0 when the backend is up). It reports
// false, having taken nothing, when the backend is full or another request
// holds the trial.
func (b *backend) claim(now, limit int64) (trial uint64, ok bool) {
	if !b.acquire(limit) {
		return 0, false
	}
	d := b.downUntil.Load()
	if d == 0 {
		return 0, true
	}
	if now >= d {
		t := b.trialSeq.Add(1)
		if b.trial.CompareAndSwap(0, t) {
			return t, true
		}
	}
	b.active.Add(-1)
	return 0, false
}

// endTrial gives back the trial slot if ticket still holds it; a request
// that does not hold the slot cannot give back another's.
func (b *backend) endTrial(ticket uint64) {
	if ticket != 0 {
		b.trial.CompareAndSwap(ticket, 0)
	}
}

// release ends a request that claim counted: it gives back the trial slot
// the request held, if any, and wakes a request waiting for a connection.
func (b *backend) release(ticket uint64) {
	b.endTrial(ticket)
	b.active.Add(-1)
	if q := b.queue; q != nil && q.n.Load() > 0 {
		q.wakeOne()
	}
}

// healthy reports whether b is up for Status and MinInstances.
func (b *backend) healthy(now int64) bool {
	if b.removed.Load() || b.activeDown.Load() {
		return false
	}
	d := b.downUntil.Load()
	return d == 0 || now >= d
}

// effWeight is the weight scaled by 64, ramped during slow start.
func (b *backend) effWeight(now int64, slow time.Duration) int {
	w := int(b.weight.Load()) * 64
	if slow <= 0 {
		return w
	}
	up := time.Duration(now - b.upSince.Load())
	if up >= slow || up < 0 {
		return w
	}
	r := int(int64(w) * int64(up) / int64(slow))
	if r < 1 {
		r = 1
	}
	return r
}

// pool is an immutable set of backends plus the round-robin state.
type pool struct {
	name     string
	backends []*backend
	byID     map[string]*backend
	byToken  map[string]*backend

	queue *waitQueue // requests waiting for a backend under MaxConns

	mu  sync.Mutex // protects cur
	cur []int      // smooth weighted round robin current weights
	rr  atomic.Uint32
}

func newPool(name string, bes []*backend, q *waitQueue) *pool {
	p := &pool{name: name, backends: bes, queue: q, byID: make(map[string]*backend, len(bes)),
		byToken: make(map[string]*backend, len(bes)), cur: make([]int, len(bes))}
	for _, b := range bes {
		p.byID[b.id] = b
		p.byToken[*b.token.Load()] = b
	}
	return p
}

// stickyOutcome is what stickiness did for a request.
type stickyOutcome uint8

const (
	stickyNone  stickyOutcome = iota // stickiness off, or no session in the request
	stickyHit                        // routed to the session's backend
	stickyMiss                       // a session id the balancer did not know
	stickyRepin                      // the session's backend was down or gone: re-pinned
)

func (o stickyOutcome) String() string {
	return [...]string{"none", "hit", "miss", "repin"}[o]
}

// service is a Service ready for routing.
type service struct {
	Service
	tenants     tenantRange
	stat        *serviceStats
	idx         int    // position in state.services and state.transports
	setCookieKV string // "NAME=" prefix of the insert cookie
	cookieAttrs string // "; Path=/; HttpOnly..." without Secure
}

// router maps hosts to services.
type router struct {
	exact    map[string][]*service
	wildcard map[string][]*service // ".example.com" → services
	def      *service
}

func newRouter(svcs []*service) *router {
	r := &router{exact: map[string][]*service{}, wildcard: map[string][]*service{}}
	for _, s := range svcs {
		if s.Default {
			r.def = s
		}
		for _, h := range s.Hosts {
			if strings.HasPrefix(h, "*.") {
				r.wildcard[h[1:]] = append(r.wildcard[h[1:]], s)
			} else {
				r.exact[h] = append(r.exact[h], s)
			}
		}
	}
	return r
}

// route returns the service for host (lower case, no port) and tenant.
func (r *router) route(host string, tenant int, known bool) *service {
	if l, ok := r.exact[host]; ok {
		if s := pickTenant(l, tenant, known); s != nil {
			return s
		}
	}
	for i := strings.IndexByte(host, '.'); i >= 0; {
		if l, ok := r.wildcard[host[i:]]; ok {
			if s := pickTenant(l, tenant, known); s != nil {
				return s
			}
		}
		j := strings.IndexByte(host[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if r.def != nil && r.def.tenants.match(tenant, known) {
		return r.def
	}
	return nil
}

func pickTenant(l []*service, tenant int, known bool) *service {
	for _, s := range l {
		if s.tenants.match(tenant, known) {
			return s
		}
	}
	return nil
}

// normHost lowercases host and strips a port and a trailing dot, without
// allocating when host is already lower case.
func normHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// allowed reports whether client may use s.
func (s *service) allowed(client netip.Addr) bool {
	if len(s.AllowCIDRs) == 0 {
		return true
	}
	client = client.Unmap()
	for _, p := range s.AllowCIDRs {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// limit is the connection limit of be for requests of s: Backend.MaxConns,
// else Service.MaxConns; 0 means none.
func (s *service) limit(be *backend) int64 {
	if n := be.maxConns.Load(); n > 0 {
		return n
	}
	return int64(s.MaxConns)
}

// pick chooses a backend of p for a new (unpinned) request, skipping those
// in tried, and claims it (see backend.claim). It returns nil when none is
// usable; fail-open then picks among all backends that are not removed.
// full reports, when it returns nil, that a usable backend is only at its
// connection limit: the request may wait for it.
func (s *service) pick(p *pool, now int64, tried []*backend) (be *backend, trial uint64, full bool) {
	skip := tried
	for range 4 { // a lost trial-slot or connection-slot race makes us pick again
		b := s.choose(p, now, skip, false)
		anyway := false
		if b == nil && s.Health.FailOpen {
			b, anyway = s.choose(p, now, skip, true), true
		}
		if b == nil {
			break
		}
		if anyway {
			if b.acquire(s.limit(b)) {
				return b, 0, false
			}
		} else if t, ok := b.claim(now, s.limit(b)); ok {
			return b, t, false
		}
		skip = append(skip[:len(skip):len(skip)], b)
	}
	return nil, 0, s.anyFull(p, now, tried)
}

// anyFull reports whether a backend of p not in tried would take a new
// request but for its connection limit.
func (s *service) anyFull(p *pool, now int64, tried []*backend) bool {
	for _, b := range p.backends {
		if b.full(s.limit(b)) && !b.draining.Load() && !isTried(tried, b) &&
			(b.usable(now) || (s.Health.FailOpen && !b.removed.Load())) {
			return true
		}
	}
	return false
}

func isTried(tried []*backend, b *backend) bool {
	for _, t := range tried {
		if t == b {
			return true
		}
	}
	return false
}

func (s *service) eligible(b *backend, now int64, tried []*backend, anyway bool) bool {
	if anyway {
		return !b.removed.Load() && !isTried(tried, b) && !b.full(s.limit(b))
	}
	return !b.draining.Load() && b.usable(now) && !isTried(tried, b) && !b.full(s.limit(b))
}

func (s *service) choose(p *pool, now int64, tried []*backend, anyway bool) *backend {
	n := len(p.backends)
	switch n {
	case 0:
		return nil
	case 1:
		if b := p.backends[0]; s.eligible(b, now, tried, anyway) {
			return b
		}
		return nil
	}
	slow := s.Health.SlowStart
	switch s.Policy {
	case LeastConn:
		var best *backend
		var bestLoad, bestW int64
		start := int(p.rr.Add(1))
		for k := range n {
			b := p.backends[(start+k)%n]
			if !s.eligible(b, now, tried, anyway) {
				continue
			}
			load, w := b.active.Load(), int64(b.effWeight(now, slow))
			if best == nil || load*bestW < bestLoad*w {
				best, bestLoad, bestW = b, load, w
			}
		}
		return best
	case PowerOfTwo:
		var c [2]*backend
		m := 0
		for try := 0; try < 2*n && m < 2; try++ {
			b := p.backends[rand.IntN(n)]
			if s.eligible(b, now, tried, anyway) && (m == 0 || c[0] != b) {
				c[m] = b
				m++
			}
		}
		if m == 0 {
			// Few eligible backends: fall back to a scan.
			for _, b := range p.backends {
				if s.eligible(b, now, tried, anyway) {
					return b
				}
			}
			return nil
		}
		if m == 1 {
			return c[0]
		}
		a, b := c[0], c[1]
		wa, wb := int64(a.effWeight(now, slow)), int64(b.effWeight(now, slow))
		if (b.active.Load()+1)*wa < (a.active.Load()+1)*wb {
			return b
		}
		return a
	}
	// Smooth weighted round robin.
	p.mu.Lock()
	var best, total int
	best = -1
	for i, b := range p.backends {
		if !s.eligible(b, now, tried, anyway) {
			continue
		}
		w := b.effWeight(now, slow)
		p.cur[i] += w
		total += w
		if best < 0 || p.cur[i] > p.cur[best] {
			best = i
		}
	}
	if best < 0 {
		p.mu.Unlock()
		return nil
	}
	p.cur[best] -= total
	p.mu.Unlock()
	return p.backends[best]
}

// decision is the result of routing a request in the core. A decision with
// a backend holds one of its request slots (backend.claim): whoever receives
// it must call backend.release(trial) exactly once.
type decision struct {
	backend *backend
	trial   uint64 // the trial ticket the request holds, or 0
	outcome stickyOutcome
	pin     bool // the caller must set the insert cookie / learn the pin
	full    bool // no backend: the ones that would do are at their connection limit
}

// stickyBackend claims the backend a session names when it may serve
// (draining backends keep their sessions). full reports that it would but
// for its connection limit: the request waits for it rather than lose its
// session.
func (s *service) stickyBackend(now int64, be *backend, tried []*backend) (got *backend, trial uint64, out stickyOutcome, full bool) {
	if be == nil {
		return nil, 0, stickyMiss, false
	}
	if !isTried(tried, be) && be.usable(now) {
		if t, ok := be.claim(now, s.limit(be)); ok {
			return be, t, stickyHit, false
		}
		if be.full(s.limit(be)) {
			return nil, 0, stickyHit, true
		}
	}
	return nil, 0, stickyRepin, false
}

// decide routes one request: sessionID is the StickyLearn id (or ""),
// token the StickyInsert cookie value (or "").
func (b *Balancer) decide(s *service, p *pool, sessionID, token string, now int64, tried []*backend) decision {
	switch s.Sticky.Mode {
	case StickyLearn:
		if sessionID == "" {
			break
		}
		var be *backend
		if id, ok := b.lookup(p.name, sessionID, s.Sticky.TTL, now); ok {
			be = p.byID[id]
			if be == nil {
				be = &backend{} // pinned to a backend that left the pool
				be.removed.Store(true)
			}
		}
		got, t, out, full := s.stickyBackend(now, be, tried)
		if got != nil || full {
			return decision{backend: got, trial: t, outcome: out, full: full}
		}
		nb, t, full := s.pick(p, now, tried)
		// A known session whose backend is down or gone is re-pinned at
		// once: the new backend may not issue a new cookie (replicated
		// sessions), yet the session must stay. An id the table does not
		// know is not stored (unless PinUnknown): sessions are created
		// only from a backend's Set-Cookie, so a client cannot fill the
		// table with ids of its choosing and evict real sessions.
		if nb != nil && (out == stickyRepin || s.Sticky.PinUnknown) {
			b.pin(p.name, sessionID, nb.id, s.Sticky.TTL, now)
		}
		return decision{backend: nb, trial: t, outcome: out, full: full}
	case StickyInsert:
		if token == "" {
			nb, t, full := s.pick(p, now, tried)
			return decision{backend: nb, trial: t, outcome: stickyNone, pin: nb != nil, full: full}
		}
		be := p.byToken[token]
		if be == nil {
			// Forged, stale or unknown: ignore and re-pin.
			nb, t, full := s.pick(p, now, tried)
			return decision{backend: nb, trial: t, outcome: stickyMiss, pin: nb != nil, full: full}
		}
		got, t, out, full := s.stickyBackend(now, be, tried)
		if got != nil || full {
			return decision{backend: got, trial: t, outcome: out, full: full}
		}
		nb, t, full := s.pick(p, now, tried)
		return decision{backend: nb, trial: t, outcome: stickyRepin, pin: nb != nil, full: full}
	}
	nb, t, full := s.pick(p, now, tried)
	return decision{backend: nb, trial: t, full: full}
}

// lookup and pin use the built-in table's clock-free path when it is the
// store.
func (b *Balancer) lookup(pool, id string, ttl time.Duration, now int64) (string, bool) {
	if b.table != nil {
		return b.table.lookupAt(pool, id, ttl, now)
	}
	return b.sessions.Lookup(pool, id, ttl)
}

func (b *Balancer) pin(pool, id, backendID string, ttl time.Duration, now int64) {
	if b.table != nil {
		b.table.pinAt(pool, id, backendID, ttl, now)
		return
	}
	b.sessions.Pin(pool, id, backendID, ttl)
}

// result reports the outcome of one try to the passive health check;
// trial is the ticket the try held, if any. The try's slot is still to be
// released.
func (b *Balancer) result(s *service, be *backend, trial uint64, err error, now time.Time) {
	if err == nil {
		if be.passiveFails.Load() != 0 {
			be.passiveFails.Store(0)
		}
		if be.downUntil.Load() != 0 {
			be.downUntil.Store(0)
			be.endTrial(trial)
			be.upSince.Store(now.UnixNano())
			be.setState(now, "")
			b.log().Info("balancer: backend up", "pool", be.pool, "backend", be.id, "check", "passive")
		}
		return
	}
	be.failures.Add(1)
	be.mu.Lock()
	be.lastErr = err.Error()
	be.mu.Unlock()
	if s.Health.MaxFails < 0 {
		be.endTrial(trial)
		return
	}
	n := be.passiveFails.Add(1)
	wasTrial := trial != 0 && be.trial.Load() == trial
	if int(n) >= s.Health.MaxFails || wasTrial {
		first := be.downUntil.Load() == 0
		be.downUntil.Store(now.Add(s.Health.FailTimeout).UnixNano())
		be.endTrial(trial)
		if first {
			be.setState(now, err.Error())
			b.log().Warn("balancer: backend down", "pool", be.pool, "backend", be.id, "check", "passive", "err", err)
		}
	}
}

func (be *backend) setState(now time.Time, lastErr string) {
	be.mu.Lock()
	be.since = now
	if lastErr != "" {
		be.lastErr = lastErr
	}
	be.mu.Unlock()
}

// retryBudget says whether another try may start.
type retryBudget struct {
	attempts int
	deadline int64
}

func (r *retryBudget) next(now int64) bool {
	r.attempts--
	return r.attempts > 0 && now < r.deadline
}

// clientAddr returns the address the balancer attributes the request to:
// the peer, or, when the peer is a trusted proxy, the right-most address of
// X-Forwarded-For that is not a trusted proxy. Without X-Forwarded-For the
// for= nodes of RFC 7239 Forwarded (fwd) are read the same way. A value
// that is not an address (garbage, "unknown", an obfuscated node) stops the
// walk at the last address found.
func clientAddr(peer netip.Addr, xff, fwd []string, trusted []netip.Prefix) netip.Addr {
	if len(trusted) == 0 || !inPrefixes(peer, trusted) {
		return peer
	}
	addr := peer
	if len(xff) == 0 && len(fwd) > 0 {
		nodes := forwardedFor(fwd)
		for i := len(nodes) - 1; i >= 0; i-- {
			a, ok := forwardedNode(nodes[i])
			if !ok {
				return addr
			}
			addr = a
			if !inPrefixes(a, trusted) {
				return a
			}
		}
		return addr
	}
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		for v != "" {
			j := strings.LastIndexByte(v, ',')
			part := strings.TrimSpace(v[j+1:])
			if j < 0 {
				v = ""
			} else {
				v = v[:j]
			}
			a, err := netip.ParseAddr(part)
			if err != nil {
				return addr
			}
			addr = a
			if !inPrefixes(a, trusted) {
				return a
			}
		}
	}
	return addr
}

// forwardedFor returns the for= value of each element of RFC 7239
// Forwarded header values, in order, unquoted; an element without one
// yields "". Commas and semicolons inside quoted strings do not split.
func forwardedFor(vals []string) []string {
	var out []string
	for _, v := range vals {
		var forVal string
		for len(v) > 0 {
			// One pair, up to an unquoted ';' or ','.
			i, quoted := 0, false
			for ; i < len(v); i++ {
				c := v[i]
				if quoted {
					if c == '\\' {
						i++
					} else if c == '"' {
						quoted = false
					}
					continue
				}
				if c == '"' {
					quoted = true
				} else if c == ';' || c == ',' {
					break
				}
			}
			pair := strings.TrimSpace(v[:min(i, len(v))])
			if k, val, ok := strings.Cut(pair, "="); ok && strings.EqualFold(strings.TrimSpace(k), "for") {
				forVal = unquoteForwarded(strings.TrimSpace(val))
			}
			if i >= len(v) {
				break
			}
			if v[i] == ',' {
				out = append(out, forVal)
				forVal = ""
			}
			v = v[i+1:]
		}
		out = append(out, forVal)
	}
	return out
}

// unquoteForwarded removes the quotes and backslash escapes of an RFC 7230
// quoted-string; other values are returned as they are.
func unquoteForwarded(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// forwardedNode parses an RFC 7239 node: an IPv4 address or a bracketed
// IPv6 address, either with an optional port. "unknown" and obfuscated
// identifiers are not addresses.
func forwardedNode(node string) (netip.Addr, bool) {
	host := node
	if strings.HasPrefix(node, "[") {
		end := strings.IndexByte(node, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = node[1:end]
		if rest := node[end+1:]; rest != "" && rest[0] != ':' {
			return netip.Addr{}, false
		}
	} else if i := strings.IndexByte(node, ':'); i >= 0 {
		host = node[:i]
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// sessionFromCookies finds cookie name in Cookie header values without
// allocating.
func sessionFromCookies(vals []string, name string) string {
	for _, v := range vals {
		for v != "" {
			var part string
			if i := strings.IndexByte(v, ';'); i >= 0 {
				part, v = v[:i], v[i+1:]
			} else {
				part, v = v, ""
			}
			part = strings.TrimLeft(part, " \t")
			if len(part) > len(name) && part[len(name)] == '=' && part[:len(name)] == name {
				val := strings.TrimRight(part[len(name)+1:], " \t")
				if len(val) > 1 && val[0] == '"' && val[len(val)-1] == '"' {
					val = val[1 : len(val)-1]
				}
				if val != "" {
					return val
				}
			}
		}
	}
	return ""
}

// sessionFromPath finds ";param=value" in a path (Tomcat URL rewriting).
func sessionFromPath(path, param string) string {
	if param == "-" {
		return ""
	}
	i := strings.IndexByte(path, ';')
	for i >= 0 {
		rest := path[i+1:]
		if len(rest) > len(param) && rest[len(param)] == '=' && strings.EqualFold(rest[:len(param)], param) {
			v := rest[len(param)+1:]
			if j := strings.IndexAny(v, ";/?#"); j >= 0 {
				v = v[:j]
			}
			return v
		}
		j := strings.IndexByte(rest, ';')
		if j < 0 {
			return ""
		}
		i += 1 + j
	}
	return ""
}

// sessionFromSetCookie returns the value a Set-Cookie line sets for name.
func sessionFromSetCookie(line, name string) (string, bool) {
	line = strings.TrimLeft(line, " \t")
	if len(line) <= len(name) || line[len(name)] != '=' || line[:len(name)] != name {
		return "", false
	}
	v := line[len(name)+1:]
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = strings.TrimSpace(v)
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v, true
}

// TenantResolver finds the tenant of a request for Service.TenantRange.
// Implementations must be safe for concurrent use.
type TenantResolver interface {
	// Tenant returns the tenant ID for a request to host and path; ok is
	// false for the super tenant (no tenant in the request) and for a
	// tenant the resolver does not know.
	Tenant(host, path string) (id int, ok bool)
}

// PathTenants is the default TenantResolver: Carbon's "/t/<tenant-domain>/"
// path convention, with Domains mapping tenant domains to tenant IDs. A
// request without "/t/" belongs to the super tenant. The zero value knows
// no domain. It must not be modified after it is given to New.
type PathTenants struct {
	// Domains maps a tenant domain ("example.com") to its tenant ID.
	Domains map[string]int
}

// Tenant implements TenantResolver.
func (t PathTenants) Tenant(_, path string) (int, bool) {
	if len(path) < 4 || path[:3] != "/t/" {
		return 0, false
	}
	d := path[3:]
	if i := strings.IndexAny(d, "/;?"); i >= 0 {
		d = d[:i]
	}
	id, ok := t.Domains[d]
	return id, ok
}
