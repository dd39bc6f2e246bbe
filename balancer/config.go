package balancer

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/netip"
	"time"
)

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
	// Name, when set, is sent as X-Forwarded-Server: the balancer's own
	// name, as Apache mod_proxy sends its server name (the ha example
	// names each instance so). Zero sends the request's host name without
	// its port, as nginx's $host does in the seeds'
	// "proxy_set_header X-Forwarded-Server $host".
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
	// table. A *SessionTable is that table with its changes reported, so
	// that balancer instances can share their sessions; it is as fast, and
	// its size is its own (MaxSessions is ignored). It is fixed at New (see
	// Balancer.Update).
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
	// AccessLog receives one record per request at Info: client, host,
	// method, path, status, bytes_in, bytes_out, duration, service,
	// backend, sticky, retries and request_id (the request's
	// X-Request-ID, or a new random one, which is then also sent to the
	// backend), and err when a try failed. Nil turns it off. Give it a
	// slog.JSONHandler for JSON lines.
	AccessLog *slog.Logger
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
		Name:                "",                    // X-Forwarded-Server: the request's host, as nginx's $host
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
