package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/cli/clitest"
	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	"github.com/carbonlb/carbonlb/examples/internal/standin"
)

// testCluster starts the quickstart topology on free ports.
func testCluster(t *testing.T) (*cluster, *http.Client) {
	t.Helper()
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := startCluster(ctx, options{freePorts: true, logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := c.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c, &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// testLogger logs to the test's log from Info, with -v; Warn and above
// always.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRunOnce(t *testing.T) {
	leakcheck.Check(t)
	var out, errs bytes.Buffer
	if err := run(testContext(t), []string{"-once", "-free-ports"}, &out, &errs); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errs)
	}
	got := out.String()
	for _, want := range []string{
		"mgt.localhost goes to the manager: every request answered by manager",
		"each stayed on its worker for 5 requests (worker-1: 2, worker-2: 2)",
		"requests, 0 failed",
		"restarted and rejoined the cluster",
		"Every step held.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "FAIL") || errs.Len() > 0 {
		t.Errorf("stdout:\n%s\nstderr:\n%s", got, &errs)
	}
}

// TestUsageExitCodes runs quickstart's command line to its exit status:
// usage errors are said once and exit 2.
func TestUsageExitCodes(t *testing.T) {
	clitest.Usage(t, "quickstart", run, []clitest.Case{
		{Args: []string{"-h"}, Code: 0, Stdout: "", Stderr: "Exit status:"},
		{Args: []string{"-version"}, Code: 0, Stdout: "quickstart ", Stderr: ""},
		{Args: []string{"-nope"}, Code: 2, Stdout: "", Stderr: "flag provided but not defined: -nope"},
		{Args: []string{"extra"}, Code: 2, Stdout: "", Stderr: `quickstart: unexpected argument "extra"`},
		{Args: []string{"-log-level", "loud"}, Code: 2, Stdout: "", Stderr: `-log-level "loud"`},
		{Args: []string{"-log", "debug"}, Code: 2, Stdout: "", Stderr: "flag provided but not defined: -log"},
	})
}

// users opens n sessions on host and returns them with the node each
// stayed on for requests requests.
func users(t *testing.T, ctx context.Context, c *cluster, client *http.Client, host string, n, requests int) ([]*standin.Session, []string) {
	t.Helper()
	var us []*standin.Session
	var home []string
	for i := range n {
		u := &standin.Session{Client: client, URL: c.lbURL, Host: host}
		nodes, err := repeat(ctx, u, requests)
		if err != nil {
			t.Fatalf("user %d: %v", i, err)
		}
		if len(nodes) != 1 {
			t.Fatalf("user %d moved: %v", i, nodes)
		}
		us, home = append(us, u), append(home, nodes[0])
	}
	return us, home
}

func TestStickyAndMgtRouting(t *testing.T) {
	c, client := testCluster(t)
	ctx := testContext(t)
	_, home := users(t, ctx, c, client, mgtHost, 3, 10)
	if !slices.Equal(home, []string{"manager", "manager", "manager"}) {
		t.Errorf("mgt.localhost users on %v, want the manager", home)
	}
	for _, host := range []string{workerHost, "anything.else.localhost", "127.0.0.1"} {
		_, home := users(t, ctx, c, client, host, 6, 10)
		count := map[string]int{}
		for _, h := range home {
			count[h]++
		}
		if count["worker-1"] != 3 || count["worker-2"] != 3 {
			t.Errorf("host %s: users per node %v, want 3 on each worker", host, count)
		}
	}
	// The path parameter of URL rewriting pins as the cookie does.
	u := &standin.Session{Client: client, URL: c.lbURL, Host: workerHost}
	r, err := u.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		plain := &standin.Session{Client: client, URL: c.lbURL, Host: workerHost}
		r2, err := plain.Get(ctx, "/app/page;jsessionid="+r.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		if r2.Node != r.Node || r2.NewSession {
			t.Fatalf(";jsessionid=%s went to %s (new session %v), want %s", r.SessionID, r2.Node, r2.NewSession, r.Node)
		}
	}
}

// underLoad runs every user's load until during returns, then until each
// user made loadAfter more requests, and returns what they saw.
func underLoad(ctx context.Context, us []*standin.Session, during func()) []loadResult {
	removed := make(chan struct{})
	started := make(chan struct{}, len(us))
	res := make([]loadResult, len(us))
	var wg sync.WaitGroup
	for i, u := range us {
		wg.Go(func() { res[i] = load(ctx, u, started, removed) })
	}
	for range us {
		select {
		case <-started:
		case <-ctx.Done():
		}
	}
	during()
	close(removed)
	wg.Wait()
	return res
}

func TestWorkerKilledUnderLoadAndRejoins(t *testing.T) {
	c, client := testCluster(t)
	ctx := testContext(t)
	us, home := users(t, ctx, c, client, workerHost, 8, 3)
	victim, survivor := home[0], "worker-1"
	if victim == survivor {
		survivor = "worker-2"
	}
	res := underLoad(ctx, us, func() {
		if err := c.kill(victim); err != nil {
			t.Error(err)
		}
		if err := c.feed.Wait(ctx, func(p map[string][]balancer.Backend) bool {
			return len(p[domain+"/worker"]) == 1 && p[domain+"/worker"][0].ID == survivor
		}); err != nil {
			t.Errorf("%s never left the pool: %v", victim, err)
		}
	})
	moved, total := 0, 0
	for i, r := range res {
		total += r.requests
		for _, err := range r.errs {
			t.Errorf("user %d: failed GET: %v", i, err)
		}
		if home[i] == victim {
			moved++
			if !only(r.after, survivor) {
				t.Errorf("user %d of %s: after the crash answered by %v, want %s only", i, victim, r.after, survivor)
			}
		} else if !only(r.during, survivor) {
			t.Errorf("user %d of %s moved: %v", i, survivor, r.during)
		}
	}
	t.Logf("%d GETs under load, %d users re-pinned", total, moved)
	if svc := service(c.lb.Status(), "worker"); svc.Repins < uint64(moved) {
		t.Errorf("status: %d repins, want at least %d", svc.Repins, moved)
	}

	// The worker comes back on its ports and rejoins; moved users stay.
	if err := c.startNode(ctx, spec(victim)); err != nil {
		t.Fatal(err)
	}
	if err := c.feed.Wait(ctx, func(p map[string][]balancer.Backend) bool { return len(p[domain+"/worker"]) == 2 }); err != nil {
		t.Fatalf("%s did not rejoin: %v", victim, err)
	}
	for i, u := range us {
		nodes, err := repeat(ctx, u, 3)
		if err != nil || !only(nodes, survivor) {
			t.Errorf("user %d after the rejoin: %v %v, want %s", i, nodes, err, survivor)
		}
	}
	_, fresh := users(t, ctx, c, client, workerHost, 4, 2)
	if !slices.Contains(fresh, victim) {
		t.Errorf("new users went to %v, none to the rejoined %s", fresh, victim)
	}
}

func service(s balancer.Status, name string) balancer.ServiceStatus {
	for _, svc := range s.Services {
		if svc.Name == name {
			return svc
		}
	}
	return balancer.ServiceStatus{}
}

func TestUpdateUnderLoad(t *testing.T) {
	c, client := testCluster(t)
	ctx := testContext(t)
	us, home := users(t, ctx, c, client, workerHost, 6, 2)
	mgt, _ := users(t, ctx, c, client, mgtHost, 2, 2)
	us, home = append(us, mgt...), append(home, "manager", "manager")
	updates := 0
	res := underLoad(ctx, us, func() {
		for i := range 40 {
			cfg := config(slog.New(slog.DiscardHandler))
			for j := range cfg.Services {
				cfg.Services[j].Policy = []balancer.Policy{balancer.RoundRobin, balancer.LeastConn, balancer.PowerOfTwo}[i%3]
				cfg.Services[j].Timeouts.Read = time.Duration(30+i) * time.Second
			}
			if err := c.lb.Update(cfg); err != nil {
				t.Fatalf("update %d: %v", i, err)
			}
			updates++
			if _, err := repeat(ctx, us[i%len(us)], 1); err != nil {
				t.Errorf("request between updates: %v", err)
			}
		}
	})
	total := 0
	for i, r := range res {
		total += r.requests
		for _, err := range r.errs {
			t.Errorf("user %d: failed GET: %v", i, err)
		}
		if !only(r.during, home[i]) {
			t.Errorf("user %d moved from %s: %v", i, home[i], r.during)
		}
	}
	t.Logf("%d GETs across %d updates", total, updates)
}

func TestFallbackPorts(t *testing.T) {
	// A first cluster on the conventional ports, where free, then a second
	// one that finds them taken and says which it uses instead.
	leakcheck.Check(t)
	ctx := testContext(t)
	discard := slog.New(slog.DiscardHandler)
	var notes1, notes2 bytes.Buffer
	c1, err := startCluster(ctx, options{logger: discard, notes: &notes1})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.close()
	c2, err := startCluster(ctx, options{logger: discard, notes: &notes2})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.close()
	if c1.lbURL == c2.lbURL {
		t.Fatalf("both balancers on %s", c1.lbURL)
	}
	for _, p := range []string{"9764", "9765", "9766", "4100", "4200", "4300", "8290"} {
		if !strings.Contains(notes2.String(), "port "+p+" is taken") {
			t.Errorf("second cluster's notes do not say port %s is taken:\n%s", p, &notes2)
		}
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	for _, c := range []*cluster{c1, c2} {
		u := &standin.Session{Client: &http.Client{Transport: tr}, URL: c.lbURL, Host: mgtHost}
		if r, err := u.Get(ctx, "/"); err != nil || r.Node != "manager" {
			t.Errorf("%s: %v %v", c.lbURL, r, err)
		}
	}
}

func TestRunCanceled(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errs bytes.Buffer
	if err := run(ctx, []string{"-once", "-free-ports"}, &out, &errs); err == nil {
		t.Errorf("run with a canceled context = nil, want an error\n%s", &out)
	}
}

// notifyWriter signals each write, so a test can wait for output.
type notifyWriter struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return w.b.Write(p)
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestRunServesUntilCanceled runs the program as a user does: it serves
// after the demonstration until interrupted, then returns nil.
func TestRunServesUntilCanceled(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	out := &notifyWriter{wrote: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-free-ports"}, out, io.Discard) }()
	for !strings.Contains(out.String(), "Serving until Ctrl-C.") {
		select {
		case <-out.wrote:
		case err := <-done:
			t.Fatalf("run returned before serving: %v\n%s", err, out)
		}
	}
	if strings.Contains(out.String(), "FAIL") {
		t.Errorf("output:\n%s", out)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after Ctrl-C: %v", err)
	}
}
