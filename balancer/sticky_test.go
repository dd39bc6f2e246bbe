package balancer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStickyLearn1000 opens 1000 sessions the way a browser does and
// checks every later request of each session reaches the node that issued
// its JSESSIONID, by cookie and by ";jsessionid=" path parameter.
func TestStickyLearn1000(t *testing.T) {
	nodes := []*carbonNode{newCarbonNode(t, "n1"), newCarbonNode(t, "n2"), newCarbonNode(t, "n3")}
	lb := mustNew(t, testConfig(StickyLearn))
	if err := lb.SetBackends("p", []Backend{nodes[0].backend(), nodes[1].backend(), nodes[2].backend()}); err != nil {
		t.Fatal(err)
	}
	front, c := newFront(t, lb)
	type sess struct{ cookie, issuer string }
	var sessions []sess
	perNode := map[string]int{}
	for range 1000 {
		code, be, sc, _ := get(t, c, front.URL+"/", "")
		ck := cookiePair(sc, "JSESSIONID")
		if code != 200 || ck == "" {
			t.Fatalf("open session: status %d, Set-Cookie %q", code, sc)
		}
		sessions = append(sessions, sess{ck, be})
		perNode[be]++
	}
	for _, n := range nodes {
		if perNode[n.name] < 200 {
			t.Errorf("node %s issued %d of 1000 sessions; want a fair share", n.name, perNode[n.name])
		}
	}
	for i, s := range sessions {
		_, be, _, _ := get(t, c, front.URL+"/app", "", "other=1", s.cookie)
		if be != s.issuer {
			t.Fatalf("session %d: reached %s, issued by %s", i, be, s.issuer)
		}
		if i%10 == 0 { // Tomcat URL rewriting
			id := strings.TrimPrefix(s.cookie, "JSESSIONID=")
			_, be, _, _ := get(t, c, front.URL+"/app/page;jsessionid="+id+"?x=1", "")
			if be != s.issuer {
				t.Fatalf("session %d by path parameter: reached %s, issued by %s", i, be, s.issuer)
			}
		}
	}
	var foreign int64
	for _, n := range nodes {
		foreign += n.foreign.Load()
	}
	if foreign != 0 {
		t.Errorf("%d requests reached a node that did not issue their session", foreign)
	}
	st := lb.Status()
	if st.Sessions != 1000 {
		t.Errorf("Status.Sessions = %d, want 1000", st.Sessions)
	}
	pinned := 0
	for _, b := range st.Pools[0].Backends {
		pinned += b.Pinned
	}
	if pinned != 1000 {
		t.Errorf("pinned sessions over backends = %d, want 1000", pinned)
	}
	if st.Services[0].StickyHits != 1100 {
		t.Errorf("sticky hits = %d, want 1100", st.Services[0].StickyHits)
	}
}

// TestStickyInsert1000 checks the balancer's own cookie pins 1000 sessions,
// that a second instance sharing the key honours it, and that a forged
// cookie is ignored and re-pinned.
func TestStickyInsert1000(t *testing.T) {
	nodes := []*carbonNode{newCarbonNode(t, "n1"), newCarbonNode(t, "n2")}
	cfg := testConfig(StickyInsert)
	cfg.StickyKey = []byte("0123456789abcdef0123456789abcdef")
	cfg.Services[0].Sticky.Insert.SameSite = http.SameSiteLaxMode
	lb1 := mustNew(t, cfg)
	lb2 := mustNew(t, cfg)
	for _, lb := range []*Balancer{lb1, lb2} {
		if err := lb.SetBackends("p", []Backend{nodes[0].backend(), nodes[1].backend()}); err != nil {
			t.Fatal(err)
		}
	}
	f1, c := newFront(t, lb1)
	f2, _ := newFront(t, lb2)
	type sess struct{ lb, js, issuer string }
	var sessions []sess
	for i := range 1000 {
		code, be, sc, _ := get(t, c, f1.URL+"/", "")
		lbc, js := cookiePair(sc, "CARBONLB"), cookiePair(sc, "JSESSIONID")
		if code != 200 || lbc == "" || js == "" {
			t.Fatalf("open session: status %d, Set-Cookie %q", code, sc)
		}
		if i == 0 {
			line := ""
			for _, l := range sc {
				if strings.HasPrefix(l, "CARBONLB=") {
					line = l
				}
			}
			for _, want := range []string{"; Path=/", "; HttpOnly", "; SameSite=Lax"} {
				if !strings.Contains(line, want) {
					t.Errorf("cookie %q lacks %q", line, want)
				}
			}
			if strings.Contains(line, "Secure") {
				t.Errorf("cookie %q is Secure over plain HTTP", line)
			}
			for _, n := range nodes {
				if strings.Contains(line, strings.TrimPrefix(n.srv.URL, "http://")) {
					t.Errorf("cookie %q reveals a backend address", line)
				}
			}
		}
		sessions = append(sessions, sess{lbc, js, be})
	}
	for i, s := range sessions {
		front := f1
		if i%2 == 1 {
			front = f2 // the other instance, no shared state but the key
		}
		code, be, sc, _ := get(t, c, front.URL+"/", "", s.lb, s.js)
		if code != 200 || be != s.issuer {
			t.Fatalf("session %d: status %d, reached %s, issued by %s", i, code, be, s.issuer)
		}
		if cookiePair(sc, "CARBONLB") != "" {
			t.Fatalf("session %d: a valid cookie was re-issued", i)
		}
	}
	for _, n := range nodes {
		if f := n.foreign.Load(); f != 0 {
			t.Errorf("node %s: %d foreign sessions", n.name, f)
		}
	}
	// A forged cookie is ignored: the request is routed and re-pinned.
	code, _, sc, _ := get(t, c, f1.URL+"/", "", "CARBONLB=forged-value")
	if code != 200 || cookiePair(sc, "CARBONLB") == "" {
		t.Errorf("forged cookie: status %d, Set-Cookie %q; want 200 and a new cookie", code, sc)
	}
	// A key that differs makes the cookie stale: re-pinned, not trusted.
	other := cfg
	other.StickyKey = []byte("another key of sixteen or more bytes")
	lb3 := mustNew(t, other)
	lb3.SetBackends("p", []Backend{nodes[0].backend(), nodes[1].backend()})
	f3, _ := newFront(t, lb3)
	_, _, sc, _ = get(t, c, f3.URL+"/", "", sessions[0].lb)
	if cookiePair(sc, "CARBONLB") == "" {
		t.Errorf("a cookie signed with another key was honoured")
	}
}

func TestStickyOff(t *testing.T) {
	n1, n2 := newCarbonNode(t, "n1"), newCarbonNode(t, "n2")
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{n1.backend(), n2.backend()})
	front, c := newFront(t, lb)
	_, _, sc, _ := get(t, c, front.URL+"/", "")
	js := cookiePair(sc, "JSESSIONID")
	seen := map[string]int{}
	for range 10 {
		_, be, _, _ := get(t, c, front.URL+"/", "", js)
		seen[be]++
	}
	if seen["n1"] != 5 || seen["n2"] != 5 {
		t.Errorf("round robin without stickiness: %v, want 5 each", seen)
	}
	if lb.Status().Sessions != 0 {
		t.Errorf("sessions learned with stickiness off")
	}
}

// mapStore is a SessionStore shared by several balancers, standing for a
// replicated cache.
type mapStore struct {
	mu sync.Mutex // protects m
	m  map[string]string
}

func (s *mapStore) Lookup(pool, id string, _ time.Duration) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[pool+"\x00"+id]
	return b, ok
}

func (s *mapStore) Pin(pool, id, backendID string, _ time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[pool+"\x00"+id] = backendID
}

func (s *mapStore) Forget(pool, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, pool+"\x00"+id)
}

// TestSharedSessionStore: two learn-mode instances sharing a SessionStore
// honour each other's learned sessions.
func TestSharedSessionStore(t *testing.T) {
	n1, n2 := newCarbonNode(t, "n1"), newCarbonNode(t, "n2")
	store := &mapStore{m: map[string]string{}}
	cfg := testConfig(StickyLearn)
	cfg.Sessions = store
	a, b := mustNew(t, cfg), mustNew(t, cfg)
	for _, lb := range []*Balancer{a, b} {
		lb.SetBackends("p", []Backend{n1.backend(), n2.backend()})
	}
	fa, c := newFront(t, a)
	fb, _ := newFront(t, b)
	for i := range 20 {
		_, issuer, sc, _ := get(t, c, fa.URL+"/", "")
		ck := cookiePair(sc, "JSESSIONID")
		if _, be, _, _ := get(t, c, fb.URL+"/", "", ck); be != issuer {
			t.Fatalf("session %d learned by a, sent by b to %s, issued by %s", i, be, issuer)
		}
	}
	if st := a.Status(); st.Sessions != -1 {
		t.Errorf("Status.Sessions with a custom store = %d, want -1", st.Sessions)
	}
}

// TestStickyLearnUnknownIDs: ids the balancer never learned are balanced
// normally and not stored, so a client sending random JSESSIONIDs cannot
// push learned sessions out of a bounded table; PinUnknown restores
// pinning them.
func TestStickyLearnUnknownIDs(t *testing.T) {
	nodes := []*carbonNode{newCarbonNode(t, "n1"), newCarbonNode(t, "n2")}
	serve := func(lb *Balancer, cookie string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "http://app.example.com/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		lb.ServeHTTP(rec, req)
		return rec
	}
	for _, pinUnknown := range []bool{false, true} {
		t.Run(fmt.Sprintf("PinUnknown=%v", pinUnknown), func(t *testing.T) {
			cfg := testConfig(StickyLearn)
			cfg.MaxSessions = 64 * 16 // 16 per shard
			cfg.Services[0].Sticky.PinUnknown = pinUnknown
			lb := mustNew(t, cfg)
			lb.SetBackends("p", []Backend{nodes[0].backend(), nodes[1].backend()})
			type sess struct{ cookie, issuer string }
			var learned []sess
			for range 100 {
				rec := serve(lb, "")
				ck := cookiePair(rec.Header().Values("Set-Cookie"), "JSESSIONID")
				if rec.Code != 200 || ck == "" {
					t.Fatalf("open session: status %d, Set-Cookie %q", rec.Code, rec.Header().Values("Set-Cookie"))
				}
				learned = append(learned, sess{ck, rec.Header().Get("X-Backend")})
			}
			const unknown = 3000
			var ids []string
			for i := range unknown {
				id := fmt.Sprintf("%032X", uint64(i)*0x9e3779b97f4a7c15)
				ids = append(ids, id)
				if rec := serve(lb, "JSESSIONID="+id); rec.Code != 200 {
					t.Fatalf("unknown id %d: status %d", i, rec.Code)
				}
			}
			st := lb.Status()
			if got := st.Services[0].StickyMisses; got != unknown {
				t.Errorf("sticky misses = %d, want %d", got, unknown)
			}
			stored := 0
			for _, id := range ids {
				if _, ok := lb.sessions.Lookup("p", id, time.Minute); ok {
					stored++
				}
			}
			kept := 0
			for _, s := range learned {
				if rec := serve(lb, s.cookie); rec.Header().Get("X-Backend") == s.issuer {
					kept++
				}
			}
			if !pinUnknown {
				if stored != 0 || st.Sessions != len(learned) {
					t.Errorf("%d of %d unknown ids stored, table holds %d; want 0 and %d", stored, unknown, st.Sessions, len(learned))
				}
				if kept != len(learned) {
					t.Errorf("%d of %d learned sessions kept their backend after %d unknown ids", kept, len(learned), unknown)
				}
				return
			}
			// The opt-in stores unknown ids, filling the bounded table.
			if stored == 0 || st.Sessions != cfg.MaxSessions {
				t.Errorf("PinUnknown: %d unknown ids stored, table holds %d; want some and %d", stored, st.Sessions, cfg.MaxSessions)
			}
		})
	}
}
