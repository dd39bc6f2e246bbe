package standin

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Response headers a Node sets on every answer.
const (
	// HeaderNode names the node that answered.
	HeaderNode = "X-Carbon-Node"
	// HeaderSession is the session the request belongs to.
	HeaderSession = "X-Carbon-Session"
	// HeaderNewSession is "true" when the node created the session for
	// this request, "false" when it knew it.
	HeaderNewSession = "X-Carbon-New-Session"
	// HeaderBalancer echoes the request's X-Forwarded-Server: the balancer
	// instance that forwarded it.
	HeaderBalancer = "X-Carbon-Balancer"
)

// SessionCookie is the name of the session cookie Tomcat (and so Carbon)
// uses, and the path parameter of URL rewriting (";jsessionid=").
const SessionCookie = "JSESSIONID"

// Node is an http.Handler that behaves like a Carbon node's servlet
// container as far as a load balancer can tell. Its methods are safe for
// concurrent use.
type Node struct {
	name string
	ttl  time.Duration
	max  int

	mu       sync.Mutex
	sessions map[string]time.Time // session id → last access; guarded by mu
}

// NewNode returns a node called name (shown in every answer) that keeps at
// most 100,000 sessions, each for 30 minutes after its last request
// (Tomcat's default session timeout).
func NewNode(name string) *Node {
	return &Node{name: name, ttl: 30 * time.Minute, max: 100_000, sessions: make(map[string]time.Time)}
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Sessions returns the number of sessions the node holds.
func (n *Node) Sessions() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.sessions)
}

// ServeHTTP answers r with the node's name, creating a session when r
// carries none the node knows.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := requestSession(r)
	created := !n.touch(id)
	if created {
		id = n.create()
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", HttpOnly: true})
	}
	h := w.Header()
	h.Set(HeaderNode, n.name)
	h.Set(HeaderSession, id)
	h.Set(HeaderNewSession, fmt.Sprint(created))
	if v := r.Header.Get("X-Forwarded-Server"); v != "" {
		h.Set(HeaderBalancer, v)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "%s\n", n.name)
}

// requestSession returns the session id of r, from the JSESSIONID cookie
// or the ";jsessionid=" path parameter, or "".
func requestSession(r *http.Request) string {
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		return c.Value
	}
	p := r.URL.EscapedPath()
	if i := strings.Index(strings.ToLower(p), ";jsessionid="); i >= 0 {
		v := p[i+len(";jsessionid="):]
		if j := strings.IndexAny(v, ";/?"); j >= 0 {
			v = v[:j]
		}
		return v
	}
	return ""
}

// touch extends session id and reports whether the node knew it.
func (n *Node) touch(id string) bool {
	if id == "" {
		return false
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	last, ok := n.sessions[id]
	if !ok || now.Sub(last) > n.ttl {
		delete(n.sessions, id)
		return false
	}
	n.sessions[id] = now
	return true
}

// create makes a new session id and remembers it.
func (n *Node) create() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	id := strings.ToUpper(hex.EncodeToString(b[:]))
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.sessions) >= n.max {
		for k, last := range n.sessions {
			if now.Sub(last) > n.ttl {
				delete(n.sessions, k)
			}
		}
		for k := range n.sessions { // still full: drop any one
			if len(n.sessions) < n.max {
				break
			}
			delete(n.sessions, k)
		}
	}
	n.sessions[id] = now
	return id
}
