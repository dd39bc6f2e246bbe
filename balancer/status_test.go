package balancer

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHistogramQuantile(t *testing.T) {
	var l latency
	// 100 durations: 50 of 3 µs (bucket [2, 4) µs), 50 of 100 ms
	// (bucket [65.536, 131.072) ms).
	for range 50 {
		l.add(3 * time.Microsecond)
		l.add(100 * time.Millisecond)
	}
	h := l.snapshot()
	for _, tc := range []struct {
		name string
		q    float64
		want time.Duration
	}{
		{"p25 halfway through the 2-4 µs bucket", 0.25, 3 * time.Microsecond},
		{"p50 at the top of the 2-4 µs bucket", 0.5, 4 * time.Microsecond},
		{"p75 halfway through the 65-131 ms bucket", 0.75, 98304 * time.Microsecond},
		{"p100 at the top of the 65-131 ms bucket", 1, 131072 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := h.Quantile(tc.q); got != tc.want {
				t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	if got, want := h.Sum, 50*(3*time.Microsecond+100*time.Millisecond); got != want {
		t.Errorf("Sum = %v, want %v", got, want)
	}
	if got := h.Count(); got != 100 {
		t.Errorf("Count = %d, want 100", got)
	}
	var empty Histogram
	if got := empty.Quantile(0.99); got != 0 {
		t.Errorf("empty Quantile = %v, want 0", got)
	}
}

func TestBackendStatusJSONUnits(t *testing.T) {
	until := time.Date(2026, 12, 2, 6, 0, 0, 0, time.FixedZone("CET", 3600))
	in := BackendStatus{ID: "n1", URL: "http://10.0.0.5:9763", State: "cooling", CoolingUntil: until, Trial: true,
		Since: until, P50: 1500 * time.Microsecond, P90: 12 * time.Millisecond, P99: 2 * time.Second}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{"p50_ms": fields["p50_ms"], "p90_ms": fields["p90_ms"], "p99_ms": fields["p99_ms"],
		"cooling_until": fields["cooling_until"], "trial": fields["trial"], "p50": fields["p50"]}
	want := map[string]any{"p50_ms": 1.5, "p90_ms": 12.0, "p99_ms": 2000.0,
		"cooling_until": "2026-12-02T06:00:00+01:00", "trial": true, "p50": nil}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON fields mismatch (-want +got):\n%s", diff)
	}
	var back BackendStatus
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, back); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestStatusPageShowsWhatNeedsAction(t *testing.T) {
	lb := mustNew(t, testConfig(StickyLearn))
	lb.SetBackends("p", []Backend{
		{ID: "ok", URL: "http://127.0.0.1:1"},
		{ID: "leaving", URL: "http://127.0.0.1:2", Draining: true},
	})
	h := lb.StatusHandlerWith(StatusConfig{Refresh: 2 * time.Second, Members: func() []StatusMember {
		return []StatusMember{{Name: "node-a", Addr: "10.0.0.5:4000", Pool: "p", State: "alive"}}
	}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status?html", nil))
	page := rec.Body.String()
	for _, want := range []string{
		`<meta http-equiv="refresh" content="2">`,
		`data-backend="leaving" data-state="draining"`,
		"backend leaving is draining",
		`<tr data-member="node-a">`,
		time.Now().Format("MST"),
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status?html&refresh=1", nil))
	if !strings.Contains(rec.Body.String(), `content="1"`) {
		t.Errorf("refresh=1 not honoured")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 1 || st.Time.IsZero() {
		t.Errorf("JSON members %v, time %v", st.Members, st.Time)
	}
}
