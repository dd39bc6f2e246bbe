package balancer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carbonlb/carbonlb/balancer/internal/h1"
)

// Balancer is a sticky, service-aware HTTP(S) load balancer. It is an
// http.Handler: serve it from any http.Server (HTTP/1.1, or HTTP/2 over
// TLS). Its methods are safe for concurrent use; the request path reads the
// configuration without locks.
type Balancer struct {
	state    atomic.Pointer[state]
	isClosed atomic.Bool // set by Close; read on the request path

	mu        sync.Mutex            // serializes Update, SetBackends, Close; protects the fields below
	cfg       Config                // normalized
	pools     map[string][]*backend // pool → backends, the source of truth
	queues    map[string]*waitQueue // pool → its wait queue, kept while the Balancer lives
	svcStats  map[string]*serviceStats
	closed    bool
	rtByTO    map[Timeouts]*h1.Transport
	upgrades  map[io.Closer]struct{} // hijacked connections, closed by Close
	closeOnce sync.Once

	sessions SessionStore
	table    *sessionTable // the built-in store or a SessionTable's; nil with another Config.Sessions
	shared   *SessionTable // Config.Sessions when it is one (Sticky.Await)
	key      []byte
	logger   atomic.Pointer[slog.Logger]
	access   atomic.Pointer[slog.Logger] // Config.AccessLog, or nil
	custom   http.RoundTripper           // Config.Transport
	probeRT  http.RoundTripper
	bufs     sync.Pool

	ctx    context.Context // cancelled by Close; parent of health checkers
	cancel context.CancelFunc
	wg     sync.WaitGroup // health checkers and upgraded connections
}

var _ http.Handler = (*Balancer)(nil)

// state is the immutable snapshot the request path reads.
type state struct {
	router     *router
	services   []*service
	transports []http.RoundTripper // per service, by service.idx
	pools      map[string]*pool
	trusted    []netip.Prefix
	serverVal  []string                 // X-Forwarded-Server value (Config.Name); nil: the request's host
	hostVals   map[string][]string      // the services' exact hosts as header values, shared
	lastHost   atomic.Pointer[[]string] // the last other host made a header value, shared
	forwarded  bool
	upgrades   []string // Config.Upgrades, lower case
	tenants    TenantResolver
}

// New validates cfg and returns a Balancer with empty pools; feed them with
// SetBackends. Errors wrap ErrConfig (see *ConfigError). Close releases it.
func New(cfg Config) (*Balancer, error) {
	c, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	b := &Balancer{
		cfg:      c,
		pools:    map[string][]*backend{},
		queues:   map[string]*waitQueue{},
		svcStats: map[string]*serviceStats{},
		rtByTO:   map[Timeouts]*h1.Transport{},
		upgrades: map[io.Closer]struct{}{},
		custom:   c.Transport,
	}
	b.setLogger(c.Logger, c.AccessLog)
	b.key = c.StickyKey
	if b.key == nil {
		b.key = make([]byte, 32)
		rand.Read(b.key)
	}
	switch st := c.Sessions.(type) {
	case nil:
		b.table = newSessionTable(c.MaxSessions)
		b.sessions = b.table
	case *SessionTable:
		// Its table takes the request path's clock-free calls and gives
		// Status its counts.
		if st == nil || st.t == nil {
			return nil, &ConfigError{Field: "Sessions", Err: errors.New("a SessionTable not made by NewSessionTable")}
		}
		b.table, b.sessions, b.shared = st.t, st, st
	default:
		b.sessions = c.Sessions
	}
	b.bufs.New = func() any { p := make([]byte, 32<<10); return &p }
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if b.custom != nil {
		b.probeRT = b.custom
	} else {
		b.probeRT = b.newTransport(Timeouts{Dial: 5 * time.Second}, 2)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.publish()
	return b, nil
}

// SetBackends replaces the backends of pool atomically. A backend whose ID
// and URL were already in the pool keeps its health state, sessions and
// statistics; a removed backend gets no new requests, its in-flight requests
// finish, and its sessions are re-pinned on their next request. An empty
// list empties the pool. On error (an empty or duplicate ID, a URL that is
// not http(s)://host[:port]) nothing changes. Pools need not be named by a
// service yet: a later Update may use them.
func (b *Balancer) SetBackends(pool string, backends []Backend) error {
	if pool == "" {
		return fmt.Errorf("balancer: SetBackends: empty pool name")
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	old := map[string]*backend{}
	for _, be := range b.pools[pool] {
		old[be.id] = be
	}
	seen, routes := map[string]bool{}, map[string]bool{}
	next := make([]*backend, 0, len(backends))
	for i, nb := range backends {
		if nb.ID == "" {
			return fmt.Errorf("balancer: SetBackends %q: backend %d: empty ID", pool, i)
		}
		if seen[nb.ID] {
			return fmt.Errorf("balancer: SetBackends %q: duplicate backend ID %q", pool, nb.ID)
		}
		seen[nb.ID] = true
		if nb.Route != "" {
			if routes[nb.Route] {
				return fmt.Errorf("balancer: SetBackends %q: duplicate route %q", pool, nb.Route)
			}
			routes[nb.Route] = true
		}
		if be := old[nb.ID]; be != nil && be.rawURL == nb.URL && be.route == nb.Route {
			w := nb.Weight
			if w <= 0 {
				w = 1
			}
			be.weight.Store(int64(w))
			be.draining.Store(nb.Draining)
			be.maxConns.Store(int64(max(nb.MaxConns, 0)))
			be.mu.Lock()
			be.meta = cloneMap(nb.Metadata)
			be.mu.Unlock()
			next = append(next, be)
			continue
		}
		be, err := newBackend(pool, nb, b.key, b.queue(pool), now)
		if err != nil {
			return fmt.Errorf("balancer: SetBackends %q: backend %q: URL %q: %w", pool, nb.ID, nb.URL, err)
		}
		next = append(next, be)
	}
	for _, be := range b.pools[pool] {
		if !containsBackend(next, be) {
			be.removed.Store(true)
			b.stopChecker(be)
		}
	}
	if len(next) == 0 {
		delete(b.pools, pool)
	} else {
		b.pools[pool] = next
	}
	b.publish()
	return nil
}

// hostVal returns host as a header value, shared for the services' own
// hosts so that the usual request allocates nothing for it.
func (st *state) hostVal(host string) []string {
	if v, ok := st.hostVals[host]; ok {
		return v
	}
	if v := st.lastHost.Load(); v != nil && (*v)[0] == host {
		return *v // the usual case of a default service reached by one name
	}
	v := []string{host}
	st.lastHost.Store(&v)
	return v
}

// serverVal returns the X-Forwarded-Server value for Config.Name.
func serverVal(name string) []string {
	if name == "" {
		return nil
	}
	return []string{name}
}

// queue returns the wait queue of pool. b.mu must be held.
func (b *Balancer) queue(pool string) *waitQueue {
	q := b.queues[pool]
	if q == nil {
		q = &waitQueue{}
		b.queues[pool] = q
	}
	return q
}

func containsBackend(l []*backend, b *backend) bool {
	for _, x := range l {
		if x == b {
			return true
		}
	}
	return false
}

// Update replaces the configuration atomically: requests in flight finish
// under the old one, the next ones use the new one. Pools and their
// backends, sessions, health state and statistics survive. On error
// (wrapping ErrConfig) the old configuration stays. Sessions, Transport,
// TLSClientConfig, MaxIdleConnsPerHost, IdleConnTimeout and MaxSessions are
// fixed at New: a zero value keeps the running one, and any other value
// that differs from it is refused with a *ConfigError naming the field
// (joined with errors.Join when several are). When no service keeps the
// Timeouts of a backend transport, its idle connections are closed.
func (b *Balancer) Update(cfg Config) error {
	c, err := cfg.normalize()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	old := b.cfg
	if err := fixedAtNew(cfg, old); err != nil {
		return err
	}
	c.Sessions, c.Transport, c.TLSClientConfig = old.Sessions, old.Transport, old.TLSClientConfig
	c.MaxIdleConnsPerHost, c.IdleConnTimeout, c.MaxSessions = old.MaxIdleConnsPerHost, old.IdleConnTimeout, old.MaxSessions
	if c.StickyKey == nil {
		c.StickyKey = old.StickyKey
	}
	if string(c.StickyKey) != string(old.StickyKey) {
		// New cookie values: rebuild every backend's token.
		b.key = c.StickyKey
		for name, l := range b.pools {
			for _, be := range l {
				tok := stickyToken(b.key, name, be.id)
				be.token.Store(&tok)
			}
		}
	}
	b.setLogger(c.Logger, c.AccessLog)
	b.cfg = c
	b.publish()
	return nil
}

// fixedAtNew returns an error naming each setting of next, as the caller
// gave it, that Update cannot apply: a non-zero value other than the one
// running (cur, normalized).
func fixedAtNew(next, cur Config) error {
	var errs []error
	bad := func(field string, running, got any) {
		errs = append(errs, &ConfigError{Field: field, Err: fmt.Errorf("fixed at New: running %v, got %v", running, got)})
	}
	if next.Sessions != nil && next.Sessions != cur.Sessions {
		bad("Sessions", fmt.Sprintf("%T", cur.Sessions), fmt.Sprintf("%T", next.Sessions))
	}
	if next.Transport != nil && next.Transport != cur.Transport {
		bad("Transport", fmt.Sprintf("%T", cur.Transport), fmt.Sprintf("%T", next.Transport))
	}
	if next.TLSClientConfig != nil && next.TLSClientConfig != cur.TLSClientConfig {
		bad("TLSClientConfig", "another *tls.Config", "a new one")
	}
	if next.MaxIdleConnsPerHost != 0 && next.MaxIdleConnsPerHost != cur.MaxIdleConnsPerHost {
		bad("MaxIdleConnsPerHost", cur.MaxIdleConnsPerHost, next.MaxIdleConnsPerHost)
	}
	if next.IdleConnTimeout != 0 && next.IdleConnTimeout != cur.IdleConnTimeout {
		bad("IdleConnTimeout", cur.IdleConnTimeout, next.IdleConnTimeout)
	}
	if next.MaxSessions != 0 && next.MaxSessions != cur.MaxSessions {
		bad("MaxSessions", cur.MaxSessions, next.MaxSessions)
	}
	return errors.Join(errs...)
}

func (b *Balancer) setLogger(l, access *slog.Logger) {
	b.access.Store(access)
	if l == nil {
		l = slog.Default()
	}
	b.logger.Store(l)
}

func (b *Balancer) log() *slog.Logger { return b.logger.Load() }

// ErrClosed is returned by SetBackends and Update after Close.
var ErrClosed = errors.New("balancer: closed")

// publish builds and stores a new state from b.cfg and b.pools, and starts
// or stops health checkers to match. b.mu must be held.
func (b *Balancer) publish() {
	c := &b.cfg
	st := &state{
		pools:     make(map[string]*pool, len(b.pools)),
		trusted:   c.TrustedProxies,
		serverVal: serverVal(c.Name),
		forwarded: c.Forwarded,
		upgrades:  c.Upgrades,
		tenants:   c.Tenants,
	}
	if st.tenants == nil {
		st.tenants = PathTenants{}
	}
	health := map[string]HealthCheck{}
	for i := range c.Services {
		sc := c.Services[i]
		ss := b.svcStats[sc.Name]
		if ss == nil {
			ss = &serviceStats{}
			b.svcStats[sc.Name] = ss
		}
		s := &service{Service: sc, stat: ss, idx: i}
		st.transports = append(st.transports, b.transport(sc.Timeouts))
		s.tenants, _ = parseTenantRange(sc.TenantRange)
		s.setCookieKV, s.cookieAttrs = cookieParts(sc.Sticky.Insert)
		st.services = append(st.services, s)
		if _, ok := health[sc.Pool]; !ok {
			health[sc.Pool] = sc.Health
		}
	}
	for name := range b.svcStats {
		found := false
		for _, s := range st.services {
			found = found || s.Name == name
		}
		if !found {
			delete(b.svcStats, name)
		}
	}
	st.router = newRouter(st.services)
	st.hostVals = make(map[string][]string)
	for _, s := range st.services {
		for _, h := range s.Hosts {
			if !strings.HasPrefix(h, "*.") {
				st.hostVals[h] = []string{h}
			}
		}
	}
	b.retireTransports(c.Services)
	for name, l := range b.pools {
		st.pools[name] = newPool(name, l, b.queue(name))
		h, used := health[name]
		for _, be := range l {
			if !used || h.Active == CheckNone {
				b.stopChecker(be)
				be.activeDown.Store(false)
				continue
			}
			if be.checker != nil && sameCheck(be.checkCfg, h) {
				continue
			}
			b.stopChecker(be)
			b.startChecker(be, h)
		}
	}
	b.state.Store(st)
	for _, q := range b.queues {
		q.wakeAll() // the pools or the limits changed: route again
	}
}

// Close stops health checkers, closes upgraded (WebSocket) connections and
// idle backend connections, and waits for the Balancer's goroutines. Later
// requests get 503. Close is idempotent.
func (b *Balancer) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.isClosed.Store(true)
		for _, l := range b.pools {
			for _, be := range l {
				b.stopChecker(be)
			}
		}
		for c := range b.upgrades {
			c.Close()
		}
		for _, q := range b.queues {
			q.wakeAll() // waiting requests see the Balancer closed: 503
		}
		b.cancel()
		b.mu.Unlock()
		b.wg.Wait()
		for _, rt := range b.rtByTO {
			rt.CloseIdleConnections()
		}
		if t, ok := b.probeRT.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
	})
	return nil
}

// trackUpgrade registers hijacked connections; it reports false (and the
// caller must close them) after Close. On true the caller must call
// b.wg.Done and untrackUpgrade when done.
func (b *Balancer) trackUpgrade(cs ...io.Closer) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	for _, c := range cs {
		b.upgrades[c] = struct{}{}
	}
	b.wg.Add(1)
	return true
}

func (b *Balancer) untrackUpgrade(cs ...io.Closer) {
	b.mu.Lock()
	for _, c := range cs {
		delete(b.upgrades, c)
	}
	b.mu.Unlock()
	b.wg.Done()
}

func cookieParts(c Cookie) (kv, attrs string) {
	kv = c.Name + "="
	attrs = "; Path=" + c.Path
	if c.Domain != "" {
		attrs += "; Domain=" + c.Domain
	}
	if c.MaxAge > 0 {
		attrs += "; Max-Age=" + strconv.FormatInt(int64(c.MaxAge/time.Second), 10)
	}
	if !c.NoHTTPOnly {
		attrs += "; HttpOnly"
	}
	switch c.SameSite {
	case http.SameSiteLaxMode:
		attrs += "; SameSite=Lax"
	case http.SameSiteStrictMode:
		attrs += "; SameSite=Strict"
	case http.SameSiteNoneMode:
		attrs += "; SameSite=None"
	}
	return kv, attrs
}
