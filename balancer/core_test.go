package balancer

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRouting(t *testing.T) {
	cfg := testConfig(StickyOff)
	cfg.Services = []Service{
		{Name: "as1", Pool: "wso2.as1.domain/worker", Hosts: []string{"appserver.cloud-test.wso2.com", "as.cloud-test.wso2.com"}, TenantRange: "1-100"},
		{Name: "as2", Pool: "wso2.as2.domain/worker", Hosts: []string{"appserver.cloud-test.wso2.com"}, TenantRange: "101-200"},
		{Name: "as3", Pool: "wso2.as3.domain/worker", Hosts: []string{"appserver.cloud-test.wso2.com"}, TenantRange: "*"},
		{Name: "mgt", Pool: "wso2.esb.domain/mgt", Hosts: []string{"mgt.esb.example.com"}},
		{Name: "wild", Pool: "wild", Hosts: []string{"*.example.com"}},
		{Name: "deeper", Pool: "deeper", Hosts: []string{"*.esb.example.com"}},
		{Name: "fallback", Pool: "default", Default: true},
	}
	cfg.Tenants = PathTenants{Domains: map[string]int{"acme.com": 5, "big.org": 150}}
	lb := mustNew(t, cfg)
	st := lb.state.Load()
	for _, tc := range []struct {
		host, path, want string
	}{
		{"appserver.cloud-test.wso2.com", "/t/acme.com/services/echo", "as1"},
		{"appserver.cloud-test.wso2.com", "/t/big.org/services/echo", "as2"},
		{"appserver.cloud-test.wso2.com", "/services/echo", "as3"},   // super tenant
		{"appserver.cloud-test.wso2.com", "/t/unknown.net/x", "as3"}, // unknown tenant
		{"AppServer.Cloud-Test.WSO2.com:443", "/t/acme.com/", "as1"}, // case and port
		{"as.cloud-test.wso2.com", "/services/echo", "fallback"},     // as1 only takes 1-100
		{"mgt.esb.example.com", "/carbon/", "mgt"},                   // exact beats wildcard
		{"worker.esb.example.com", "/", "deeper"},                    // most specific wildcard
		{"api.example.com", "/", "wild"},
		{"example.com", "/", "fallback"}, // "*.example.com" needs a label
		{"other.net", "/", "fallback"},
	} {
		tenant, known := st.tenants.Tenant(normHost(tc.host), tc.path)
		s := st.router.route(normHost(tc.host), tenant, known)
		got := ""
		if s != nil {
			got = s.Name
		}
		if got != tc.want {
			t.Errorf("%s%s → %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
	// Without a default service an unknown host gets 404.
	cfg.Services = cfg.Services[:4]
	lb2 := mustNew(t, cfg)
	rec := httptest.NewRecorder()
	lb2.ServeHTTP(rec, httptest.NewRequest("GET", "http://nobody.example.net/", nil))
	if rec.Code != 404 {
		t.Errorf("unknown host: %d, want 404", rec.Code)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := func() Config { return testConfig(StickyLearn) }
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no name", func(c *Config) { c.Services[0].Name = "" }, "Name"},
		{"no pool", func(c *Config) { c.Services[0].Pool = "" }, "Pool"},
		{"no hosts", func(c *Config) { c.Services[0].Default = false }, "Hosts"},
		{"bad host", func(c *Config) { c.Services[0].Hosts = []string{"a.com:80"} }, "Hosts[0]"},
		{"bad wildcard", func(c *Config) { c.Services[0].Hosts = []string{"a.*.com"} }, "Hosts[0]"},
		{"bad tenant range", func(c *Config) { c.Services[0].TenantRange = "100-1" }, "TenantRange"},
		{"bad cookie", func(c *Config) { c.Services[0].Sticky.Cookie = "a b" }, "Sticky.Cookie"},
		{"bad mode", func(c *Config) { c.Services[0].Sticky.Mode = 9 }, "Sticky.Mode"},
		{"bad policy", func(c *Config) { c.Services[0].Policy = 9 }, "Policy"},
		{"negative timeout", func(c *Config) { c.Services[0].Timeouts.Read = -1 }, "Timeouts"},
		{"bad status", func(c *Config) { c.Services[0].Health.Statuses = []int{42} }, "Health.Statuses"},
		{"short key", func(c *Config) { c.StickyKey = []byte("short") }, "StickyKey"},
		{"two defaults", func(c *Config) { s := c.Services[0]; s.Name = "b"; c.Services = append(c.Services, s) }, "Default"},
		{"duplicate", func(c *Config) { c.Services = append(c.Services, c.Services[0]) }, "Name"},
		{"host twice", func(c *Config) {
			c.Services = []Service{{Name: "a", Pool: "p", Hosts: []string{"x.com"}}, {Name: "b", Pool: "p", Hosts: []string{"X.com"}}}
		}, "Hosts"},
		{"invalid prefix", func(c *Config) { c.Services[0].AllowCIDRs = []netip.Prefix{{}} }, "AllowCIDRs[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.edit(&c)
			_, err := New(c)
			var ce *ConfigError
			if !errors.Is(err, ErrConfig) || !errors.As(err, &ce) || ce.Field != tc.field {
				t.Errorf("New: %v; want a *ConfigError on %s", err, tc.field)
			}
		})
	}
	if _, err := New(Config{}); err != nil {
		t.Errorf("the zero Config: %v", err)
	}
}

func TestSetBackendsErrors(t *testing.T) {
	lb := mustNew(t, testConfig(StickyOff))
	for _, bes := range [][]Backend{
		{{ID: "", URL: "http://a"}},
		{{ID: "a", URL: "http://a"}, {ID: "a", URL: "http://b"}},
		{{ID: "a", URL: "ftp://a"}},
		{{ID: "a", URL: "http://"}},
		{{ID: "a", URL: "http://a b"}},
	} {
		if err := lb.SetBackends("p", bes); err == nil {
			t.Errorf("SetBackends(%v) accepted", bes)
		}
	}
	if len(lb.Status().Pools) != 0 {
		t.Errorf("a failed SetBackends changed the pools")
	}
}

func TestPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy Policy
		minB2  int // of 300 requests with weights 1:2
	}{
		{RoundRobin, 200},
		{LeastConn, 100},
		{PowerOfTwo, 100},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			f := newFakeNodes("b1", "b2")
			cfg := testConfig(StickyOff)
			cfg.Transport = f
			cfg.Services[0].Policy = tc.policy
			lb := mustNew(t, cfg)
			lb.SetBackends("p", []Backend{{ID: "b1", URL: "http://b1"}, {ID: "b2", URL: "http://b2", Weight: 2}})
			got := serveN(lb, 300, "")
			if got["b2:OK"] < tc.minB2 || got["b1:OK"]+got["b2:OK"] != 300 {
				t.Errorf("%v", got)
			}
		})
	}
}

func TestSessionTable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newSessionTable(sessionShards * 2) // 2 per shard
		tb.Pin("p", "s1", "b1", time.Minute)
		if id, ok := tb.Lookup("p", "s1", time.Minute); !ok || id != "b1" {
			t.Fatalf("Lookup = %q %v", id, ok)
		}
		if _, ok := tb.Lookup("q", "s1", time.Minute); ok {
			t.Error("sessions leak between pools")
		}
		// Sliding TTL: used every 40 s, it outlives a 1-minute TTL.
		for range 3 {
			time.Sleep(40 * time.Second)
			if _, ok := tb.Lookup("p", "s1", time.Minute); !ok {
				t.Fatal("a used session expired")
			}
		}
		time.Sleep(61 * time.Second)
		if _, ok := tb.Lookup("p", "s1", time.Minute); ok {
			t.Fatal("an idle session outlived its TTL")
		}
		// Fill far beyond capacity; the table stays bounded, and a session
		// in use (so furthest from expiry) survives eviction.
		tb.Pin("p", "keep", "b9", 2*time.Hour)
		for i := range 10000 {
			tb.Pin("p", strconv.Itoa(i), "b"+strconv.Itoa(i%3), time.Hour)
			if i%100 == 0 {
				time.Sleep(time.Second)
				tb.Lookup("p", "keep", 2*time.Hour)
			}
		}
		if n := tb.Len(); n > sessionShards*2 {
			t.Errorf("table holds %d, cap %d", n, sessionShards*2)
		}
		if id, ok := tb.Lookup("p", "keep", time.Hour); !ok || id != "b9" {
			t.Errorf("recently used session evicted: %q %v", id, ok)
		}
		total := 0
		for _, b := range []string{"b0", "b1", "b2", "b9"} {
			total += tb.Pinned("p", b)
		}
		if total != tb.Len() {
			t.Errorf("pinned counts sum to %d, table holds %d", total, tb.Len())
		}
		tb.Forget("p", "keep")
		if _, ok := tb.Lookup("p", "keep", time.Hour); ok {
			t.Error("Forget kept the session")
		}
	})
}

func TestCookieParsing(t *testing.T) {
	for _, tc := range []struct {
		vals []string
		want string
	}{
		{[]string{"JSESSIONID=abc"}, "abc"},
		{[]string{"a=1; JSESSIONID=abc; b=2"}, "abc"},
		{[]string{"a=1", "JSESSIONID=\"q\""}, "q"},
		{[]string{"XJSESSIONID=no; JSESSIONIDX=no"}, ""},
		{[]string{"JSESSIONID="}, ""},
		{nil, ""},
	} {
		if got := sessionFromCookies(tc.vals, "JSESSIONID"); got != tc.want {
			t.Errorf("%q → %q, want %q", tc.vals, got, tc.want)
		}
	}
	for path, want := range map[string]string{
		"/app;jsessionid=ABC":      "ABC",
		"/app;JSESSIONID=ABC/next": "ABC",
		"/a;x=1;jsessionid=Z":      "Z",
		"/app;jsessionidx=1":       "",
		"/app":                     "",
		"/app;":                    "",
	} {
		if got := sessionFromPath(path, "jsessionid"); got != want {
			t.Errorf("%q → %q, want %q", path, got, want)
		}
	}
	for line, want := range map[string]string{
		"JSESSIONID=abc; Path=/; HttpOnly": "abc",
		"JSESSIONID=\"abc\"":               "abc",
		"other=1; JSESSIONID=abc":          "",
	} {
		if got, _ := sessionFromSetCookie(line, "JSESSIONID"); got != want {
			t.Errorf("%q → %q, want %q", line, got, want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	peer := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct {
		peer netip.Addr
		xff  []string
		want string
	}{
		{netip.MustParseAddr("192.0.2.9"), []string{"1.1.1.1"}, "192.0.2.9"},
		{peer, []string{"1.1.1.1"}, "1.1.1.1"},
		{peer, []string{"6.6.6.6, 1.1.1.1, 10.0.0.7"}, "1.1.1.1"},
		{peer, []string{"6.6.6.6", "1.1.1.1"}, "1.1.1.1"},
		{peer, []string{"garbage"}, "10.0.0.1"},
		{peer, nil, "10.0.0.1"},
	} {
		if got := clientAddr(tc.peer, tc.xff, nil, trusted); got.String() != tc.want {
			t.Errorf("%v %q → %v, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

func TestStatusHandler(t *testing.T) {
	n := newCarbonNode(t, "n1")
	cfg := testConfig(StickyLearn)
	cfg.Services[0].MinInstances = 2
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "n1", URL: n.srv.URL, Metadata: map[string]string{"subDomain": "worker"}}})
	front, c := newFront(t, lb)
	for range 5 {
		get(t, c, front.URL+"/", "")
	}
	rec := httptest.NewRecorder()
	lb.StatusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	s, b := st.Services[0], st.Pools[0].Backends[0]
	got := []any{s.Healthy, s.BelowMin, s.Requests, b.State, b.Requests, b.Pinned, b.Metadata["subDomain"], b.P99 > 0}
	want := []any{1, true, uint64(5), "up", uint64(5), 5, "worker", true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status mismatch (-want +got):\n%s", diff)
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/status", nil)
	req.Header.Set("Accept", "text/html")
	lb.StatusHandler().ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), "<td>n1</td>") || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HTML status page: %s", rec.Body)
	}
}

func TestTimeoutGives504(t *testing.T) {
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	cfg := testConfig(StickyOff)
	cfg.Services[0].Timeouts.Read = 50 * time.Millisecond
	cfg.Services[0].Retry.Attempts = 1
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{{ID: "slow", URL: slow.URL}})
	front, c := newFront(t, lb)
	if code, _, _, _ := get(t, c, front.URL+"/", ""); code != 504 {
		t.Errorf("status %d, want 504", code)
	}
}

// Fuzz targets for the parsers of client-controlled input. The seeds come
// from the repository's nginx configurations and the benchmark's traffic.
func FuzzSessionFromCookies(f *testing.F) {
	f.Add("JSESSIONID=0331C764C54C18BE926F5E2F468DB0D0; lb=abc", "JSESSIONID")
	f.Add("a=1;;  JSESSIONID=\"x\" ;", "JSESSIONID")
	f.Add("", "CARBONLB")
	f.Fuzz(func(t *testing.T, v, name string) {
		if !validCookieName(name) {
			return
		}
		got := sessionFromCookies([]string{v}, name)
		if got != "" && !strings.Contains(v, got) {
			t.Errorf("%q: value %q not in the header", v, got)
		}
		sessionFromPath(v, strings.ToLower(name))
		sessionFromSetCookie(v, name)
	})
}

// TestClientAddrForwarded: without X-Forwarded-For, the for= nodes of RFC
// 7239 Forwarded are walked the same way; X-Forwarded-For wins when both
// are present.
func TestClientAddrForwarded(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	peer := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct {
		peer netip.Addr
		xff  []string
		fwd  []string
		want string
	}{
		{netip.MustParseAddr("192.0.2.9"), nil, []string{"for=1.1.1.1"}, "192.0.2.9"},
		{peer, nil, []string{"for=1.1.1.1"}, "1.1.1.1"},
		{peer, nil, []string{"For=1.1.1.1;proto=https"}, "1.1.1.1"},
		{peer, nil, []string{"for=6.6.6.6, for=1.1.1.1:4711;by=10.0.0.7, for=10.0.0.7"}, "1.1.1.1"},
		{peer, nil, []string{"for=6.6.6.6", "for=\"[2001:db8:cafe::17]:4711\""}, "2001:db8:cafe::17"},
		{peer, nil, []string{"for=1.1.1.1;host=\"a,b;c\", for=\"[fd00::1]\""}, "1.1.1.1"},
		{peer, nil, []string{"proto=http", "host=x;for=1.1.1.1"}, "1.1.1.1"},
		{peer, nil, []string{"for=1.1.1.1, proto=http"}, "10.0.0.1"}, // the nearest proxy did not say
		{peer, nil, []string{"for=1.1.1.1, for=unknown"}, "10.0.0.1"},
		{peer, nil, []string{"for=1.1.1.1, for=_hidden, for=10.0.0.9"}, "10.0.0.9"},
		{peer, nil, []string{"for=2001:db8::1"}, "10.0.0.1"},
		{peer, nil, []string{"for=\"[2001:db8::1\""}, "10.0.0.1"},
		{peer, nil, []string{"for=\"[2001:db8::1]x\""}, "10.0.0.1"},
		{peer, []string{"2.2.2.2"}, []string{"for=1.1.1.1"}, "2.2.2.2"},
	} {
		if got := clientAddr(tc.peer, tc.xff, tc.fwd, trusted); got.String() != tc.want {
			t.Errorf("%v X-Forwarded-For %q Forwarded %q → %v, want %s", tc.peer, tc.xff, tc.fwd, got, tc.want)
		}
	}
}

func FuzzClientAddr(f *testing.F) {
	f.Add("6.6.6.6, 10.0.0.2", "", "10.0.0.1")
	f.Add("[::1], 2001:db8::1", "", "::1")
	f.Add(",,,", "", "10.0.0.1")
	f.Add("", "for=6.6.6.6, for=\"[::1]:80\";proto=https", "::1")
	f.Add("", "for=\"\\\";,\", for=10.0.0.2", "10.0.0.1")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	f.Fuzz(func(t *testing.T, xff, fwd, peer string) {
		p, err := netip.ParseAddr(peer)
		if err != nil {
			return
		}
		var xffs, fwds []string
		if xff != "" {
			xffs = []string{xff}
		}
		if fwd != "" {
			fwds = []string{fwd}
		}
		a := clientAddr(p, xffs, fwds, trusted)
		if !a.IsValid() {
			t.Errorf("invalid client address for X-Forwarded-For %q Forwarded %q from %v", xff, fwd, p)
		}
		if !inPrefixes(p, trusted) && a != p {
			t.Errorf("untrusted peer %v attributed to %v", p, a)
		}
	})
}

// FuzzTenantRange is seeded with the tenant_range values of the
// loadbalancer.conf files in the shared test data, when present.
func FuzzTenantRange(f *testing.F) {
	for _, s := range []string{"*", "1-100", "101-200", "7", " 1 - 2 ", "-5--1"} {
		f.Add(s)
	}
	files, _ := filepath.Glob("../../shared/testdata/carbon/loadbalancer/*.conf")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if _, v, ok := strings.Cut(strings.TrimSpace(line), "tenant_range"); ok {
				f.Add(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), ";")))
			}
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseTenantRange(s)
		if err == nil && !r.all && r.min > r.max {
			t.Errorf("%q parsed to an empty range %+v", s, r)
		}
	})
}

// TestSessionTableModel checks the open-addressing table (probing,
// backward-shift deletion, growth) against a map under random operations.
func TestSessionTableModel(t *testing.T) {
	tb := newSessionTable(1 << 20)
	model := map[string]string{}
	r := uint64(1)
	next := func(n uint64) uint64 { r = r*6364136223846793005 + 1442695040888963407; return (r >> 33) % n }
	for i := range 200000 {
		id := strconv.FormatUint(next(3000), 10)
		switch next(4) {
		case 0, 1:
			be := "b" + strconv.FormatUint(next(5), 10)
			tb.Pin("p", id, be, time.Hour)
			model[id] = be
		case 2:
			tb.Forget("p", id)
			delete(model, id)
		default:
			got, ok := tb.Lookup("p", id, time.Hour)
			want, wok := model[id]
			if ok != wok || got != want {
				t.Fatalf("op %d: Lookup(%s) = %q %v, want %q %v", i, id, got, ok, want, wok)
			}
		}
	}
	if tb.Len() != len(model) {
		t.Errorf("Len %d, model %d", tb.Len(), len(model))
	}
}

func TestHealthHandler(t *testing.T) {
	cfg := testConfig(StickyOff)
	mgt := cfg.Services[0]
	mgt.Name, mgt.Pool, mgt.Hosts, mgt.Default = "mgt", "q", []string{"mgt.example.com"}, false
	cfg.Services = append(cfg.Services, mgt)
	lb := mustNew(t, cfg)
	check := func(wantCode int, wantBody string) {
		t.Helper()
		rec := httptest.NewRecorder()
		lb.HealthHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		if rec.Code != wantCode || rec.Body.String() != wantBody {
			t.Errorf("healthz: %d %q, want %d %q", rec.Code, rec.Body, wantCode, wantBody)
		}
	}
	svc := cfg.Services[0].Name
	check(503, "no healthy backend: "+svc+", mgt\n") // no backends anywhere
	lb.SetBackends("p", []Backend{{ID: "a", URL: "http://10.0.0.1"}})
	check(200, "degraded: mgt\n") // one service still serves: keep this instance
	lb.SetBackends("q", []Backend{{ID: "m", URL: "http://10.0.0.2"}})
	check(200, "ok\n")
	lb.Close()
	check(503, "closed\n")

	empty := DefaultConfig()
	empty.Services, empty.Logger = nil, quietLogger()
	lb2 := mustNew(t, empty)
	rec := httptest.NewRecorder()
	lb2.HealthHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 503 {
		t.Errorf("healthz with no services: %d, want 503", rec.Code)
	}
}

// TestSessionTableConcurrent: lock-free lookups of stable sessions never
// miss while writers insert, remove and grow the same shards.
func TestSessionTableConcurrent(t *testing.T) {
	tb := newSessionTable(1 << 20)
	for i := range 256 {
		tb.Pin("p", "stable"+strconv.Itoa(i), "b"+strconv.Itoa(i%4), time.Hour)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20000 {
			id := "churn" + strconv.Itoa(i%3000)
			if i%3 == 2 {
				tb.Forget("p", id)
			} else {
				tb.Pin("p", id, "x", time.Hour)
			}
		}
	}()
	for round := 0; ; round++ {
		select {
		case <-done:
			return
		default:
		}
		if round == 1000 {
			<-done
			return
		}
		for i := range 256 {
			id, ok := tb.Lookup("p", "stable"+strconv.Itoa(i), time.Hour)
			if !ok || id != "b"+strconv.Itoa(i%4) {
				t.Fatalf("round %d: stable session %d: %q %v", round, i, id, ok)
			}
		}
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		c    Cookie
		want string
	}{
		{Cookie{Name: "CARBONLB", Path: "/"}, "CARBONLB=; Path=/; HttpOnly"},
		{Cookie{Name: "lb", Path: "/carbon", Domain: "example.com", MaxAge: 90 * time.Minute, NoHTTPOnly: true, SameSite: http.SameSiteStrictMode},
			"lb=; Path=/carbon; Domain=example.com; Max-Age=5400; SameSite=Strict"},
		{Cookie{Name: "lb", Path: "/", SameSite: http.SameSiteNoneMode}, "lb=; Path=/; HttpOnly; SameSite=None"},
	} {
		kv, attrs := cookieParts(tc.c)
		if got := kv + attrs; got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestForwardedIPv6(t *testing.T) {
	cfg := testConfig(StickyOff)
	cfg.Forwarded = true
	lb := mustNew(t, cfg)
	r := httptest.NewRequest("GET", "http://[2001:db8::1]:8443/", nil)
	r.RemoteAddr = "[2001:db8::7]:50000"
	peerStr, peer := splitPeer(r.RemoteAddr)
	lb.prepareHeaders(r, lb.state.Load(), peerStr, peer)
	for k, want := range map[string]string{
		"X-Forwarded-For": "2001:db8::7",
		"Forwarded":       `for="[2001:db8::7]";host="[2001:db8::1]:8443";proto=http`,
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
