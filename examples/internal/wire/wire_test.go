package wire

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/membership"
)

// recorder records SetBackends calls.
type recorder struct {
	mu    sync.Mutex
	calls []string
	pools map[string][]balancer.Backend
}

func (r *recorder) SetBackends(pool string, bes []balancer.Backend) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, b := range bes {
		ids = append(ids, b.ID+"="+b.URL)
	}
	r.calls = append(r.calls, pool+": "+strings.Join(ids, " "))
	if r.pools == nil {
		r.pools = make(map[string][]balancer.Backend)
	}
	r.pools[pool] = bes
	return nil
}

func member(name, sub, addr string, props map[string]string) membership.Member {
	return membership.Member{Name: name, Domain: "d", SubDomain: sub, Addr: netip.MustParseAddrPort(addr), Properties: props}
}

func TestFeed(t *testing.T) {
	rec := &recorder{}
	f := NewFeed(rec, "", slog.New(slog.DiscardHandler))
	w1 := member("w1", "worker", "10.0.0.1:4200", map[string]string{membership.PropHTTPPort: "9763"})
	w2 := member("w2", "worker", "10.0.0.2:4200", map[string]string{membership.PropHTTPPort: "9764"})
	lb := member("lb", "", "10.0.0.9:4000", map[string]string{})
	m1 := member("m1", "mgt", "10.0.0.3:4100", map[string]string{membership.PropHTTPPort: "9765"})
	for _, e := range []membership.Event{
		{Type: membership.Joined, Member: lb},
		{Type: membership.Joined, Member: w1},
		{Type: membership.Joined, Member: w2},
		{Type: membership.Joined, Member: m1},
		{Type: membership.Updated, Member: w2}, // unchanged: no call
		{Type: membership.Failed, Member: w1},
		{Type: membership.Left, Member: m1},
		{Type: membership.Joined, Member: w1},
	} {
		f.Apply(e)
	}
	want := []string{
		"d/worker: w1=http://10.0.0.1:9763",
		"d/worker: w1=http://10.0.0.1:9763 w2=http://10.0.0.2:9764",
		"d/mgt: m1=http://10.0.0.3:9765",
		"d/worker: w2=http://10.0.0.2:9764",
		"d/mgt: ",
		"d/worker: w1=http://10.0.0.1:9763 w2=http://10.0.0.2:9764",
	}
	if diff := cmp.Diff(want, rec.calls); diff != "" {
		t.Errorf("SetBackends calls (-want +got):\n%s", diff)
	}
	if got := f.Pools(); len(got) != 1 || len(got["d/worker"]) != 2 {
		t.Errorf("Pools() = %v", got)
	}

	// A member moving to another sub-domain leaves its old pool.
	rec.calls = nil
	f.Apply(membership.Event{Type: membership.Updated, Member: member("w2", "mgt", "10.0.0.2:4200", map[string]string{membership.PropHTTPPort: "9764"})})
	want = []string{"d/mgt: w2=http://10.0.0.2:9764", "d/worker: w1=http://10.0.0.1:9763"}
	if diff := cmp.Diff(want, sortedCalls(rec.calls)); diff != "" {
		t.Errorf("move (-want +got):\n%s", diff)
	}

	// Resync replaces everything.
	rec.calls = nil
	f.Reset([]membership.Member{w1})
	want = []string{"d/mgt: "} // the worker pool is already w1 alone
	if diff := cmp.Diff(want, sortedCalls(rec.calls)); diff != "" {
		t.Errorf("reset (-want +got):\n%s", diff)
	}
}

func sortedCalls(c []string) []string {
	out := append([]string(nil), c...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestFeedWait(t *testing.T) {
	f := NewFeed(&recorder{}, "http", slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- f.Wait(ctx, func(p map[string][]balancer.Backend) bool { return len(p["d/worker"]) == 1 })
	}()
	f.Apply(membership.Event{Type: membership.Joined, Member: member("w1", "worker", "127.0.0.1:1", map[string]string{membership.PropHTTPPort: "2"})})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if err := f.Wait(short, func(map[string][]balancer.Backend) bool { return false }); err == nil {
		t.Error("Wait on a done context returned nil")
	}
}

func TestMemberBackend(t *testing.T) {
	m := member("n", "worker", "[fd00::5]:4000", map[string]string{membership.PropHTTPPort: "9763", membership.PropHTTPSPort: "9443"})
	for _, tc := range []struct {
		scheme, url string
		ok          bool
	}{{"http", "http://[fd00::5]:9763", true}, {"https", "https://[fd00::5]:9443", true}} {
		b, ok := MemberBackend(m, tc.scheme)
		if ok != tc.ok || b.URL != tc.url || b.Metadata["subDomain"] != "worker" {
			t.Errorf("%s: %+v %v", tc.scheme, b, ok)
		}
	}
	for _, port := range []string{"", "0", "x", "70000"} {
		if _, ok := MemberBackend(member("n", "", "10.0.0.1:1", map[string]string{membership.PropHTTPPort: port}), "http"); ok {
			t.Errorf("port %q made a backend", port)
		}
	}
}

func TestServices(t *testing.T) {
	f, err := os.Open("../../../carbonconf/testdata/loadbalancer/wso2-lb-common-test-loadbalancer.conf")
	if err != nil {
		t.Skip("shared loadbalancer.conf not found:", err)
	}
	defer f.Close()
	lbc, err := carbonconf.ReadLBConf(f)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := Services(lbc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := balancer.DefaultConfig()
	cfg.Services = svcs
	lb, err := balancer.New(cfg)
	if err != nil {
		t.Fatalf("the services do not make a valid balancer: %v", err)
	}
	lb.Close()
	first := svcs[0]
	if first.Name != "appserver/wso2.as1.domain/worker" || first.Pool != "wso2.as1.domain/worker" || first.TenantRange != "1-5" {
		t.Errorf("first service %+v", first)
	}
}

func TestServicesInline(t *testing.T) {
	lbc, err := carbonconf.ReadLBConf(strings.NewReader(`loadbalancer { session_timeout 90000; }
services {
    appserver {
        hosts management.appserver.localhost;
        domains {
            wso2.appserver.domain { min_app_instances 1; sub_domain mgt; tenant_range *; }
        }
    }
}
`))
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := Services(lbc)
	if err != nil {
		t.Fatal(err)
	}
	got := svcs[0]
	if got.Pool != "wso2.appserver.domain/mgt" || got.MinInstances != 1 || got.Sticky.TTL != 90*time.Second ||
		got.Sticky.Mode != balancer.StickyLearn || !cmp.Equal(got.Hosts, []string{"management.appserver.localhost"}) {
		t.Errorf("service %+v", got)
	}
	if diff := cmp.Diff([]string{"wso2.appserver.domain/mgt"}, Pools(svcs)); diff != "" {
		t.Error(diff)
	}

	bad, err := carbonconf.ReadLBConf(strings.NewReader("loadbalancer { session_timeout soon; }\nservices { a { hosts a; domains { d { } } } }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Services(bad); err == nil || !strings.Contains(err.Error(), "session_timeout") {
		t.Errorf("bad session_timeout: %v", err)
	}
	empty, _ := carbonconf.ReadLBConf(strings.NewReader("loadbalancer { }\n"))
	if _, err := Services(empty); err == nil {
		t.Error("no services: no error")
	}
}

func TestStaticBackends(t *testing.T) {
	got, err := StaticBackends(" p1=http://127.0.0.1:1, 127.0.0.1:2 ; p2=https://127.0.0.1:3;")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]balancer.Backend{
		"p1": {{ID: "p1#1", URL: "http://127.0.0.1:1"}, {ID: "p1#2", URL: "http://127.0.0.1:2"}},
		"p2": {{ID: "p2#1", URL: "https://127.0.0.1:3"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"nopool", "=http://a"} {
		if _, err := StaticBackends(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestSidecarConfig(t *testing.T) {
	addr, props, err := SidecarConfig("https://127.0.0.1:8443/app")
	if err != nil || addr.String() != "127.0.0.1" || props[membership.PropHTTPSPort] != "8443" || props[membership.PropHTTPPort] != "" {
		t.Errorf("%v %v %v", addr, props, err)
	}
	if _, props, err := SidecarConfig("127.0.0.1:8080"); err != nil || props[membership.PropHTTPPort] != "8080" {
		t.Errorf("no scheme: %v %v", props, err)
	}
	for _, bad := range []string{"http://localhost:80", "ftp://127.0.0.1:21", "http://127.0.0.1"} {
		if _, _, err := SidecarConfig(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestMemberConfig(t *testing.T) {
	n, err := carbonconf.LoadNode("../../carbonnode/testdata/carbon-home")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MemberConfig(n); err == nil || !strings.Contains(err.Error(), "clustering is not enabled") {
		t.Fatalf("stock files: %v", err)
	}
	offset := 3
	if _, err := n.ConfigureManager(carbonconf.Setup{Domain: "wso2.esb.domain", LocalMemberHost: "127.0.0.1", LocalMemberPort: 4100,
		WKA: []string{"127.0.0.1:4200", "127.0.0.[2-3]:4300"}, HostName: "esb.localhost", MgtHostName: "mgt.esb.localhost", Offset: &offset}); err != nil {
		t.Fatal(err)
	}
	cfg, err := MemberConfig(n)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		membership.PropBackendServerURL: "https://esb.localhost:9446/services/",
		membership.PropMgtConsoleURL:    "https://esb.localhost:9446/",
		membership.PropHTTPPort:         "9766",
		membership.PropHTTPSPort:        "9446",
		membership.PropHostName:         "esb.localhost",
	}
	if diff := cmp.Diff(want, cfg.Properties); diff != "" {
		t.Errorf("properties (-want +got):\n%s", diff)
	}
	if cfg.Domain != "wso2.esb.domain" || cfg.SubDomain != "mgt" || cfg.Port != 4100 || cfg.AdvertiseAddr != "127.0.0.1" ||
		!cmp.Equal(cfg.WKA, []string{"127.0.0.1:4200", "127.0.0.[2-3]:4300"}) {
		t.Errorf("config %+v", cfg)
	}
}
