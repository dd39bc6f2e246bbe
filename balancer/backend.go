package balancer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
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
	// Route is the backend's route: Tomcat's jvmRoute, which Tomcat
	// appends to every session id it issues ("ABC123.node-a"). In
	// StickyLearn mode a session id whose part after its first '.' is a
	// backend's Route goes to that backend with no session table, so it
	// survives a balancer restart and holds across any number of balancer
	// instances (mod_jk's and mod_proxy_balancer's stickiness). A route
	// whose backend is down or gone is re-pinned like a learned session.
	// Routes are unique within a pool. Empty means none: the learned
	// table alone applies.
	Route string
}

// backend is the live state of a Backend. It survives SetBackends and
// Update as long as the pool keeps a backend with the same ID and URL.
type backend struct {
	pool   string
	id     string
	rawURL string
	route  string                 // Backend.Route; part of the backend's identity, never changed
	scheme string                 // "http" or "https"
	host   string                 // host:port
	token  atomic.Pointer[string] // the StickyInsert cookie value naming this backend

	weight atomic.Int64

	draining atomic.Bool
	removed  atomic.Bool

	active   atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64
	codes    statusClasses // responses by status class
	// transitions counts the changes between up and down (setState)
	transitions atomic.Uint64
	lat         latency

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
	if !validRoute(b.Route) {
		return nil, errString("route " + strconv.Quote(b.Route) + " has a character a session id cannot carry")
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
		pool: pool, id: b.ID, rawURL: b.URL, route: b.Route, scheme: u.Scheme, host: host,
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

func (be *backend) setState(now time.Time, lastErr string) {
	be.transitions.Add(1)
	be.mu.Lock()
	be.since = now
	if lastErr != "" {
		be.lastErr = lastErr
	}
	be.mu.Unlock()
}

// validRoute reports whether r can be the route suffix of a session id in a
// cookie or a ";jsessionid=" path parameter.
func validRoute(r string) bool {
	for i := 0; i < len(r); i++ {
		if c := r[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`;,="\/?#`, c) >= 0 {
			return false
		}
	}
	return true
}
