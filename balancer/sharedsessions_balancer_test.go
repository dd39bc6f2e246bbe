package balancer

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newLogoutNode is a carbonNode that also ends a session: "/logout" answers
// with the session's cookie expired, as Tomcat does on invalidate.
func newLogoutNode(t *testing.T, name string) *carbonNode {
	t.Helper()
	n := &carbonNode{name: name, issued: map[string]bool{}}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("JSESSIONID"); err == nil && r.URL.Path == "/logout" {
			w.Header().Set("X-Backend", n.name)
			w.Header().Add("Set-Cookie", "JSESSIONID="+c.Value+"; Path=/; Max-Age=0")
			return
		}
		n.serve(w, r)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

// TestSessionTableBalancer shares the sessions one balancer learns with
// another, over real backends.
func TestSessionTableBalancer(t *testing.T) {
	nodes := []*carbonNode{newLogoutNode(t, "n1"), newLogoutNode(t, "n2")}
	backends := []Backend{nodes[0].backend(), nodes[1].backend()}
	var log1, log2 changeLog
	tab1, tab2 := NewSessionTable(0, log1.add), NewSessionTable(0, log2.add)
	start := func(tab *SessionTable) (*Balancer, *httptest.Server, *http.Client) {
		cfg := testConfig(StickyLearn)
		cfg.Sessions = tab
		lb := mustNew(t, cfg)
		if err := lb.SetBackends("p", backends); err != nil {
			t.Fatal(err)
		}
		front, c := newFront(t, lb)
		return lb, front, c
	}
	lb1, front1, c1 := start(tab1)
	lb2, front2, c2 := start(tab2)

	const n = 40
	issuer := map[string]string{}
	var want []SessionChange
	for range n {
		code, be, sc, _ := get(t, c1, front1.URL+"/", "")
		id := strings.TrimPrefix(cookiePair(sc, "JSESSIONID"), "JSESSIONID=")
		if code != 200 || id == "" {
			t.Fatalf("open session: status %d, Set-Cookie %q", code, sc)
		}
		issuer[id] = be
		want = append(want, SessionChange{Pool: "p", ID: id, Backend: be, TTL: 30 * time.Minute})
	}
	got := log1.take()
	byID := func(c []SessionChange) { sort.Slice(c, func(i, j int) bool { return c[i].ID < c[j].ID }) }
	byID(want)
	byID(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("changes of learned sessions (-want +got):\n%s", diff)
	}
	for _, c := range got {
		if err := tab2.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	for id, be := range issuer {
		if _, got, _, _ := get(t, c2, front2.URL+"/app", "", "JSESSIONID="+id); got != be {
			t.Errorf("the second balancer sent session %s to %s; it lives on %s", id, got, be)
		}
	}
	if f := nodes[0].foreign.Load() + nodes[1].foreign.Load(); f != 0 {
		t.Errorf("%d requests reached a node that did not issue their session", f)
	}
	if got := log2.take(); len(got) != 0 {
		t.Errorf("applied sessions and their lookups reported %+v", got)
	}
	pinned := func(lb *Balancer) map[string]int {
		st := lb.Status()
		m := map[string]int{"sessions": st.Sessions}
		for _, p := range st.Pools {
			for _, be := range p.Backends {
				m[be.ID] += be.Pinned
			}
		}
		return m
	}
	wantPinned := map[string]int{"sessions": n}
	for _, be := range issuer {
		wantPinned[be]++
	}
	for i, lb := range []*Balancer{lb1, lb2} {
		if diff := cmp.Diff(wantPinned, pinned(lb)); diff != "" {
			t.Errorf("balancer %d: Status sessions and pinned (-want +got):\n%s", i+1, diff)
		}
	}

	// A session the application ends is forgotten, and the change says so.
	var id string
	for id = range issuer {
		break
	}
	if _, be, sc, _ := get(t, c1, front1.URL+"/logout", "", "JSESSIONID="+id); be != issuer[id] || len(sc) != 1 {
		t.Fatalf("logout reached %s with Set-Cookie %q", be, sc)
	}
	if diff := cmp.Diff([]SessionChange{{Pool: "p", ID: id}}, log1.take()); diff != "" {
		t.Errorf("changes of a logout (-want +got):\n%s", diff)
	}
	if got := lb1.Status().Sessions; got != n-1 {
		t.Errorf("after logout the first balancer holds %d sessions, want %d", got, n-1)
	}
}

// TestSessionTableNotMade checks New refuses a SessionTable that was not
// made by NewSessionTable.
func TestSessionTableNotMade(t *testing.T) {
	for _, tab := range []*SessionTable{nil, {}} {
		cfg := testConfig(StickyLearn)
		cfg.Sessions = tab
		var ce *ConfigError
		if _, err := New(cfg); !errors.As(err, &ce) || ce.Field != "Sessions" {
			t.Errorf("New with Sessions %#v: %v, want a *ConfigError for Sessions", tab, err)
		}
	}
}
