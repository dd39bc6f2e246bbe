package balancer

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

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

// decision is the result of routing a request in the core. A decision with
// a backend holds one of its request slots (backend.claim): whoever receives
// it must call backend.release(trial) exactly once.
type decision struct {
	backend *backend
	trial   uint64 // the trial ticket the request holds, or 0
	outcome stickyOutcome
	pin     bool // the caller must set the insert cookie / learn the pin
	full    bool // no backend: the ones that would do are at their connection limit
	// await: the session id is unknown and may be on its way from another
	// instance (Sticky.Await): the caller waits for it, then decides again
	// with wait false.
	await bool
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

// goneBackend stands for the backend of a session that no backend of the
// pool can serve any more: the session is re-pinned.
var goneBackend = func() *backend {
	b := &backend{}
	b.removed.Store(true)
	return b
}()

// routeOf returns the route of a Tomcat session id: the part after its
// first '.', or "".
func routeOf(id string) string {
	if i := strings.IndexByte(id, '.'); i >= 0 {
		return id[i+1:]
	}
	return ""
}

// decide routes one request: sessionID is the StickyLearn id (or ""),
// token the StickyInsert cookie value (or "").
func (b *Balancer) decide(s *service, p *pool, sessionID, token string, now int64, tried []*backend, wait bool) decision {
	switch s.Sticky.Mode {
	case StickyLearn:
		if sessionID == "" {
			break
		}
		var be *backend
		if rb := p.byRoute[routeOf(sessionID)]; rb != nil {
			if got, t, out, full := s.stickyBackend(now, rb, tried); got != nil || full {
				return decision{backend: got, trial: t, outcome: out, full: full}
			}
			// The route's backend is down, gone or failed this request:
			// a re-pin in the table takes over, as for a learned session.
			be = goneBackend
		}
		if id, ok := b.lookup(p.name, sessionID, s.Sticky.TTL, now); ok {
			be = p.byID[id]
			if be == nil {
				be = goneBackend // pinned to a backend that left the pool
			}
		} else if be == nil && wait && s.Sticky.Await > 0 && b.shared != nil {
			return decision{await: true}
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

// lookup and pin use the built-in table's clock-free path when it, or a
// SessionTable, is the store.
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

// expiresNow reports whether a Set-Cookie line deletes the cookie.
func expiresNow(line string) bool {
	l := strings.ToLower(line)
	return strings.Contains(l, "max-age=0") || strings.Contains(l, "max-age=-")
}

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
	// Await, in StickyLearn mode with a SessionTable as Config.Sessions
	// (instances that share learned sessions), is the longest a request
	// waits for a session id the table does not hold to arrive from
	// another instance (SessionTable.Apply) before it is balanced as
	// unknown. It covers the replication lag: a session learned by another
	// instance an instant before, whose next request came here sooner
	// than the change did. A request waits only on its first try, never
	// for an id whose route names a backend, and takes no backend while it
	// waits; ids that never arrive (expired sessions, made-up ids) cost
	// their request this delay. Zero means no wait. At most 1 second.
	Await time.Duration
}
