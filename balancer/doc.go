// Package balancer is a sticky, service-aware HTTP(S) load balancer: an
// [net/http.Handler] that does what the NGINX Plus, WSO2 ELB and AWS ELB
// configurations of a Carbon cluster do — the management host to the
// manager node, the service hosts to the workers, every session pinned to
// one node by its JSESSIONID, node failures hidden from users.
//
// A program creates a Balancer from a [Config], serves it from any
// [net/http.Server] or from the package's own HTTP/1.1 engine, [Server]
// (leaner than net/http's server, the same decisions; HTTP/2 handed to an
// http.Server), and feeds it backends with [Balancer.SetBackends] (from
// cluster membership, a file, or a flag):
//
//	cfg := balancer.DefaultConfig()
//	cfg.Services = []balancer.Service{
//		balancer.DefaultService("esb", "wso2.esb.domain/worker", "esb.example.com"),
//		balancer.DefaultService("mgt", "wso2.esb.domain/mgt", "mgt.esb.example.com"),
//	}
//	lb, err := balancer.New(cfg)
//	...
//	defer lb.Close()
//	lb.SetBackends("wso2.esb.domain/worker", []balancer.Backend{
//		{ID: "w1", URL: "http://10.0.0.11:8280"},
//		{ID: "w2", URL: "http://10.0.0.12:8280"},
//	})
//	http.ListenAndServe(":80", lb) // or: ln, _ := net.Listen("tcp", ":80"); lb.Serve(ln)
//
// # Routing
//
// The request's Host (port ignored, case-insensitive) selects a [Service]:
// exact names first, then "*.example.com" wildcards from the most specific,
// then the default service. Among services sharing a host, the first whose
// TenantRange holds the request's tenant (from the [TenantResolver]; Carbon's
// "/t/<domain>/" by default) wins. A service names a pool of backends,
// conventionally "domain/subDomain". Clients outside AllowCIDRs get 403.
//
// # Stickiness
//
// [StickyLearn] learns the session id from the backend's Set-Cookie and
// routes requests carrying it (cookie or ";jsessionid=" path parameter) to
// that backend. Sessions live in a sharded table with a sliding TTL and a
// bounded size (the session closest to expiry is evicted first), behind the
// [SessionStore] interface. [StickyInsert] sets the balancer's
// own HMAC-signed cookie naming the backend; balancer instances sharing
// Config.StickyKey agree on it. A learned session whose backend is down or
// removed is re-pinned to a live backend and the new pin is learned. A
// learn-mode id the balancer never learned is balanced by the policy and not
// stored (sessions come only from a backend's Set-Cookie), so clients cannot
// flood the table; Sticky.PinUnknown opts into pinning such ids.
// A draining backend keeps its sessions and gets no new ones.
//
// Balancer instances share learned sessions through a [SessionTable] set
// as Config.Sessions: it reports each new pin, re-pin, forget and (once
// per quarter of the TTL) refresh to a callback that hands it to whatever
// carries it to the other instances, such as cluster membership; they
// replay it with [SessionTable.Apply], and [SessionTable.All] gives a
// joining instance the whole table. Each instance expires and evicts
// sessions on its own. The package knows no transport.
//
// # Health and retries
//
// Active checks (HTTP or TCP, rise/fall, jitter) run per pool in one
// goroutine per backend; passive checks mark a backend down after
// consecutive transport errors (and, with HealthCheck.FailStatuses,
// responses such as 502, 503, 504) for a cool-off, then let one trial
// request decide. Timeouts.Read and Timeouts.Write bound the time between
// two reads and two writes on a backend connection, as nginx's
// proxy_read_timeout and proxy_send_timeout do. A request none of which
// reached a backend is retried on another whatever its method; an
// idempotent one also after a transport error that came before any byte of
// a response, within Service.Retry; a POST whose bytes may have reached a
// backend never is. A body of known length up to 64 KiB is read whole
// before a backend is chosen, so it can be sent again; a longer or chunked
// body is streamed and never replayed once read. A client's fault — a
// malformed, oversized, stalled (Service.ClientBodyTimeout) or abandoned
// body — ends its request with 400, 413, 408 or no response, and never
// counts against a backend. Service.MaxConns bounds the requests a backend
// serves at once; the others wait in a bounded queue (Service.Queue). When
// nothing can serve, the client gets 502, 503 or 504 with a short text
// body. The exact rules are tables in docs/balancer.md.
//
// # Forwarding
//
// Host is preserved; X-Forwarded-For is appended (a client's own value is
// kept only when the peer is in Config.TrustedProxies, as is its RFC 7239
// Forwarded); X-Forwarded-Host, X-Forwarded-Server, X-Forwarded-Proto and
// optionally Forwarded are set; hop-by-hop headers are removed; Upgrade
// passes through for WebSocket only (Config.Upgrades); responses without a
// length are flushed as they arrive; no header the backend did not send is
// added to its response.
//
// # Concurrency and ownership
//
// All methods are safe for concurrent use. The request path reads an
// immutable snapshot through an atomic pointer; [Balancer.Update] and
// [Balancer.SetBackends] build a new snapshot. The decisions (virtual host
// to service, sticky lookup and learn, policy, health, retry budget) work
// on plain values, apart from net/http's types. [Balancer.Close] stops the
// health checkers and upgraded connections and waits for them; the caller
// owns its listeners and servers. TLS certificates by SNI come from a
// [CertStore]; the certificates trusted for https backends, when they are
// not the system's roots, from a [TrustStore].
package balancer
