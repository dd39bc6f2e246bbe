package metrics

import (
	"crypto/x509"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/membership"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// cannedTransport answers every request in memory like a Carbon node: a
// short body, and a new JSESSIONID for a request without one.
type cannedTransport struct{ n atomic.Int64 }

func (c *cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
	if _, err := req.Cookie("JSESSIONID"); err != nil {
		h.Set("Set-Cookie", "JSESSIONID=S"+strconv.FormatInt(c.n.Add(1), 10)+"; Path=/")
	}
	return &http.Response{StatusCode: 200, ContentLength: 3, Request: req, Header: h,
		Body: io.NopCloser(strings.NewReader("ok\n"))}, nil
}

// newBalancer returns a balancer with the service "app" in front of the
// backends b1 and b2 of the pool "app", answered in memory.
func newBalancer(t testing.TB) *balancer.Balancer {
	cfg := balancer.DefaultConfig()
	cfg.Services = []balancer.Service{balancer.DefaultService("app", "app")}
	cfg.Services[0].Default = true
	cfg.Transport = &cannedTransport{}
	cfg.Logger = nil
	lb, err := balancer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lb.Close() })
	if err := lb.SetBackends("app", []balancer.Backend{
		{ID: "b1", URL: "http://10.0.0.1:9763"}, {ID: "b2", URL: "http://10.0.0.2:9763", Weight: 2},
	}); err != nil {
		t.Fatal(err)
	}
	return lb
}

// fakeCluster is a cluster of two workers and a manager, seen from a node
// whose health score is 1.
type fakeCluster struct{}

func (fakeCluster) Members() []membership.Member {
	m := func(name, sub string) membership.Member {
		return membership.Member{Name: name, Domain: "wso2.as.domain", SubDomain: sub,
			Addr: netip.MustParseAddrPort("10.0.0.9:4000"), Properties: map[string]string{}}
	}
	return []membership.Member{m("w1", "worker"), m("w2", "worker"), m("m1", "mgt")}
}

func (fakeCluster) Health() membership.Health {
	return membership.Health{Members: 3, Score: 1, WKA: 2, WKAAlive: 1, MessagesSent: 7, MessagesReceived: 9, MessagesShed: 2,
		MessagesDropped: 1, HandlerQueueDropped: 3, StateRequestsServed: 4, StateRequestsRefused: 5}
}

// scrape serves reg over HTTP in the text format and parses the answer.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// series returns the family's series as "label=value,..." → value; a
// histogram's value is its sample count.
func series(f *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	if f == nil {
		return out
	}
	for _, m := range f.Metric {
		var ls []string
		for _, l := range m.Label {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(ls)
		var v float64
		switch {
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		case m.Histogram != nil:
			v = float64(m.Histogram.GetSampleCount())
		}
		out[strings.Join(ls, ",")] = v
	}
	return out
}

func TestMetricsExposition(t *testing.T) {
	lb := newBalancer(t)
	cert, err := balancer.SelfSigned("app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	c := New(Config{Balancer: lb, Cluster: fakeCluster{},
		Certificates: func() []*x509.Certificate { return []*x509.Certificate{leaf} }})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)

	// Known traffic: three new sessions (round robin by weight: b2, b2,
	// b1 in some order), then two requests of the first session.
	var first *http.Cookie
	for range 3 {
		rec := httptest.NewRecorder()
		lb.ServeHTTP(rec, httptest.NewRequest("GET", "http://app.example.com/", nil))
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
		if first == nil {
			first = rec.Result().Cookies()[0]
		}
	}
	for range 2 {
		req := httptest.NewRequest("GET", "http://app.example.com/", nil)
		req.AddCookie(first)
		lb.ServeHTTP(httptest.NewRecorder(), req)
	}
	c.ObserveReload(nil)
	c.ObserveReload(errors.New("loadbalancer.conf:3:1: unexpected }"))

	fams := scrape(t, reg)
	got := map[string]map[string]float64{}
	for _, name := range []string{
		"carbonlb_service_requests_total", "carbonlb_service_responses_total", "carbonlb_service_sticky_hits_total", "carbonlb_service_backends_up",
		"carbonlb_service_below_min_instances", "carbonlb_sessions", "carbonlb_pool_queue_current",
		"carbonlb_backend_up", "carbonlb_backend_weight", "carbonlb_backend_info", "carbonlb_backend_health_transitions_total",
		"carbonlb_cluster_members", "carbonlb_cluster_pool_members", "carbonlb_cluster_health_score",
		"carbonlb_cluster_messages_total", "carbonlb_cluster_state_requests_total",
		"carbonlb_config_reloads_total", "carbonlb_config_reload_failures_total", "carbonlb_config_last_reload_successful",
	} {
		got[name] = series(fams[name])
	}
	want := map[string]map[string]float64{
		"carbonlb_service_requests_total": {"service=app": 5},
		"carbonlb_service_responses_total": {"code=1xx,service=app": 0, "code=2xx,service=app": 5, "code=3xx,service=app": 0,
			"code=4xx,service=app": 0, "code=5xx,service=app": 0},
		"carbonlb_service_sticky_hits_total":        {"service=app": 2},
		"carbonlb_service_backends_up":              {"service=app": 2},
		"carbonlb_service_below_min_instances":      {"service=app": 0},
		"carbonlb_sessions":                         {"": 3},
		"carbonlb_pool_queue_current":               {"pool=app": 0},
		"carbonlb_backend_up":                       {"backend=b1,pool=app": 1, "backend=b2,pool=app": 1},
		"carbonlb_backend_weight":                   {"backend=b1,pool=app": 1, "backend=b2,pool=app": 2},
		"carbonlb_backend_health_transitions_total": {"backend=b1,pool=app": 0, "backend=b2,pool=app": 0},
		"carbonlb_backend_info": {
			"backend=b1,pool=app,url=http://10.0.0.1:9763": 1, "backend=b2,pool=app,url=http://10.0.0.2:9763": 1},
		"carbonlb_cluster_members":      {"state=alive": 3, "state=failed": 0, "state=left": 0},
		"carbonlb_cluster_pool_members": {"pool=wso2.as.domain/mgt": 1, "pool=wso2.as.domain/worker": 2},
		"carbonlb_cluster_health_score": {"": 1},
		"carbonlb_cluster_messages_total": {"outcome=sent": 7, "outcome=received": 9, "outcome=shed": 2,
			"outcome=dropped": 1, "outcome=overflow": 3},
		"carbonlb_cluster_state_requests_total":  {"outcome=served": 4, "outcome=refused": 5},
		"carbonlb_config_reloads_total":          {"": 2},
		"carbonlb_config_reload_failures_total":  {"": 1},
		"carbonlb_config_last_reload_successful": {"": 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("families mismatch (-want +got):\n%s", diff)
	}

	// Sums across backends: every request went to one, every new session
	// is pinned to one.
	sum := func(name string) (s float64) {
		for _, v := range series(fams[name]) {
			s += v
		}
		return s
	}
	for name, want := range map[string]float64{
		"carbonlb_backend_requests_total":           5,
		"carbonlb_backend_responses_total":          5,
		"carbonlb_backend_pinned_sessions":          3,
		"carbonlb_backend_request_duration_seconds": 5,
	} {
		if got := sum(name); got != want {
			t.Errorf("sum of %s = %v, want %v", name, got, want)
		}
	}

	// The histogram's buckets are the balancer's power-of-two bounds.
	h := fams["carbonlb_backend_request_duration_seconds"]
	if h.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("request duration is a %v, want a histogram", h.GetType())
	}
	var bounds []float64
	for _, b := range h.Metric[0].Histogram.Bucket {
		bounds = append(bounds, b.GetUpperBound())
	}
	wantBounds := []float64{}
	for i := minBucket; i <= maxBucket; i++ {
		wantBounds = append(wantBounds, float64(uint64(1)<<i)/1e6)
	}
	wantBounds = append(wantBounds, math.Inf(1))
	if diff := cmp.Diff(wantBounds, bounds); diff != "" {
		t.Errorf("bucket bounds mismatch (-want +got):\n%s", diff)
	}

	// The backend's state is one series per state.
	states := series(fams["carbonlb_backend_state"])
	if len(states) != 12 || states["backend=b1,pool=app,state=up"] != 1 || states["backend=b1,pool=app,state=down"] != 0 {
		t.Errorf("carbonlb_backend_state: %v", states)
	}

	certs := fams["carbonlb_certificate_not_after_timestamp_seconds"]
	if certs == nil || len(certs.Metric) != 1 || certs.Metric[0].Gauge.GetValue() != float64(leaf.NotAfter.Unix()) {
		t.Errorf("certificate not-after: %v, want %d", certs, leaf.NotAfter.Unix())
	} else if l := series(certs); l["name=app.example.com,serial="+leaf.SerialNumber.Text(16)] == 0 {
		t.Errorf("certificate labels: %v", l)
	}
}

func TestCollectorNilSources(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(Config{}))
	fams := scrape(t, reg)
	var names []string
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"carbonlb_config_last_reload_success_timestamp_seconds", "carbonlb_config_last_reload_successful",
		"carbonlb_config_reload_failures_total", "carbonlb_config_reloads_total"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("families mismatch (-want +got):\n%s", diff)
	}
}

// serveBenchmark serves requests of one pinned session; with reg, it
// gathers the registry every 64 requests, outside the measured time.
func serveBenchmark(lb *balancer.Balancer, reg *prometheus.Registry) func(*testing.B) {
	return func(b *testing.B) {
		req := httptest.NewRequest("GET", "http://app.example.com/", nil)
		req.Header.Set("Cookie", "JSESSIONID=S1")
		w := &nopWriter{h: http.Header{}}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if reg != nil && i%64 == 0 {
				b.StopTimer()
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			i++
			clear(w.h)
			r := *req
			r.Header = http.Header{"Cookie": req.Header["Cookie"]}
			lb.ServeHTTP(w, &r)
		}
	}
}

// nopWriter is a ResponseWriter that keeps nothing, so that allocs/op are
// the handler's own.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkServeHTTPCollector measures ServeHTTP without a collector and
// with one registered and scraped.
func BenchmarkServeHTTPCollector(b *testing.B) {
	lb := newBalancer(b)
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(Config{Balancer: lb}))
	b.Run("none", serveBenchmark(lb, nil))
	b.Run("scraped", serveBenchmark(lb, reg))
}

func TestCollectorNoHotPathCost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two benchmarks; skipped with -short")
	}
	lb := newBalancer(t)
	// Pin the session S1 before measuring.
	req := httptest.NewRequest("GET", "http://app.example.com/", nil)
	lb.ServeHTTP(httptest.NewRecorder(), req)
	none := testing.Benchmark(serveBenchmark(lb, nil))
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(Config{Balancer: lb}))
	scraped := testing.Benchmark(serveBenchmark(lb, reg))
	if none.N == 0 || scraped.N == 0 {
		t.Fatal("a benchmark failed")
	}
	a, s := none.AllocsPerOp(), scraped.AllocsPerOp()
	t.Logf("allocs/op without a collector %d (%d B/op), scraped %d (%d B/op)", a, none.AllocedBytesPerOp(), s, scraped.AllocedBytesPerOp())
	// The race detector makes sync.Pool drop items at random, so that the
	// average of allocations may move by one either way under -race.
	tolerance := int64(0)
	if raceEnabled {
		tolerance = 1
	}
	if d := s - a; d > tolerance || d < -tolerance {
		t.Errorf("allocs/op: %d with a scraped collector, %d without", s, a)
	}
}
