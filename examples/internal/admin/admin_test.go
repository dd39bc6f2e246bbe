package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/front"
	"github.com/carbonlb/carbonlb/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

func TestHandlerRoutes(t *testing.T) {
	lb, err := balancer.New(balancer.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	pools := front.NewPools(lb)
	if err := pools.SetBackends("default", []balancer.Backend{{ID: "b1", URL: "http://10.0.0.1:9763"}}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(metrics.Config{Balancer: lb}))
	members := func() []balancer.StatusMember {
		return []balancer.StatusMember{{Name: "node-a", Addr: "10.0.0.1:4000", Pool: "default", State: "alive"}}
	}
	srv := httptest.NewServer(Handler(Config{Balancer: lb, Pools: pools, Members: members, Metrics: reg}))
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		code         int
		body         string // a substring of the body
	}{
		{"GET", "/status", 200, `"p50_ms"`},
		{"GET", "/status?html", 200, `data-member="node-a"`},
		{"GET", "/healthz", 200, "ok"},
		{"GET", "/metrics", 200, `carbonlb_backend_up{backend="b1",pool="default"} 1`},
		{"GET", "/debug/pprof/", 200, "goroutine"},
		{"GET", "/backends/drain?pool=default&backend=b1", 405, ""},
		{"POST", "/backends/drain", 400, "pool and backend are required"},
		{"POST", "/backends/weight?pool=default&backend=b1&weight=x", 400, "whole number"},
		{"POST", "/backends/weight?pool=default&backend=b1&weight=0", 400, "at least 1"},
		{"POST", "/backends/undrain?pool=default&backend=nope", 404, "no such backend"},
		{"POST", "/backends/drain?pool=default&backend=b1", 200, "default b1: draining weight 1"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
				t.Errorf("%d %q, want %d and %q", resp.StatusCode, b, tc.code, tc.body)
			}
		})
	}
}

func TestAddress(t *testing.T) {
	for _, tc := range []struct {
		in, out  string
		loopback bool
		ok       bool
	}{
		{":9090", "127.0.0.1:9090", true, true},
		{"127.0.0.1:9090", "127.0.0.1:9090", true, true},
		{"[::1]:9090", "[::1]:9090", true, true},
		{"localhost:9090", "localhost:9090", true, true},
		{"10.0.0.5:9090", "10.0.0.5:9090", false, true},
		{"admin.example.com:9090", "", false, false},
		{"9090", "", false, false},
	} {
		out, loopback, err := Address(tc.in)
		if (err == nil) != tc.ok || out != tc.out || loopback != tc.loopback {
			t.Errorf("Address(%q) = %q, %v, %v; want %q, %v, ok=%v", tc.in, out, loopback, err, tc.out, tc.loopback, tc.ok)
		}
	}
}
