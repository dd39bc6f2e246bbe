package balancer

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// tomcatNode answers like Tomcat with jvmRoute route: a request without a
// session gets a new id "<n>.<route>"; the response names the node.
func tomcatNode(t *testing.T, route string) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", route)
		if _, err := r.Cookie("JSESSIONID"); err != nil && !strings.Contains(r.URL.Path, ";jsessionid=") {
			w.Header().Set("Set-Cookie", "JSESSIONID=S"+string(rune('0'+n.Add(1)%10))+"."+route+"; Path=/")
		}
		io.WriteString(w, route+"\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRouteStickiness: a session id carrying a backend's route (Tomcat's
// jvmRoute) goes to that backend with no session table — in a balancer that
// never saw the session — by cookie and by ";jsessionid="; a route whose
// backend is down is re-pinned and stays re-pinned; an unknown route is
// balanced and not stored; ids of routed backends are not learned.
func TestRouteStickiness(t *testing.T) {
	a, b := tomcatNode(t, "node-a"), tomcatNode(t, "node-b")
	backends := []Backend{{ID: "a", URL: a.URL, Route: "node-a"}, {ID: "b", URL: b.URL, Route: "node-b"}}
	lb := mustNew(t, testConfig(StickyLearn))
	if err := lb.SetBackends("p", backends); err != nil {
		t.Fatal(err)
	}
	front, c := newFront(t, lb)

	for range 4 {
		if _, be, _, _ := get(t, c, front.URL+"/", "", "JSESSIONID=ABCDEF.node-b"); be != "node-b" {
			t.Fatalf("cookie routed to node-b went to %s", be)
		}
		if _, be, _, _ := get(t, c, front.URL+"/app;jsessionid=ABCDEF.node-a", ""); be != "node-a" {
			t.Fatalf("path parameter routed to node-a went to %s", be)
		}
	}
	// New sessions issued by the nodes carry their routes: nothing learned.
	for range 6 {
		get(t, c, front.URL+"/", "")
	}
	if n := lb.Status().Sessions; n != 0 {
		t.Errorf("%d sessions learned, want 0: routed ids need no table", n)
	}
	st := lb.Status().Services[0]
	if st.StickyHits != 8 || st.Repins != 0 {
		t.Errorf("hits %d, repins %d; want 8, 0", st.StickyHits, st.Repins)
	}

	// An unknown route: balanced, not stored.
	get(t, c, front.URL+"/", "", "JSESSIONID=XYZ.node-z")
	if n := lb.Status().Sessions; n != 0 {
		t.Errorf("an unknown route was stored: %d sessions", n)
	}

	// node-b down: its session is re-pinned to node-a and stays there.
	b.Close()
	for i := range 4 {
		code, be, _, _ := get(t, c, front.URL+"/", "", "JSESSIONID=ABCDEF.node-b")
		if code != 200 || be != "node-a" {
			t.Fatalf("request %d of a session of the dead node-b: %d from %q", i, code, be)
		}
	}
	if st := lb.Status().Services[0]; st.Repins != 1 {
		t.Errorf("repins = %d, want 1", st.Repins)
	}
}

func TestRouteErrors(t *testing.T) {
	lb := mustNew(t, testConfig(StickyLearn))
	for _, tc := range []struct {
		name     string
		backends []Backend
	}{
		{"duplicate route", []Backend{{ID: "a", URL: "http://127.0.0.1:1", Route: "r"}, {ID: "b", URL: "http://127.0.0.1:2", Route: "r"}}},
		{"semicolon", []Backend{{ID: "a", URL: "http://127.0.0.1:1", Route: "r;x"}}},
		{"space", []Backend{{ID: "a", URL: "http://127.0.0.1:1", Route: "r x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := lb.SetBackends("p", tc.backends); err == nil {
				t.Error("accepted")
			}
		})
	}
	if err := lb.SetBackends("p", []Backend{{ID: "a", URL: "http://127.0.0.1:1", Route: "node-a.eu"}}); err != nil {
		t.Errorf("a route with a dot: %v", err)
	}
	if got := routeOf("ABC.node-a.eu"); got != "node-a.eu" {
		t.Errorf("routeOf = %q", got)
	}
}
