package balancer

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTenantRangeRouting: loadbalancer.conf's tenant_range with tenants
// resolved from a tenant file: a tenant in a range goes to that service's
// pool, one outside every range and an unknown tenant domain get 404
// naming the reason, the super tenant goes to "*".
func TestTenantRangeRouting(t *testing.T) {
	low, high, all := newCarbonNode(t, "low"), newCarbonNode(t, "high"), newCarbonNode(t, "all")
	file := filepath.Join(t.TempDir(), "tenants")
	os.WriteFile(file, []byte("# domain id\nlow.example.com 5\nHigh.Example.com 150\nfar.example.com 900\n"), 0o644)
	tenants, err := LoadTenants(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(StickyOff)
	svc := func(name, pool, rng string) Service {
		s := DefaultService(name, pool, "as.example.com")
		s.TenantRange = rng
		return s
	}
	cfg.Services = []Service{svc("low", "low", "1-100"), svc("high", "high", "101-200")}
	cfg.Tenants = tenants
	lb := mustNew(t, cfg)
	lb.SetBackends("low", []Backend{low.backend()})
	lb.SetBackends("high", []Backend{high.backend()})
	lb.SetBackends("all", []Backend{all.backend()})
	front, c := newFront(t, lb)
	do := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", front.URL+path, nil)
		req.Host = "as.example.com"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 {
			return 200, resp.Header.Get("X-Backend")
		}
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/t/low.example.com/services/echo", 200, "low"},
		{"/t/high.example.com/services/echo", 200, "high"},
		{"/t/HIGH.example.com/carbon/", 200, "high"},
		{"/t/far.example.com/services/echo", 404, "tenant 900 is outside every tenant range of this host"},
		{"/t/nobody.example.com/services/echo", 404, `unknown tenant domain "nobody.example.com"`},
		{"/services/echo", 404, "no service for the super tenant on this host"},
	} {
		if code, got := do(tc.path); code != tc.code || got != tc.want {
			t.Errorf("%s: %d %q, want %d %q", tc.path, code, got, tc.code, tc.want)
		}
	}
	// A "*" service takes what the ranges do not.
	cfg.Services = append(cfg.Services, svc("all", "all", "*"))
	if err := lb.Update(cfg); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/t/low.example.com/x": "low", "/t/far.example.com/x": "all",
		"/t/nobody.example.com/x": "all", "/x": "all",
	} {
		if code, got := do(path); code != 200 || got != want {
			t.Errorf("with *: %s: %d %q, want %s", path, code, got, want)
		}
	}
}

func TestParseTenants(t *testing.T) {
	got, err := ParseTenants("t", strings.NewReader("\n# c\na.com 1\n  B.com\t22  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"a.com": 1, "b.com": 22}, got.Domains); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"a.com", "a.com x", "a.com 0", "a.com -3", "a.com 1 2", "a.com 1\na.com 2", "a/b 1"} {
		if _, err := ParseTenants("t", strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "t:") {
			t.Errorf("%q: err %v, want one naming the line", bad, err)
		}
	}
	f := TenantFunc(func(host, path string) (int, bool) { return 7, host == "x" })
	if id, ok := f.Tenant("x", "/"); id != 7 || !ok {
		t.Error("TenantFunc")
	}
}

// FuzzParseTenants: a tenant file never panics the reader, and what it
// accepts holds lower-case domains with positive ids.
func FuzzParseTenants(f *testing.F) {
	for _, s := range []string{"a.com 1\n# c\n\nB.com\t22\n", "a.com 0", "a.com 1\na.com 2", "x", "a/b 3", "\xff 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTenants("t", strings.NewReader(s))
		if err != nil {
			return
		}
		for d, id := range got.Domains {
			if d != strings.ToLower(d) || id <= 0 || d == "" {
				t.Errorf("%q: domain %q id %d", s, d, id)
			}
			if n, ok := got.Tenant("", "/t/"+d+"/x"); !ok || n != id {
				t.Errorf("%q: %q does not resolve to %d", s, d, id)
			}
		}
	})
}
