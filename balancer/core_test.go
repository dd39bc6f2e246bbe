package balancer

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
