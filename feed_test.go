package carbonlb_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/membership/membertest"
)

var discard = slog.New(slog.DiscardHandler)

// recorder records SetBackends calls as "pool: id=url id=url", and refuses
// the pools in refuse.
type recorder struct {
	mu     sync.Mutex
	calls  []string
	refuse map[string]bool
}

func (r *recorder) SetBackends(pool string, bes []balancer.Backend) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse[pool] {
		return errors.New("refused")
	}
	var ids []string
	for _, b := range bes {
		ids = append(ids, b.ID+"="+b.URL)
	}
	r.calls = append(r.calls, strings.TrimSpace(pool+": "+strings.Join(ids, " ")))
	return nil
}

// take returns the calls recorded since the last take, sorted.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	slices.Sort(c)
	return c
}

func member(name, sub, addr string, props map[string]string) membership.Member {
	return membership.Member{Name: name, Domain: "d", SubDomain: sub, Addr: netip.MustParseAddrPort(addr), Properties: props}
}

func httpPort(p string) map[string]string { return map[string]string{membership.PropHTTPPort: p} }

func newFeed(t *testing.T, lb carbonlb.Backends, scheme string) *carbonlb.Feed {
	t.Helper()
	f, err := carbonlb.NewFeed(lb, carbonlb.FeedConfig{Scheme: scheme, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func event(typ membership.EventType, m membership.Member) membership.Event {
	return membership.Event{Type: typ, Member: m}
}

func TestFeed(t *testing.T) {
	w1 := member("w1", "worker", "10.0.0.1:4200", httpPort("9763"))
	w2 := member("w2", "worker", "10.0.0.2:4200", httpPort("9764"))
	lb := member("lb", "", "10.0.0.9:4000", nil)
	m1 := member("m1", "mgt", "10.0.0.3:4100", httpPort("9765"))
	w2mgt := member("w2", "mgt", "10.0.0.2:4200", httpPort("9764"))
	w2https := member("w2", "worker", "10.0.0.2:4200", map[string]string{membership.PropHTTPSPort: "9443"})
	w2gone := member("w2", "worker", "10.0.0.2:4200", nil) // a sidecar whose backend is down
	for _, tc := range []struct {
		name   string
		events []membership.Event
		want   []string // the calls of the last event, sorted
	}{
		{"balancer member", []membership.Event{event(membership.Joined, lb)}, nil},
		{"first worker", []membership.Event{event(membership.Joined, w1)}, []string{"d/worker: w1=http://10.0.0.1:9763"}},
		{"second worker", []membership.Event{event(membership.Joined, w1), event(membership.Joined, w2)},
			[]string{"d/worker: w1=http://10.0.0.1:9763 w2=http://10.0.0.2:9764"}},
		{"unchanged update", []membership.Event{event(membership.Joined, w1), event(membership.Updated, w1)}, nil},
		{"failed", []membership.Event{event(membership.Joined, w1), event(membership.Joined, w2), event(membership.Failed, w1)},
			[]string{"d/worker: w2=http://10.0.0.2:9764"}},
		{"left, last of its pool", []membership.Event{event(membership.Joined, m1), event(membership.Left, m1)}, []string{"d/mgt:"}},
		{"moved to another sub-domain", []membership.Event{event(membership.Joined, w1), event(membership.Joined, w2), event(membership.Updated, w2mgt)},
			[]string{"d/mgt: w2=http://10.0.0.2:9764", "d/worker: w1=http://10.0.0.1:9763"}},
		{"http port withdrawn, https announced", []membership.Event{event(membership.Joined, w2), event(membership.Updated, w2https)},
			[]string{"d/worker: w2=https://10.0.0.2:9443"}},
		{"every port withdrawn", []membership.Event{event(membership.Joined, w2), event(membership.Updated, w2gone)}, []string{"d/worker:"}},
		{"marked balancer with ports", []membership.Event{event(membership.Joined,
			member("elb", "", "10.0.0.9:4000", map[string]string{membership.PropHTTPPort: "8280", carbonlb.PropRole: carbonlb.RoleBalancer}))}, nil},
		{"resync ignored by Apply", []membership.Event{event(membership.Joined, w1), {Type: membership.Resync}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			f := newFeed(t, rec, "")
			for _, e := range tc.events {
				rec.take()
				if err := f.Apply(e); err != nil {
					t.Fatalf("Apply(%v): %v", e, err)
				}
			}
			if diff := cmp.Diff(tc.want, rec.take()); diff != "" {
				t.Errorf("SetBackends calls of the last event (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFeedLastMemberLeavesPool(t *testing.T) {
	// No pool is known in advance: a pool the Feed set itself is emptied
	// when its last member goes, however it goes.
	for _, typ := range []membership.EventType{membership.Left, membership.Failed} {
		t.Run(typ.String(), func(t *testing.T) {
			rec := &recorder{}
			f := newFeed(t, rec, "")
			a := member("a", "reporting", "10.0.0.1:4000", httpPort("8080"))
			b := member("b", "reporting", "10.0.0.2:4000", httpPort("8080"))
			for _, e := range []membership.Event{event(membership.Joined, a), event(membership.Joined, b), event(typ, a), event(typ, b)} {
				if err := f.Apply(e); err != nil {
					t.Fatal(err)
				}
			}
			want := []string{
				"d/reporting: a=http://10.0.0.1:8080",
				"d/reporting: a=http://10.0.0.1:8080 b=http://10.0.0.2:8080",
				"d/reporting: b=http://10.0.0.2:8080",
				"d/reporting:",
			}
			if diff := cmp.Diff(want, rec.calls); diff != "" {
				t.Errorf("SetBackends calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string][]balancer.Backend{}, f.Pools()); diff != "" {
				t.Errorf("Pools() (-want +got):\n%s", diff)
			}
		})
	}

	// On a real balancer: the pool is gone from its status.
	lb, err := balancer.New(balancer.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	f := newFeed(t, lb, "")
	a := member("a", "reporting", "10.0.0.1:4000", httpPort("8080"))
	for _, e := range []membership.Event{event(membership.Joined, a), event(membership.Failed, a)} {
		if err := f.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	if pools := lb.Status().Pools; len(pools) != 0 {
		t.Errorf("balancer pools after the last member failed: %+v", pools)
	}
}

func TestFeedIPv6Backends(t *testing.T) {
	lb, err := balancer.New(balancer.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	for _, tc := range []struct {
		name, addr, scheme string
		props              map[string]string
		want               string
	}{
		{"ULA http", "[fd00::2]:4000", "", httpPort("9763"), "http://[fd00::2]:9763"},
		{"ULA https", "[fd00::3]:4000", "https", map[string]string{membership.PropHTTPSPort: "9443"}, "https://[fd00::3]:9443"},
		{"https when no http port", "[2001:db8::4]:4000", "", map[string]string{membership.PropHTTPSPort: "9443"}, "https://[2001:db8::4]:9443"},
		{"link-local with zone", "[fe80::1%eth0]:4000", "http", httpPort("9763"), "http://[fe80::1%25eth0]:9763"},
		{"IPv4", "10.0.0.5:4000", "", httpPort("9763"), "http://10.0.0.5:9763"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, lb, tc.scheme)
			m := member("n", "worker", tc.addr, tc.props)
			m.Domain = tc.name // a pool of its own
			if err := f.Apply(event(membership.Joined, m)); err != nil {
				t.Fatalf("the balancer refused the backend: %v", err)
			}
			var got []string
			for _, p := range lb.Status().Pools {
				if p.Name == m.Pool() {
					for _, b := range p.Backends {
						got = append(got, b.URL)
					}
				}
			}
			if diff := cmp.Diff([]string{tc.want}, got); diff != "" {
				t.Errorf("backend URLs in the balancer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFeedRefusedPool(t *testing.T) {
	rec := &recorder{refuse: map[string]bool{"d/worker": true}}
	f := newFeed(t, rec, "")
	w1 := member("w1", "worker", "10.0.0.1:4200", httpPort("9763"))
	err := f.Apply(event(membership.Joined, w1))
	if err == nil || !strings.Contains(err.Error(), `carbonlb: pool "d/worker": refused`) {
		t.Fatalf("Apply of a refused pool: error %v", err)
	}
	if got := f.Pools(); len(got) != 0 {
		t.Errorf("Pools() after a refusal = %v", got)
	}
	// Once the balancer accepts, the next change of any pool sets it.
	rec.mu.Lock()
	rec.refuse = nil
	rec.mu.Unlock()
	if err := f.Apply(event(membership.Joined, member("m1", "mgt", "10.0.0.3:4100", httpPort("9765")))); err != nil {
		t.Fatal(err)
	}
	want := []string{"d/mgt: m1=http://10.0.0.3:9765", "d/worker: w1=http://10.0.0.1:9763"}
	if diff := cmp.Diff(want, rec.take()); diff != "" {
		t.Errorf("SetBackends calls (-want +got):\n%s", diff)
	}
}

func TestNewFeed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lb     carbonlb.Backends
		scheme string
		ok     bool
	}{
		{"zero", &recorder{}, "", true},
		{"http", &recorder{}, "http", true},
		{"https", &recorder{}, "https", true},
		{"ftp", &recorder{}, "ftp", false},
		{"HTTP", &recorder{}, "HTTP", false},
		{"nil", nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := carbonlb.NewFeed(tc.lb, carbonlb.FeedConfig{Scheme: tc.scheme})
			if (err == nil) != tc.ok {
				t.Errorf("NewFeed: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestFeedWait(t *testing.T) {
	f := newFeed(t, &recorder{}, "http")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- f.Wait(ctx, func(p map[string][]balancer.Backend) bool { return len(p["d/worker"]) == 1 })
	}()
	if err := f.Apply(event(membership.Joined, member("w1", "worker", "127.0.0.1:1", httpPort("2")))); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if err := f.Wait(short, func(map[string][]balancer.Backend) bool { return false }); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a done context: %v", err)
	}
}

func TestMemberBackend(t *testing.T) {
	both := map[string]string{membership.PropHTTPPort: "9763", membership.PropHTTPSPort: "9443", "region": "eu"}
	for _, tc := range []struct {
		name, addr, scheme string
		props              map[string]string
		want               balancer.Backend
		ok                 bool
	}{
		{"http", "[fd00::5]:4000", "http", both,
			balancer.Backend{ID: "n", URL: "http://[fd00::5]:9763", Metadata: map[string]string{"httpPort": "9763", "httpsPort": "9443", "region": "eu", "subDomain": "worker"}}, true},
		{"https", "[fd00::5]:4000", "https", both,
			balancer.Backend{ID: "n", URL: "https://[fd00::5]:9443", Metadata: map[string]string{"httpPort": "9763", "httpsPort": "9443", "region": "eu", "subDomain": "worker"}}, true},
		{"either prefers http", "10.0.0.5:4000", "", both,
			balancer.Backend{ID: "n", URL: "http://10.0.0.5:9763", Metadata: map[string]string{"httpPort": "9763", "httpsPort": "9443", "region": "eu", "subDomain": "worker"}}, true},
		{"no port", "10.0.0.5:4000", "", nil, balancer.Backend{}, false},
		{"https only, http asked", "10.0.0.5:4000", "http", map[string]string{membership.PropHTTPSPort: "9443"}, balancer.Backend{}, false},
		{"port 0", "10.0.0.5:4000", "", httpPort("0"), balancer.Backend{}, false},
		{"port x", "10.0.0.5:4000", "", httpPort("x"), balancer.Backend{}, false},
		{"port 70000", "10.0.0.5:4000", "", httpPort("70000"), balancer.Backend{}, false},
		{"marked balancer", "10.0.0.5:4000", "", map[string]string{membership.PropHTTPPort: "80", carbonlb.PropRole: carbonlb.RoleBalancer}, balancer.Backend{}, false},
		{"unknown scheme", "10.0.0.5:4000", "ftp", both, balancer.Backend{}, false},
		{"jvmRoute", "10.0.0.5:4000", "http", map[string]string{membership.PropHTTPPort: "9763", carbonlb.PropRoute: "node-a"},
			balancer.Backend{ID: "n", URL: "http://10.0.0.5:9763", Route: "node-a", Metadata: map[string]string{"httpPort": "9763", "jvmRoute": "node-a", "subDomain": "worker"}}, true},
		{"jvmRoute a session id cannot carry", "10.0.0.5:4000", "http", map[string]string{membership.PropHTTPPort: "9763", carbonlb.PropRoute: "a;b"},
			balancer.Backend{ID: "n", URL: "http://10.0.0.5:9763", Metadata: map[string]string{"httpPort": "9763", "jvmRoute": "a;b", "subDomain": "worker"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := carbonlb.MemberBackend(member("n", "worker", tc.addr, tc.props), tc.scheme)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsBalancer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sub   string
		props map[string]string
		want  bool
	}{
		{"no port, no sub-domain", "", nil, true},
		{"marked", "worker", map[string]string{carbonlb.PropRole: carbonlb.RoleBalancer, membership.PropHTTPPort: "80"}, true},
		{"worker", "worker", httpPort("9763"), false},
		{"no sub-domain, a port", "", httpPort("9763"), false},
		{"worker without a port", "worker", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := carbonlb.IsBalancer(member("n", tc.sub, "10.0.0.1:4000", tc.props)); got != tc.want {
				t.Errorf("IsBalancer = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFeedResync(t *testing.T) {
	t.Run("Reset", func(t *testing.T) {
		w1 := member("w1", "worker", "10.0.0.1:4200", httpPort("9763"))
		w2 := member("w2", "worker", "10.0.0.2:4200", httpPort("9764"))
		m1 := member("m1", "mgt", "10.0.0.3:4100", httpPort("9765"))
		rec := &recorder{}
		f := newFeed(t, rec, "")
		for _, m := range []membership.Member{w1, w2, m1} {
			if err := f.Apply(event(membership.Joined, m)); err != nil {
				t.Fatal(err)
			}
		}
		rec.take()
		for _, step := range []struct {
			name  string
			alive []membership.Member
			want  []string
		}{
			{"same members: nothing set", []membership.Member{m1, w2, w1}, nil},
			{"a worker and the manager gone", []membership.Member{w2}, []string{"d/mgt:", "d/worker: w2=http://10.0.0.2:9764"}},
			{"all back", []membership.Member{w1, w2, m1}, []string{"d/mgt: m1=http://10.0.0.3:9765", "d/worker: w1=http://10.0.0.1:9763 w2=http://10.0.0.2:9764"}},
			{"none", nil, []string{"d/mgt:", "d/worker:"}},
		} {
			if err := f.Reset(step.alive); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(step.want, rec.take()); diff != "" {
				t.Errorf("%s: SetBackends calls (-want +got):\n%s", step.name, diff)
			}
		}
	})

	// Run on a node whose Feed falls behind: the events it missed are
	// replaced by a Resync, after which the pools equal the live members.
	t.Run("Run", func(t *testing.T) {
		checkLeaks(t)
		var nw membertest.Network
		lbCfg := testConfig(&nw, 1, "")
		lbCfg.EventBuffer = 1
		lbNode := join(t, lbCfg)
		wka := lbNode.Addr().String()

		rec := &blocking{blocked: make(chan struct{}), release: make(chan struct{})}
		f := newFeed(t, rec, "")
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- f.Run(ctx, lbNode) }()
		defer func() { cancel(); <-ran }()

		w1 := join(t, testConfig(&nw, 2, "worker", wka))
		<-rec.blocked // the Feed is stuck in SetBackends for w1
		w2 := join(t, testConfig(&nw, 3, "worker", wka))
		w3 := join(t, testConfig(&nw, 4, "worker", wka))
		leave(t, w1)
		waitMembers(t, lbNode, lbNode.Name(), w2.Name(), w3.Name())
		if h := lbNode.Health(); h.DroppedEvents == 0 {
			t.Fatalf("the Feed's events were not dropped (health %+v): the test does not test Resync", h)
		}
		close(rec.release)
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		want := []string{w2.Name(), w3.Name()}
		var got []string
		if err := f.Wait(wctx, func(p map[string][]balancer.Backend) bool {
			got = nil
			for _, b := range p[lbNode.Local().Domain+"/worker"] {
				got = append(got, b.ID)
			}
			return slices.Equal(got, want)
		}); err != nil {
			t.Fatalf("the pool never held %v after the Resync (holds %v): %v", want, got, err)
		}
	})
}

// blocking is a Backends whose first SetBackends waits for release.
type blocking struct {
	once    sync.Once
	blocked chan struct{}
	release chan struct{}
}

func (b *blocking) SetBackends(string, []balancer.Backend) error {
	first := false
	b.once.Do(func() { first = true })
	if first {
		close(b.blocked)
		<-b.release
	}
	return nil
}

// testConfig is the configuration of member i (10.0.0.i:4000) on nw, of
// sub-domain sub, announcing an HTTP port unless sub is empty (a balancer).
func testConfig(nw *membertest.Network, i int, sub string, wka ...string) membership.Config {
	cfg := membership.DefaultLocalConfig("wso2.esb.domain")
	cfg.Name = "node-" + string(rune('0'+i))
	cfg.BindAddr = netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}).String()
	cfg.Port = 4000
	cfg.Transport = nw.Bind
	cfg.WKA = wka
	cfg.SubDomain = sub
	if sub != "" {
		cfg.Properties = httpPort("9763")
	}
	cfg.Logger = discard
	return cfg
}

// join starts a member, closed when the test ends.
func join(t *testing.T, cfg membership.Config) *membership.Node {
	t.Helper()
	n, err := membership.Join(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// leave makes n leave the cluster gracefully.
func leave(t *testing.T, n *membership.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := n.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	n.Close()
}

// waitMembers waits until n sees exactly the members named, watching its
// events.
func waitMembers(t *testing.T, n *membership.Node, names ...string) {
	t.Helper()
	slices.Sort(names)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var got []string
	check := func() bool {
		got = nil
		for _, m := range n.Members() {
			got = append(got, m.Name)
		}
		slices.Sort(got)
		return slices.Equal(got, names)
	}
	n.Watch(ctx, func(membership.Event) {
		if check() {
			cancel()
		}
	})
	if !check() {
		t.Fatalf("members %v, want %v", got, names)
	}
}

// TestFeedSharedRoute: two members giving one jvmRoute would make the
// balancer refuse their whole pool; the feed drops that route instead, and
// keeps the others.
func TestFeedSharedRoute(t *testing.T) {
	lb, err := balancer.New(balancer.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	f, err := carbonlb.NewFeed(lb, carbonlb.FeedConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	route := func(name, addr, r string) membership.Member {
		return member(name, "worker", addr, map[string]string{membership.PropHTTPPort: "9763", carbonlb.PropRoute: r})
	}
	if err := f.Reset([]membership.Member{route("a", "10.0.0.1:4000", "same"), route("b", "10.0.0.2:4000", "same"), route("c", "10.0.0.3:4000", "c")}); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	var routes []string
	for _, b := range f.Pools()[member("x", "worker", "10.0.0.9:4000", nil).Pool()] {
		routes = append(routes, b.ID+"="+b.Route)
	}
	if diff := cmp.Diff([]string{"a=", "b=", "c=c"}, routes); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}
