package balancer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// StickyMode says how a service keeps a user's session on one backend.
type StickyMode int

const (
	// StickyOff routes every request by the service's Policy.
	StickyOff StickyMode = iota
	// StickyLearn learns the session id from the backend's Set-Cookie of
	// Sticky.Cookie (JSESSIONID by default) and routes later requests that
	// carry it, in the Cookie header or as Tomcat's ";jsessionid=" path
	// parameter, to the same backend. It is NGINX Plus's
	// "sticky learn create=$upstream_cookie_jsessionid lookup=$cookie_jsessionid".
	// A request whose id the balancer has not learned is balanced by the
	// Policy and its id is not stored (see Sticky.PinUnknown).
	StickyLearn
	// StickyInsert makes the balancer set its own HMAC-signed cookie
	// (Sticky.Insert) naming the backend, as AWS ELB and Caddy do. Balancer
	// instances that share Config.StickyKey agree on it without shared state.
	StickyInsert
)

// String returns "off", "learn" or "insert".
func (m StickyMode) String() string {
	switch m {
	case StickyOff:
		return "off"
	case StickyLearn:
		return "learn"
	case StickyInsert:
		return "insert"
	}
	return "StickyMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseStickyMode parses "off", "learn" or "insert" (case-insensitive).
func ParseStickyMode(s string) (StickyMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "off", "none", "":
		return StickyOff, nil
	case "learn":
		return StickyLearn, nil
	case "insert":
		return StickyInsert, nil
	}
	return 0, fmt.Errorf("balancer: sticky mode %q: want off, learn or insert", s)
}

// Policy chooses a backend for a request that no session pins.
type Policy int

const (
	// RoundRobin is smooth weighted round robin (nginx's algorithm): over
	// any window, each backend gets requests in proportion to its weight,
	// interleaved rather than in bursts.
	RoundRobin Policy = iota
	// LeastConn picks the backend with the fewest active requests per unit
	// of weight.
	LeastConn
	// PowerOfTwo picks two backends at random and keeps the one with fewer
	// active requests per unit of weight.
	PowerOfTwo
)

// String returns "round_robin", "least_conn" or "p2c".
func (p Policy) String() string {
	switch p {
	case RoundRobin:
		return "round_robin"
	case LeastConn:
		return "least_conn"
	case PowerOfTwo:
		return "p2c"
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// ParsePolicy parses "round_robin", "least_conn" or "p2c".
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "round_robin", "roundrobin", "rr", "":
		return RoundRobin, nil
	case "least_conn", "leastconn":
		return LeastConn, nil
	case "p2c", "power_of_two":
		return PowerOfTwo, nil
	}
	return 0, fmt.Errorf("balancer: policy %q: want round_robin, least_conn or p2c", s)
}

// SecureMode says when the balancer's own cookie carries the Secure attribute.
type SecureMode int

const (
	// SecureAuto sets Secure when the request arrived over TLS.
	SecureAuto SecureMode = iota
	// SecureAlways always sets Secure.
	SecureAlways
	// SecureNever never sets Secure.
	SecureNever
)

// Cookie holds the attributes of the cookie the balancer sets in StickyInsert
// mode. Its value is an HMAC of the pool and backend ID: it never reveals a
// backend's address.
type Cookie struct {
	// Name is the cookie name. Zero means "CARBONLB".
	Name string
	// Path is the Path attribute. Zero means "/".
	Path string
	// Domain is the Domain attribute. Zero omits it (host-only cookie).
	Domain string
	// MaxAge is the Max-Age attribute, rounded down to seconds. Zero omits
	// it (a browser-session cookie).
	MaxAge time.Duration
	// NoHTTPOnly drops the HttpOnly attribute, which is set by default so
	// page scripts cannot read the cookie.
	NoHTTPOnly bool
	// Secure says when to set the Secure attribute. Zero is SecureAuto.
	Secure SecureMode
	// SameSite is the SameSite attribute. Zero (http.SameSiteDefaultMode)
	// omits it.
	SameSite http.SameSite
}

// Sticky configures session affinity for a service.
type Sticky struct {
	// Mode is off (zero), learn or insert.
	Mode StickyMode
	// Cookie is the application's session cookie, learned from the
	// backend's Set-Cookie and looked up in requests (StickyLearn). Zero
	// means "JSESSIONID". The name is matched case-sensitively.
	Cookie string
	// PathParam is the path parameter that also carries the session id,
	// as in "/app/page;jsessionid=ABC" (Tomcat URL rewriting). Zero means
	// "jsessionid"; "-" disables the path lookup.
	PathParam string
	// TTL is the sliding idle lifetime of a learned session: each request
	// that uses it extends it. Zero means 30 minutes (Tomcat's default
	// session timeout).
	TTL time.Duration
	// Insert is the balancer's own cookie in StickyInsert mode.
	Insert Cookie
	// PinUnknown, in StickyLearn mode, also creates a session from an id
	// a request carries that the session table does not know: the id is
	// pinned to the backend the Policy chose for the request. By default
	// (false) sessions are created only from a backend's Set-Cookie, as
	// NGINX Plus's "sticky learn create=$upstream_cookie_jsessionid" does:
	// such a request is balanced normally and its id is not stored, and
	// the backend that serves it issues a new session, which is learned.
	// PinUnknown suits backends that replicate sessions behind balancer
	// instances that share no SessionStore: after a restart or a failover
	// the balancer relearns the sessions clients present. Its cost is that
	// any client can fill the table with ids of its choosing and, once
	// Config.MaxSessions is reached, evict real sessions. A known session
	// whose backend is down or gone is re-pinned either way.
	PinUnknown bool
}

// Timeouts bound the conversation with a backend, per service. The
// defaults are those of the seed configurations (proxy_read_timeout 5m;
// proxy_send_timeout 5m).
type Timeouts struct {
	// Dial bounds connecting to a backend, including a TLS handshake
	// (nginx proxy_connect_timeout). Zero means 10 seconds.
	Dial time.Duration
	// Read bounds, as nginx's proxy_read_timeout does, the wait for the
	// response header once the request is written, and then the time
	// between two successive reads of the response from the backend, not
	// the whole response: a stream or long poll lasts as long as the
	// backend sends something at least every Read. A header that does not
	// arrive in time gives 504. A body that stalls longer gets the
	// client's connection aborted (the header is already sent) and counts
	// in BackendStatus.Failures. A stall may be cut up to Read/16 early.
	// Idle connections to the backend are closed after at most Read/2.
	// Zero means 5 minutes.
	Read time.Duration
	// Write bounds the time between two successive writes of the request
	// to the backend (nginx proxy_send_timeout), not the whole upload: a
	// backend that stops reading the request body for longer fails the
	// try. A stall may be cut up to Write/16 early. Zero means 5 minutes.
	Write time.Duration
}

// CheckKind selects the active health check of a pool.
type CheckKind int

const (
	// CheckNone disables active checks; passive checks still apply.
	CheckNone CheckKind = iota
	// CheckHTTP sends GET HealthCheck.Path and expects one of
	// HealthCheck.Statuses.
	CheckHTTP
	// CheckTCP only connects (AWS ELB's "TCP:80" check of seed 004).
	CheckTCP
)

// HealthCheck configures active and passive health checking. Active checks
// run per pool: the first service (in Config.Services order) that names a
// pool decides its checks.
type HealthCheck struct {
	// Active selects the active check. Zero (CheckNone) disables it.
	Active CheckKind
	// Path is the HTTP check's request path. Zero means "/".
	Path string
	// Host is the HTTP check's Host header. Zero means the backend's host.
	Host string
	// Statuses are the HTTP statuses that count as healthy. Nil means
	// 200-399.
	Statuses []int
	// Interval is the time between two probes of one backend. Zero means
	// 5 seconds.
	Interval time.Duration
	// Timeout bounds one probe. Zero means 2 seconds.
	Timeout time.Duration
	// Rise is the number of consecutive passing probes that bring a down
	// backend up. Zero means 2.
	Rise int
	// Fall is the number of consecutive failing probes that take an up
	// backend down. Zero means 3.
	Fall int
	// Jitter adds a random delay in [0, Jitter) to every interval so
	// probes of many backends spread out. Zero means none.
	Jitter time.Duration

	// MaxFails is the number of consecutive failed requests (transport
	// errors: refused, reset, timeout; and FailStatuses) that mark a backend down for
	// FailTimeout (nginx max_fails). Zero means 1; negative disables
	// passive checks.
	MaxFails int
	// FailStatuses are response statuses that count as failed requests
	// for MaxFails, as transport errors do: nginx's
	// "proxy_next_upstream error timeout http_502 http_503 http_504" with
	// max_fails. {502, 503, 504} is the usual choice. Nil counts every
	// response as a success. A request answered with such a status is
	// retried on another backend when a transport error would have let it
	// be (an idempotent method whose body was not read, Retry budget
	// left) and another backend is available; the response is then
	// discarded. Otherwise the response is passed to the client as it is.
	// MaxFails < 0 disables the counting, not the retry.
	FailStatuses []int
	// FailTimeout is the cool-off of a passively failed backend, after
	// which one trial request decides whether it is back (nginx
	// fail_timeout). Zero means 10 seconds.
	FailTimeout time.Duration

	// SlowStart is the time over which a backend that comes up (added, or
	// back from down) ramps its share of new sessions from almost nothing
	// to its full weight, for cold JVMs. Zero disables it. It applies to
	// RoundRobin and to the tie-breaking of the other policies.
	SlowStart time.Duration

	// FailOpen, when every backend of the pool is down, tries them anyway
	// instead of answering 503 (fail-closed, the default).
	FailOpen bool
}

// Retry is the budget for trying another backend after a failure. A request
// none of which reached a backend (refused, dial error, a pooled connection
// found closed before writing) is retried whatever its method; an
// idempotent request (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) also after a
// transport error that came before any byte of a response; a request
// whose bytes may have reached a backend and that is not idempotent (POST,
// PATCH) never is, nor one whose streamed body was read. Bodies of known
// length up to 64 KiB are buffered and can be sent again.
type Retry struct {
	// Attempts is the total number of tries, the first included. Zero means
	// 3; 1 disables retries.
	Attempts int
	// Timeout bounds the time from the first try after which no new try
	// starts (nginx proxy_next_upstream_timeout). Zero means 15 seconds.
	Timeout time.Duration
}

// Service is a virtual-host group that the balancer routes to one pool: a
// server block of nginx, a service of loadbalancer.conf.
type Service struct {
	// Name identifies the service in Status and logs. Required and unique.
	Name string
	// Hosts are the virtual hosts the service answers: exact names
	// ("mgt.esb.example.com") or wildcards ("*.example.com", any name
	// ending in ".example.com"). A port in the request's Host is ignored;
	// matching is case-insensitive.
	Hosts []string
	// Default makes the service answer hosts that no other service
	// claims. At most one service may be the default; without one such
	// requests get 404.
	Default bool
	// Pool names the backend pool, conventionally "domain/subDomain" (for
	// example "wso2.esb.domain/worker"). Required. Several services may
	// share a pool.
	Pool string
	// TenantRange limits the service to tenant IDs, as in loadbalancer.conf:
	// "*" or zero for all, "1-100", or a single "7". When several services
	// claim a host, the first whose range holds the request's tenant wins.
	// The super tenant (no tenant in the request) only matches "*".
	TenantRange string
	// MinInstances is the number of healthy backends below which Status
	// flags the service (loadbalancer.conf min_app_instances). Zero
	// disables the flag.
	MinInstances int
	// AllowCIDRs, when non-empty, answers 403 to clients outside them (the
	// RemoteAddrValve of the management console). The client is the peer
	// address, or the forwarded client when the peer is a trusted proxy.
	AllowCIDRs []netip.Prefix
	// Sticky is the session affinity.
	Sticky Sticky
	// Policy picks backends for requests no session pins. Zero is
	// RoundRobin.
	Policy Policy
	// Timeouts bound the conversation with backends.
	Timeouts Timeouts
	// Health configures health checks of the pool.
	Health HealthCheck
	// Retry is the retry budget.
	Retry Retry
	// MaxBodyBytes limits the request body; a larger body gets 413. Zero
	// means no limit.
	MaxBodyBytes int64
	// ClientBodyTimeout bounds the time between two successive reads of
	// the request body from the client (nginx client_body_timeout), not
	// the whole upload: a client that sends nothing for longer gets 408
	// and its connection closed, and the backend connection it held is
	// given up. It needs a ResponseWriter that supports
	// http.ResponseController's SetReadDeadline (net/http's own HTTP/1
	// and HTTP/2 servers do); with another, no bound applies. Zero means
	// 60 seconds.
	ClientBodyTimeout time.Duration
	// MaxConns bounds the requests of this service each backend of the
	// pool serves at once (HAProxy's server maxconn, nginx's max_conns;
	// Tomcat's maxThreads is the same limit on the other side), as
	// counted in BackendStatus.Active over all services sharing the pool.
	// Backend.MaxConns overrides it per backend. A request for which every
	// backend that would do is at its limit waits in the pool's queue
	// (Queue). Zero means no limit.
	MaxConns int
	// Queue bounds the wait of requests under MaxConns.
	Queue Queue
}

// Queue bounds the requests waiting for a backend at its connection limit
// (Service.MaxConns, Backend.MaxConns), as HAProxy's maxqueue and timeout
// queue do. A session's request waits for its own backend; others for any
// backend of the pool. The queue is per pool and roughly first come, first
// served (a request arriving just as a slot frees may take it first).
type Queue struct {
	// Max is the number of requests that may wait in the pool's queue;
	// one more gets 503 at once. Zero means 1024; negative means none may
	// wait (503 as soon as every backend is full).
	Max int
	// Timeout bounds a request's wait; it then gets 503. Zero means 10
	// seconds.
	Timeout time.Duration
}

// Config configures a Balancer. A Config is a plain value: fill it from
// files, print it, diff it. New and Update copy it; later changes to the
// caller's value (including its slices) have no effect.
type Config struct {
	// Services are the virtual-host groups, in priority order.
	Services []Service
	// Name is the value of X-Forwarded-Server. Zero means "carbonlb".
	Name string
	// TrustedProxies are the peers whose X-Forwarded-For and RFC 7239
	// Forwarded are believed and extended (the client address of an
	// allow-list comes from X-Forwarded-For, or from Forwarded's for= nodes
	// when there is none); from any other peer X-Forwarded-For is replaced
	// by the peer's address and Forwarded removed (a client cannot spoof
	// its address). Nil trusts nobody.
	TrustedProxies []netip.Prefix
	// Forwarded adds an RFC 7239 Forwarded header besides the X-Forwarded-*
	// headers.
	Forwarded bool
	// StickyKey signs the StickyInsert cookie. Instances that share it
	// honour each other's cookies. Nil means a random key per Balancer, so
	// cookies survive neither a restart nor another instance; when given
	// it must be at least 16 bytes.
	StickyKey []byte
	// MaxSessions bounds the built-in session table (StickyLearn), as
	// 64 shards of MaxSessions/64 each; a new session in a full shard
	// evicts a nearby session closest to expiry (for equal TTLs, about the
	// least recently used). Zero means 1,048,576. Ignored when Sessions is
	// set.
	MaxSessions int
	// Sessions stores learned sessions. Nil means a built-in in-memory
	// table. It is fixed at New (see Balancer.Update).
	Sessions SessionStore
	// Tenants resolves a request's tenant for TenantRange. Nil means
	// PathTenants{} (Carbon's "/t/<domain>/" convention with no domain
	// known: only the super tenant and unknown tenants).
	Tenants TenantResolver
	// Transport sends requests and HTTP health probes to backends. Nil
	// means the built-in client, one per distinct Timeouts: requests
	// without a body or with one of known length up to 64 KiB are sent on
	// the request's own goroutine over pooled keep-alive connections (TLS
	// for https backends), the others through an *http.Transport tuned for
	// proxying (keep-alive, no compression). When
	// set, Timeouts.Dial,
	// Timeouts.Write and Timeouts.Read between body reads are up to it. It
	// is fixed at New (see Balancer.Update).
	Transport http.RoundTripper
	// TLSClientConfig is used for https backends by the built-in transport.
	// Nil means the default (verify against system roots). Fixed at New (see Balancer.Update).
	TLSClientConfig *tls.Config
	// MaxIdleConnsPerHost is the number of idle keep-alive connections kept
	// per backend. Zero means 256. Fixed at New (see Balancer.Update).
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes idle backend connections. Zero means 90
	// seconds; a service whose Timeouts.Read is shorter than twice it uses
	// Read/2. Fixed at New (see Balancer.Update).
	IdleConnTimeout time.Duration
	// Upgrades are the protocols a client may switch to through the
	// balancer (the Upgrade header, RFC 9110 section 7.8), compared
	// case-insensitively; an Upgrade request for any other is sent to the
	// backend as a plain request, without Upgrade. Nil means
	// {"websocket"}: as nginx and HAProxy do, "h2c" is not passed, since a
	// backend speaking HTTP/2 on that connection would no longer be seen
	// by the balancer (h2c smuggling).
	Upgrades []string
	// Logger receives health changes at Info and Warn and, at Debug, one
	// access-log record per request (service, backend, status, duration,
	// sticky outcome). Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a Config with one default service "default" on pool
// "default", learning JSESSIONID, with the defaults of DefaultService.
func DefaultConfig() Config {
	svc := DefaultService("default", "default")
	svc.Default = true
	return Config{
		Services:            []Service{svc},
		Name:                "carbonlb",            // X-Forwarded-Server
		Upgrades:            []string{"websocket"}, // no h2c
		MaxSessions:         1 << 20,               // about 50 MB of session table at most
		MaxIdleConnsPerHost: 256,                   // enough for a saturated 2-core proxy
		IdleConnTimeout:     90 * time.Second,      // as net/http's DefaultTransport
	}
}

// DefaultService returns a service with the seeds' settings: learn
// JSESSIONID, round robin, 5-minute read and write timeouts, passive health,
// and 3 tries.
func DefaultService(name, pool string, hosts ...string) Service {
	return Service{
		Name:  name,
		Hosts: hosts,
		Pool:  pool,
		Sticky: Sticky{
			Mode:      StickyLearn,
			Cookie:    "JSESSIONID",     // Tomcat and Carbon
			PathParam: "jsessionid",     // Tomcat URL rewriting
			TTL:       30 * time.Minute, // Tomcat's default session timeout
			Insert:    Cookie{Name: "CARBONLB", Path: "/"},
		},
		Timeouts:          DefaultTimeouts(),
		Health:            DefaultHealthCheck(),
		Retry:             Retry{Attempts: 3, Timeout: 15 * time.Second},
		ClientBodyTimeout: 60 * time.Second,                            // nginx client_body_timeout
		Queue:             Queue{Max: 1024, Timeout: 10 * time.Second}, // used with MaxConns only
	}
}

// DefaultTimeouts returns the seeds' timeouts.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Dial:  10 * time.Second, // a dead host answers no SYN; do not wait nginx's 60 s
		Read:  5 * time.Minute,  // proxy_read_timeout 5m
		Write: 5 * time.Minute,  // proxy_send_timeout 5m
	}
}

// DefaultHealthCheck returns passive checks only (nginx's max_fails=1
// fail_timeout=10s) with the active-check knobs filled for CheckHTTP.
func DefaultHealthCheck() HealthCheck {
	return HealthCheck{
		Active:      CheckNone,       // membership usually feeds liveness
		Path:        "/",             // Carbon answers / on every node
		Interval:    5 * time.Second, // a probe every 5 s per backend
		Timeout:     2 * time.Second, // a healthy node answers in well under that
		Rise:        2,               // two good probes to come back
		Fall:        3,               // three bad probes to go down
		Jitter:      500 * time.Millisecond,
		MaxFails:    1,                // one failed request marks the node down...
		FailTimeout: 10 * time.Second, // ...for 10 s, then one trial request
	}
}

// ErrConfig is wrapped by every error New and Update return for a bad
// Config; a *ConfigError gives the detail.
var ErrConfig = errors.New("balancer: invalid config")

// ConfigError reports a bad Config field.
type ConfigError struct {
	Service string // the service's name, or "" for a top-level field
	Field   string // the field, e.g. "Hosts[1]"
	Err     error  // what is wrong
}

// Error implements error.
func (e *ConfigError) Error() string {
	if e.Service == "" {
		return "balancer: config " + e.Field + ": " + e.Err.Error()
	}
	return "balancer: service " + strconv.Quote(e.Service) + ": " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns the reason.
func (e *ConfigError) Unwrap() error { return e.Err }

// Is reports whether target is ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// tenantRange is a parsed loadbalancer.conf tenant_range.
type tenantRange struct {
	all      bool
	min, max int
}

func parseTenantRange(s string) (tenantRange, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return tenantRange{all: true}, nil
	}
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		hi = lo
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || a > b {
		return tenantRange{}, fmt.Errorf("tenant range %q: want \"*\", \"N\" or \"N-M\" with N <= M", s)
	}
	return tenantRange{min: a, max: b}, nil
}

func (t tenantRange) match(id int, known bool) bool {
	if t.all {
		return true
	}
	return known && id >= t.min && id <= t.max
}

// normalize fills zero fields with defaults and validates; it returns a
// deep copy so the caller's slices are not shared.
func (c Config) normalize() (Config, error) {
	out := c
	dc := DefaultConfig()
	if out.Name == "" {
		out.Name = dc.Name
	}
	if out.MaxSessions < 0 {
		return out, &ConfigError{Field: "MaxSessions", Err: errors.New("negative")}
	}
	if out.MaxSessions == 0 {
		out.MaxSessions = dc.MaxSessions
	}
	if out.MaxIdleConnsPerHost <= 0 {
		out.MaxIdleConnsPerHost = dc.MaxIdleConnsPerHost
	}
	if out.IdleConnTimeout <= 0 {
		out.IdleConnTimeout = dc.IdleConnTimeout
	}
	if out.StickyKey != nil && len(out.StickyKey) < 16 {
		return out, &ConfigError{Field: "StickyKey", Err: errors.New("shorter than 16 bytes")}
	}
	out.StickyKey = append([]byte(nil), c.StickyKey...)
	if c.StickyKey == nil {
		out.StickyKey = nil
	}
	out.TrustedProxies = append([]netip.Prefix(nil), c.TrustedProxies...)
	for i, p := range out.TrustedProxies {
		if !p.IsValid() {
			return out, &ConfigError{Field: "TrustedProxies[" + strconv.Itoa(i) + "]", Err: errors.New("invalid prefix")}
		}
		out.TrustedProxies[i] = p.Masked()
	}
	if c.Upgrades == nil {
		out.Upgrades = dc.Upgrades
	} else {
		out.Upgrades = make([]string, len(c.Upgrades))
		for i, u := range c.Upgrades {
			u = strings.ToLower(strings.TrimSpace(u))
			if u == "" || strings.ContainsAny(u, " ,\t") {
				return out, &ConfigError{Field: "Upgrades[" + strconv.Itoa(i) + "]", Err: fmt.Errorf("%q is not a protocol name", c.Upgrades[i])}
			}
			out.Upgrades[i] = u
		}
	}
	out.Services = make([]Service, len(c.Services))
	names := map[string]bool{}
	hosts := map[string]string{}
	def := ""
	for i, s := range c.Services {
		s, err := s.normalize()
		if err != nil {
			return out, err
		}
		if names[s.Name] {
			return out, &ConfigError{Service: s.Name, Field: "Name", Err: errors.New("duplicate service name")}
		}
		names[s.Name] = true
		if s.Default {
			if def != "" {
				return out, &ConfigError{Service: s.Name, Field: "Default", Err: fmt.Errorf("service %q is already the default", def)}
			}
			def = s.Name
		}
		tr, _ := parseTenantRange(s.TenantRange)
		for _, h := range s.Hosts {
			// Two services may share a host only when tenant ranges tell
			// them apart; an "all tenants" service shadows later ones.
			if prev, ok := hosts[h]; ok && prev != "" {
				return out, &ConfigError{Service: s.Name, Field: "Hosts", Err: fmt.Errorf("host %q is already served for all tenants by service %q", h, prev)}
			}
			if tr.all {
				hosts[h] = s.Name
			} else if _, ok := hosts[h]; !ok {
				hosts[h] = ""
			}
		}
		out.Services[i] = s
	}
	return out, nil
}

func (s Service) normalize() (Service, error) {
	ds := DefaultService(s.Name, s.Pool) // the defaults, written once there
	bad := func(field string, err error) (Service, error) {
		return s, &ConfigError{Service: s.Name, Field: field, Err: err}
	}
	if s.Name == "" {
		return bad("Name", errors.New("empty"))
	}
	if s.Pool == "" {
		return bad("Pool", errors.New("empty"))
	}
	if len(s.Hosts) == 0 && !s.Default {
		return bad("Hosts", errors.New("no hosts and not the default service"))
	}
	hosts := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, " /:\t") {
			return bad("Hosts["+strconv.Itoa(i)+"]", fmt.Errorf("%q is not a host name (want \"name.example.com\" or \"*.example.com\", no port)", s.Hosts[i]))
		}
		if strings.Contains(h, "*") && (!strings.HasPrefix(h, "*.") || strings.Count(h, "*") > 1 || len(h) < 3) {
			return bad("Hosts["+strconv.Itoa(i)+"]", fmt.Errorf("%q: a wildcard must be a leading \"*.\"", s.Hosts[i]))
		}
		hosts[i] = h
	}
	s.Hosts = hosts
	if _, err := parseTenantRange(s.TenantRange); err != nil {
		return bad("TenantRange", err)
	}
	if s.MinInstances < 0 {
		return bad("MinInstances", errors.New("negative"))
	}
	s.AllowCIDRs = append([]netip.Prefix(nil), s.AllowCIDRs...)
	for i, p := range s.AllowCIDRs {
		if !p.IsValid() {
			return bad("AllowCIDRs["+strconv.Itoa(i)+"]", errors.New("invalid prefix"))
		}
		s.AllowCIDRs[i] = p.Masked()
	}
	if s.Sticky.Mode < StickyOff || s.Sticky.Mode > StickyInsert {
		return bad("Sticky.Mode", fmt.Errorf("unknown mode %d", s.Sticky.Mode))
	}
	if s.Sticky.Cookie == "" {
		s.Sticky.Cookie = ds.Sticky.Cookie
	}
	if !validCookieName(s.Sticky.Cookie) {
		return bad("Sticky.Cookie", fmt.Errorf("%q is not a cookie name", s.Sticky.Cookie))
	}
	if s.Sticky.PathParam == "" {
		s.Sticky.PathParam = ds.Sticky.PathParam
	}
	if s.Sticky.TTL < 0 {
		return bad("Sticky.TTL", errors.New("negative"))
	}
	if s.Sticky.TTL == 0 {
		s.Sticky.TTL = ds.Sticky.TTL
	}
	ck := &s.Sticky.Insert
	if ck.Name == "" {
		ck.Name = ds.Sticky.Insert.Name
	}
	if !validCookieName(ck.Name) {
		return bad("Sticky.Insert.Name", fmt.Errorf("%q is not a cookie name", ck.Name))
	}
	if ck.Path == "" {
		ck.Path = ds.Sticky.Insert.Path
	}
	if strings.ContainsAny(ck.Path+ck.Domain, ";\r\n") {
		return bad("Sticky.Insert", errors.New("the Path and Domain attributes must not contain ';' or line breaks"))
	}
	if ck.MaxAge < 0 {
		return bad("Sticky.Insert.MaxAge", errors.New("negative"))
	}
	if s.Policy < RoundRobin || s.Policy > PowerOfTwo {
		return bad("Policy", fmt.Errorf("unknown policy %d", s.Policy))
	}
	t := &s.Timeouts
	if t.Dial < 0 || t.Read < 0 || t.Write < 0 {
		return bad("Timeouts", errors.New("negative duration"))
	}
	if t.Dial == 0 {
		t.Dial = ds.Timeouts.Dial
	}
	if t.Read == 0 {
		t.Read = ds.Timeouts.Read
	}
	if t.Write == 0 {
		t.Write = ds.Timeouts.Write
	}
	h := &s.Health
	if h.Active < CheckNone || h.Active > CheckTCP {
		return bad("Health.Active", fmt.Errorf("unknown check kind %d", h.Active))
	}
	if h.Path == "" {
		h.Path = ds.Health.Path
	}
	if !strings.HasPrefix(h.Path, "/") {
		return bad("Health.Path", fmt.Errorf("%q does not start with /", h.Path))
	}
	h.Statuses = append([]int(nil), h.Statuses...)
	for _, st := range h.Statuses {
		if st < 100 || st > 599 {
			return bad("Health.Statuses", fmt.Errorf("%d is not an HTTP status", st))
		}
	}
	h.FailStatuses = append([]int(nil), h.FailStatuses...)
	for _, st := range h.FailStatuses {
		if st < 100 || st > 599 {
			return bad("Health.FailStatuses", fmt.Errorf("%d is not an HTTP status", st))
		}
	}
	if h.Interval < 0 || h.Timeout < 0 || h.Jitter < 0 || h.FailTimeout < 0 || h.SlowStart < 0 || h.Rise < 0 || h.Fall < 0 {
		return bad("Health", errors.New("negative value"))
	}
	if h.Interval == 0 {
		h.Interval = ds.Health.Interval
	}
	if h.Timeout == 0 {
		h.Timeout = ds.Health.Timeout
	}
	if h.Rise == 0 {
		h.Rise = ds.Health.Rise
	}
	if h.Fall == 0 {
		h.Fall = ds.Health.Fall
	}
	if h.MaxFails == 0 {
		h.MaxFails = ds.Health.MaxFails
	}
	if h.FailTimeout == 0 {
		h.FailTimeout = ds.Health.FailTimeout
	}
	if s.Retry.Attempts < 0 || s.Retry.Timeout < 0 {
		return bad("Retry", errors.New("negative value"))
	}
	if s.Retry.Attempts == 0 {
		s.Retry.Attempts = ds.Retry.Attempts
	}
	if s.Retry.Timeout == 0 {
		s.Retry.Timeout = ds.Retry.Timeout
	}
	if s.MaxBodyBytes < 0 {
		return bad("MaxBodyBytes", errors.New("negative"))
	}
	if s.ClientBodyTimeout < 0 {
		return bad("ClientBodyTimeout", errors.New("negative"))
	}
	if s.ClientBodyTimeout == 0 {
		s.ClientBodyTimeout = ds.ClientBodyTimeout
	}
	if s.MaxConns < 0 {
		return bad("MaxConns", errors.New("negative"))
	}
	if s.Queue.Timeout < 0 {
		return bad("Queue.Timeout", errors.New("negative"))
	}
	if s.Queue.Max == 0 {
		s.Queue.Max = ds.Queue.Max
	}
	if s.Queue.Timeout == 0 {
		s.Queue.Timeout = ds.Queue.Timeout
	}
	return s, nil
}

// validCookieName reports whether s is an RFC 6265 token.
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
