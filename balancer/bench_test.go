package balancer

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchBackend answers like the harness's fake Carbon node: a short body
// and X-Backend.
func benchBackend(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "b1")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "b1\n")
	}))
	b.Cleanup(srv.Close)
	return srv
}

// cannedTransport answers every request in memory, so a benchmark measures
// the handler alone.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
	}
	return &http.Response{StatusCode: 200, ContentLength: 3, Request: req,
		Header: http.Header{"X-Backend": {"b1"}, "Content-Type": {"text/plain; charset=utf-8"}},
		Body:   io.NopCloser(strings.NewReader("b1\n"))}, nil
}

// nopWriter is a ResponseWriter that keeps nothing, so that allocs/op are
// the handler's own.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

func benchRequest() *http.Request {
	req := httptest.NewRequest("GET", "http://app.example.com/carbon/index.jsp", nil)
	req.Header.Set("Cookie", "JSESSIONID=0331C764C54C18BE926F5E2F468DB0D0")
	req.Header.Set("User-Agent", "wrk")
	return req
}

func runHandler(b *testing.B, h http.Handler) {
	req := benchRequest()
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		r := *req
		r.Header = http.Header{"Cookie": req.Header["Cookie"], "User-Agent": req.Header["User-Agent"]}
		h.ServeHTTP(w, &r)
	}
}

// BenchmarkServeHTTP compares the Balancer (sticky learn, with a learned
// session, passive health, retries, forwarding headers, statistics) with a
// bare httputil.ReverseProxy, against the same backend: in memory (the
// handlers' own cost) and over loopback (with net/http's client).
func BenchmarkServeHTTP(b *testing.B) {
	newLB := func(b *testing.B, rt http.RoundTripper, u string) *Balancer {
		cfg := testConfig(StickyLearn)
		cfg.Transport = rt
		lb, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { lb.Close() })
		lb.SetBackends("p", []Backend{{ID: "b1", URL: u}, {ID: "b2", URL: u}})
		lb.sessions.Pin("p", "0331C764C54C18BE926F5E2F468DB0D0", "b1", time.Hour)
		return lb
	}
	newRP := func(rt http.RoundTripper, u string) *httputil.ReverseProxy {
		target, _ := url.Parse(u)
		return &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
			Transport: rt,
		}
	}
	b.Run("inmemory/balancer", func(b *testing.B) {
		runHandler(b, newLB(b, cannedTransport{}, "http://b1"))
	})
	b.Run("inmemory/reverseproxy", func(b *testing.B) {
		runHandler(b, newRP(cannedTransport{}, "http://b1"))
	})
	b.Run("loopback/balancer", func(b *testing.B) {
		srv := benchBackend(b)
		runHandler(b, newLB(b, nil, srv.URL))
	})
	b.Run("loopback/reverseproxy", func(b *testing.B) {
		srv := benchBackend(b)
		tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		runHandler(b, newRP(tr, srv.URL))
	})
}

// BenchmarkSessionTable measures the built-in session table holding one
// million sessions: lookup time per operation, and the memory per session
// (reported as bytes/session). The clock is read by the request path once
// per request, not per lookup, so the benchmark passes a time it reads
// every 1024 operations.
func BenchmarkSessionTable(b *testing.B) {
	const n = 1 << 20
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.FormatUint(uint64(i)*0x9e3779b97f4a7c15, 16) + "0331C764C54C18BE"
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t := newSessionTable(n + n/4) // shards fill unevenly: room so none evicts
	backends := []string{"b1", "b2", "b3", "b4"}
	for i, id := range ids {
		t.Pin("wso2.esb.domain/worker", id, backends[i%4], time.Hour)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSession := float64(after.HeapAlloc-before.HeapAlloc) / n
	if t.Len() != n {
		b.Fatalf("table holds %d of %d", t.Len(), n)
	}
	var clock int64
	var ticks int
	now := func() int64 {
		if ticks&1023 == 0 {
			clock = time.Now().UnixNano()
		}
		ticks++
		return clock
	}
	b.Run("Lookup", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := t.lookupAt("wso2.esb.domain/worker", ids[i&(n-1)], time.Hour, now()); !ok {
				b.Fatal("miss")
			}
			i++
		}
		b.ReportMetric(perSession, "bytes/session")
	})
	// The active sessions of a busy minute are a small part of a full
	// table: lookups over 16,384 of the million.
	b.Run("LookupHot", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			t.lookupAt("wso2.esb.domain/worker", ids[(i&(1<<14-1))*61], time.Hour, now())
			i++
		}
	})
	// The ruler: one dependent load at a random place of an array as large
	// as the table's slots, the memory latency a lookup cannot beat.
	b.Run("MemoryLatency", func(b *testing.B) {
		mem := make([]uint64, 2*(n+n/4)*2) // 16 bytes a slot, 2 slots a session
		for i := range mem {
			mem[i] = uint64(i)
		}
		x := uint64(1)
		for b.Loop() {
			x = x*6364136223846793005 + 1442695040888963407
			x ^= mem[(x>>17)%uint64(len(mem))] & 1
		}
	})
	b.Run("LookupParallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			var clock int64
			for pb.Next() {
				if i&1023 == 0 {
					clock = time.Now().UnixNano()
				}
				t.lookupAt("wso2.esb.domain/worker", ids[i&(n-1)], time.Hour, clock)
				i++
			}
		})
	})
	b.Run("Pin", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			t.pinAt("wso2.esb.domain/worker", ids[i&(n-1)], backends[i&3], time.Hour, now())
			i++
		}
	})
	runtime.KeepAlive(t)
}

// BenchmarkDecide measures the core's routing decision alone: host to
// service, sticky lookup, health filter.
func BenchmarkDecide(b *testing.B) {
	cfg := testConfig(StickyLearn)
	cfg.Transport = cannedTransport{}
	lb, _ := New(cfg)
	defer lb.Close()
	lb.SetBackends("p", []Backend{{ID: "b1", URL: "http://b1"}, {ID: "b2", URL: "http://b2"}})
	lb.sessions.Pin("p", "S", "b1", time.Hour)
	st := lb.state.Load()
	b.ReportAllocs()
	for b.Loop() {
		s := st.router.route(normHost("app.example.com"), 0, false)
		p := st.pools[s.Pool]
		if d := lb.decide(s, p, "S", "", time.Now().UnixNano(), nil, false); d.backend == nil {
			b.Fatal("no backend")
		}
	}
}
