package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	"github.com/carbonlb/carbonlb/examples/internal/tomcat"
)

// The tests against real Tomcat run two Tomcat 10 instances, node-a and
// node-b (jvmRoute node-a and node-b), with the counter page of package
// tomcat, behind the gateway's static mode run in-process. They skip when
// Tomcat is not installed, and fail then when CI is set (tomcat.Require).

// tomcatPair creates node-a and node-b and starts them in parallel.
func tomcatPair(t *testing.T, ctx context.Context) (a, b *tomcat.Instance) {
	t.Helper()
	tomcat.Require(t)
	a, b = tomcat.New(t, "node-a"), tomcat.New(t, "node-b")
	start := time.Now()
	if err := tomcat.StartAll(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	t.Logf("two Tomcats ready in %v (started in parallel)", time.Since(start).Round(time.Millisecond))
	return a, b
}

// backendSet is a -backends value for node-a and node-b, named.
type backendSet struct{ name, backends string }

// backendSets are the two ways of giving the gateway the Tomcats: plain
// URLs (the learned table alone) and name=URL (routes, the jvmRoutes).
func backendSets(a, b *tomcat.Instance) []backendSet {
	return []backendSet{
		{"learned", a.URL() + "," + b.URL()},
		{"routes", "node-a=" + a.URL() + ",node-b=" + b.URL()},
	}
}

// tomcatGateway is the gateway's static mode running in-process.
type tomcatGateway struct {
	url    string
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// startTomcatGateway runs the gateway in learn mode on listen in front of
// backends (the -backends flag), with the flags extra, until stop or the
// test's end. Its log goes to the test's output.
func startTomcatGateway(t *testing.T, listen, backends string, extra ...string) *tomcatGateway {
	t.Helper()
	o, err := parseFlags(append([]string{"-listen", listen, "-backends", backends, "-sticky", "learn"}, extra...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	o.ready = func(addr string) { ready <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	g := &tomcatGateway{cancel: cancel, done: make(chan error, 1)}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { g.done <- serve(ctx, o, logger) }()
	select {
	case g.addr = <-ready:
	case err := <-g.done:
		cancel()
		t.Fatalf("gateway: %v", err)
	}
	g.url = "http://" + g.addr
	t.Cleanup(func() { g.stop(t) })
	return g
}

// stop shuts the gateway down and waits for it; stopping it again does
// nothing.
func (g *tomcatGateway) stop(t *testing.T) {
	t.Helper()
	if g.done == nil {
		return
	}
	g.cancel()
	if err := <-g.done; err != nil {
		t.Errorf("gateway: %v", err)
	}
	g.done = nil
}

// tomcatClient is the users' HTTP client; the caller closes its idle
// connections.
func tomcatClient() (*http.Client, *http.Transport) {
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	return &http.Client{Transport: tr, Timeout: time.Minute}, tr
}

// tomcatUsers returns n users who keep cookies and n who do not (they
// follow the pages' links, with Tomcat's ";jsessionid="), against url.
func tomcatUsers(client *http.Client, url string, n int) []*tomcat.Session {
	var users []*tomcat.Session
	for i := range 2 * n {
		users = append(users, &tomcat.Session{Client: client, URL: url, Rewrite: i%2 == 1})
	}
	return users
}

// userName names user i of tomcatUsers in failures.
func userName(i int, s *tomcat.Session) string {
	if s.Rewrite {
		return fmt.Sprintf("user %d (links)", i)
	}
	return fmt.Sprintf("user %d (cookie)", i)
}

// checkSession reports the pages of one session that broke it: a page from
// another node or session, a counter that is not the previous one plus
// one, a session id without the node's jvmRoute, or (for a user without
// cookies) a link that does not carry the session.
func checkSession(pages []tomcat.Page, first int, rewrite bool) error {
	for i, p := range pages {
		if p.Node != pages[0].Node || p.Session != pages[0].Session {
			return fmt.Errorf("request %d: served by %s in session %s, the session was %s on %s",
				i+1, p.Node, p.Session, pages[0].Session, pages[0].Node)
		}
		if p.Count != first+i {
			return fmt.Errorf("request %d on %s: counter %d, want %d", i+1, p.Node, p.Count, first+i)
		}
		if !strings.HasSuffix(p.Session, "."+p.Node) {
			return fmt.Errorf("request %d: session %s from %s lacks its jvmRoute", i+1, p.Session, p.Node)
		}
		if rewrite && p.Link != tomcat.Path+";jsessionid="+p.Session {
			return fmt.Errorf("request %d: link %q does not carry session %s", i+1, p.Link, p.Session)
		}
	}
	return nil
}

// runUsers has every user send n requests, the users in parallel, each one
// request at a time, and appends the pages to pages[i].
func runUsers(ctx context.Context, users []*tomcat.Session, pages [][]tomcat.Page, n int) []error {
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			for range n {
				p, err := u.Get(ctx)
				if err != nil {
					errs[i] = fmt.Errorf("%s, request %d: %w", userName(i, u), len(pages[i])+1, err)
					return
				}
				pages[i] = append(pages[i], p)
			}
		})
	}
	wg.Wait()
	return errs
}

// TestTomcatSessionsStick sends 20 users by cookie and 20 by Tomcat's
// encodeURL links (";jsessionid=") 20 requests each through the gateway in
// learn mode, with the learned table alone and with routes (-backends
// node-a=…): every session stays on its node and its counter never breaks.
func TestTomcatSessionsStick(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	a, b := tomcatPair(t, ctx)
	client, tr := tomcatClient()
	defer tr.CloseIdleConnections()
	for _, tc := range backendSets(a, b) {
		t.Run(tc.name, func(t *testing.T) {
			g := startTomcatGateway(t, "127.0.0.1:0", tc.backends)
			const sessions, requests = 20, 20
			users := tomcatUsers(client, g.url, sessions)
			pages := make([][]tomcat.Page, len(users))
			start := time.Now()
			for _, err := range runUsers(ctx, users, pages, requests) {
				if err != nil {
					t.Error(err)
				}
			}
			elapsed := time.Since(start)
			perNode := map[string]int{}
			for i, u := range users {
				if len(pages[i]) == 0 {
					continue
				}
				perNode[pages[i][0].Node]++
				if err := checkSession(pages[i], 1, u.Rewrite); err != nil {
					t.Errorf("%s: %v", userName(i, u), err)
				}
			}
			if perNode["node-a"] == 0 || perNode["node-b"] == 0 {
				t.Errorf("sessions per node %v: want both nodes used", perNode)
			}
			t.Logf("%d sessions × %d requests (half by cookie, half by ;jsessionid= links) in %v; sessions per node %v",
				len(users), requests, elapsed.Round(time.Millisecond), perNode)
		})
	}
}

// tomcatLoad is users sending requests until stop, each one at a time and
// at most one per loadInterval, so that the load leaves the JVMs (and the
// other tests) some of the machine's cores.
type tomcatLoad struct {
	users []*tomcat.Session
	tick  chan struct{} // a request finished
	quit  chan struct{}
	once  sync.Once // closes quit
	wg    sync.WaitGroup

	mu    sync.Mutex
	pages [][]tomcat.Page // per user; guarded by mu
	tries []int           // requests finished per user, failed ones too; guarded by mu
	errs  []error         // failed requests; guarded by mu
}

// loadInterval is the least time between two requests of one user of a
// tomcatLoad: 20 users send up to 1,000 requests a second.
const loadInterval = 20 * time.Millisecond

// startLoad starts the users.
func startLoad(ctx context.Context, users []*tomcat.Session) *tomcatLoad {
	l := &tomcatLoad{users: users, tick: make(chan struct{}, 1), quit: make(chan struct{}),
		pages: make([][]tomcat.Page, len(users)), tries: make([]int, len(users))}
	for i, u := range users {
		l.wg.Go(func() {
			pace := time.NewTicker(loadInterval)
			defer pace.Stop()
			for {
				select {
				case <-l.quit:
					return
				case <-ctx.Done():
					return
				case <-pace.C:
				}
				p, err := u.Get(ctx)
				l.mu.Lock()
				l.tries[i]++
				if err != nil {
					l.errs = append(l.errs, fmt.Errorf("%s, request %d: %w", userName(i, u), l.tries[i], err))
				} else {
					l.pages[i] = append(l.pages[i], p)
				}
				l.mu.Unlock()
				select {
				case l.tick <- struct{}{}:
				default:
				}
			}
		})
	}
	return l
}

// least returns the fewest requests any user has finished.
func (l *tomcatLoad) least() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.tries[0]
	for _, n := range l.tries[1:] {
		m = min(m, n)
	}
	return m
}

// waitEach waits until every user has finished n requests.
func (l *tomcatLoad) waitEach(ctx context.Context, n int) error {
	for l.least() < n {
		select {
		case <-l.tick:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d requests per user (the slowest has %d): %w", n, l.least(), ctx.Err())
		}
	}
	return nil
}

// stop stops the users and waits for their requests in flight; stopping
// again does nothing.
func (l *tomcatLoad) stop() {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
}

// TestTomcatKillUnderLoad kills node-a with SIGKILL while 20 users (10 by
// cookie, 10 by links) load both nodes through the gateway, then restarts
// it while new sessions keep arriving: no request fails, the sessions of
// node-a move to node-b once each and stay there, those of node-b never
// move, and node-a receives new sessions again once back (the balancer's
// trial after the cool-off, against a Tomcat that takes seconds to
// start). With the learned table alone and with routes.
func TestTomcatKillUnderLoad(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	a, b := tomcatPair(t, ctx)
	client, tr := tomcatClient()
	defer tr.CloseIdleConnections()
	for _, tc := range backendSets(a, b) {
		t.Run(tc.name, func(t *testing.T) {
			g := startTomcatGateway(t, "127.0.0.1:0", tc.backends)
			killUnderLoad(t, ctx, client, g, a)
		})
	}
}

// killUnderLoad is one run of TestTomcatKillUnderLoad: a is node-a, running.
func killUnderLoad(t *testing.T, ctx context.Context, client *http.Client, g *tomcatGateway, a *tomcat.Instance) {
	users := tomcatUsers(client, g.url, 10)
	l := startLoad(ctx, users)
	defer l.stop()
	if err := l.waitEach(ctx, 5); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := l.waitEach(ctx, l.least()+10); err != nil {
		t.Fatal(err)
	}
	t.Logf("node-a killed: every user sent 10 more requests in %v", time.Since(killed).Round(time.Millisecond))

	// Restart node-a while new users arrive, one every 50 ms, until one
	// is served by node-a; then 10 more new users.
	started := make(chan error, 1)
	restart := time.Now()
	go func() { started <- a.Start(ctx) }()
	restarted := started // nil once received
	var ready time.Time
	var probeErrs []error
	probes := 0
	newSessions := map[string]int{}
	probe := func() string {
		probes++
		p, err := (&tomcat.Session{Client: client, URL: g.url}).Get(ctx)
		if err != nil {
			probeErrs = append(probeErrs, fmt.Errorf("new user %d: %w", probes, err))
			return ""
		}
		newSessions[p.Node]++
		return p.Node
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var firstOnA time.Time
	for firstOnA.IsZero() {
		select {
		case err := <-restarted:
			if err != nil {
				t.Fatal(err)
			}
			ready, restarted = time.Now(), nil
		case <-tick.C:
			if probe() == "node-a" {
				firstOnA = time.Now()
			}
		case <-ctx.Done():
			t.Fatalf("node-a never received a new session again (new sessions %v): %v", newSessions, ctx.Err())
		}
	}
	if restarted != nil {
		if err := <-restarted; err != nil {
			t.Fatal(err)
		}
		ready = time.Now()
	}
	// A backend back from down gets a trial request once its cool-off
	// (FailTimeout, 10 s) has passed since its last failure: at most that
	// long after node-a is ready, and a probe's latency.
	if wait := firstOnA.Sub(ready); wait > 10*time.Second+5*time.Second {
		t.Errorf("node-a received its first new session %v after it was ready, want within the cool-off of 10 s", wait.Round(time.Millisecond))
	}
	before := newSessions["node-a"]
	for range 10 {
		probe()
	}
	t.Logf("node-a restarted: ready in %v, first new session on it %v after the restart began; new sessions %v (of the last 10: %d on node-a)",
		ready.Sub(restart).Round(time.Millisecond), firstOnA.Sub(restart).Round(time.Millisecond), newSessions, newSessions["node-a"]-before)
	if err := l.waitEach(ctx, l.least()+5); err != nil {
		t.Fatal(err)
	}
	l.stop()

	for _, err := range append(probeErrs, l.errs...) {
		t.Error(err)
	}
	requests := probes
	moved, stayed := 0, 0
	for i, u := range users {
		requests += l.tries[i]
		pages := l.pages[i]
		if len(pages) == 0 {
			continue
		}
		home := pages[0].Node
		n := 0 // pages of the first session
		for n < len(pages) && pages[n].Session == pages[0].Session {
			n++
		}
		if err := checkSession(pages[:n], 1, u.Rewrite); err != nil {
			t.Errorf("%s, first session: %v", userName(i, u), err)
		}
		switch {
		case home == "node-b" && n == len(pages):
			stayed++
		case home == "node-b":
			t.Errorf("%s: a session of node-b moved to %s in session %s after %d requests", userName(i, u), pages[n].Node, pages[n].Session, n)
		case home == "node-a" && n == len(pages):
			t.Errorf("%s: the session of node-a never moved, though node-a was killed", userName(i, u))
		case home == "node-a":
			moved++
			if pages[n].Node != "node-b" {
				t.Errorf("%s: the session of node-a moved to %s", userName(i, u), pages[n].Node)
			}
			if err := checkSession(pages[n:], 1, u.Rewrite); err != nil {
				t.Errorf("%s, session after the move: %v", userName(i, u), err)
			}
		}
	}
	t.Logf("%d requests, %d failed; %d sessions of node-a moved to node-b, %d of node-b stayed",
		requests, len(probeErrs)+len(l.errs), moved, stayed)
}

// TestTomcatGatewayRestartRouteMode restarts the gateway, on the same
// address, between two rounds of 10 requests of 20 users by cookie and 20
// by links. In route mode (-backends node-a=…,node-b=…) the session ids'
// jvmRoute suffix routes them, with no table to lose: every session stays
// on its node with its counter unbroken. With the learned table alone, the
// restarted gateway knows none of them and guesses each request's node
// until a node that does not know the session issues a new one: how many
// are lost is logged for comparison (nearly all).
func TestTomcatGatewayRestartRouteMode(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	a, b := tomcatPair(t, ctx)
	client, tr := tomcatClient()
	defer tr.CloseIdleConnections()
	for _, tc := range []struct {
		name     string
		backends string
		keep     bool // every session must survive the restart
	}{
		{"routes", "node-a=" + a.URL() + ",node-b=" + b.URL(), true},
		{"learned table alone", a.URL() + "," + b.URL(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const sessions, requests = 20, 10
			g := startTomcatGateway(t, "127.0.0.1:0", tc.backends)
			users := tomcatUsers(client, g.url, sessions)
			pages := make([][]tomcat.Page, len(users))
			for _, err := range runUsers(ctx, users, pages, requests) {
				if err != nil {
					t.Fatal(err)
				}
			}
			g.stop(t)
			tr.CloseIdleConnections()
			start := time.Now()
			g = startTomcatGateway(t, g.addr, tc.backends)
			restart := time.Since(start)
			for _, err := range runUsers(ctx, users, pages, requests) {
				if err != nil {
					t.Error(err)
				}
			}
			lost := 0
			for i, u := range users {
				if err := checkSession(pages[i], 1, u.Rewrite); err != nil {
					lost++
					if tc.keep {
						t.Errorf("%s: %v", userName(i, u), err)
					}
				}
			}
			t.Logf("gateway restarted on %s in %v: %d of %d sessions lost (%d requests each, half before and half after)",
				g.addr, restart.Round(time.Millisecond), lost, len(users), 2*requests)
		})
	}
}
