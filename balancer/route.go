package balancer

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The decisions — virtual host to service (route.go, tenant.go), sticky
// lookup and learn (sticky.go, sessions.go), the policies (policy.go),
// backend state and health (backend.go, health.go), the retry budget
// (retry.go) — work on plain values (host, path, session id, client
// address). None of them uses net/http's request or response types, so
// another HTTP engine can drive the same core.

// pool is an immutable set of backends plus the round-robin state.
type pool struct {
	name     string
	backends []*backend
	byID     map[string]*backend
	byToken  map[string]*backend
	byRoute  map[string]*backend // Backend.Route → backend; nil when no backend has one

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
		if b.route != "" {
			if p.byRoute == nil {
				p.byRoute = make(map[string]*backend)
			}
			p.byRoute[b.route] = b
		}
	}
	return p
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

// why explains, for the 404 answer, why route found no service: no service
// claims the host, or the services that claim it take other tenants.
func (r *router) why(host string, tenant int, known bool, domain string) string {
	claimed := r.def != nil
	if _, ok := r.exact[host]; ok {
		claimed = true
	}
	for i := strings.IndexByte(host, '.'); i >= 0 && !claimed; {
		_, claimed = r.wildcard[host[i:]]
		j := strings.IndexByte(host[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	switch {
	case !claimed:
		return "no service for this host\n"
	case known:
		return "tenant " + strconv.Itoa(tenant) + " is outside every tenant range of this host\n"
	case domain != "":
		return "unknown tenant domain " + strconv.Quote(domain) + "\n"
	}
	return "no service for the super tenant on this host\n"
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
