package balancer

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"math/bits"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Status is a point-in-time report of a Balancer.
type Status struct {
	// Time is when the report was taken, in the local time zone.
	Time     time.Time       `json:"time"`
	Services []ServiceStatus `json:"services"`
	// Pools holds every pool with backends, named by a service or not.
	Pools []PoolStatus `json:"pools"`
	// Sessions is the number of learned sessions in the built-in table
	// (-1 with a custom SessionStore).
	Sessions int `json:"sessions"`
	// Members lists the cluster's members when the status handler was
	// given StatusConfig.Members; Balancer.Status leaves it nil.
	Members []StatusMember `json:"members,omitempty"`
}

// StatusMember is a cluster member as the status page shows it. The
// balancer knows no cluster: a program that has one fills these from its
// membership (see StatusConfig.Members).
type StatusMember struct {
	Name string `json:"name"`
	// Addr is the address cluster messages reach the member at.
	Addr string `json:"addr"`
	// Pool is the pool the member's backend belongs to ("domain/subDomain").
	Pool string `json:"pool"`
	// State is the member's liveness ("alive", "left", "failed").
	State string `json:"state"`
	// Properties are the member's advertised properties.
	Properties map[string]string `json:"properties,omitempty"`
}

// ServiceStatus reports one service.
type ServiceStatus struct {
	Name   string   `json:"name"`
	Pool   string   `json:"pool"`
	Hosts  []string `json:"hosts,omitempty"`
	Sticky string   `json:"sticky"`
	Policy string   `json:"policy"`
	// Healthy is the number of the pool's backends that are up.
	Healthy int `json:"healthy"`
	// MinInstances is Service.MinInstances; BelowMin is set when Healthy
	// is below it.
	MinInstances int    `json:"min_instances,omitempty"`
	BelowMin     bool   `json:"below_min,omitempty"`
	Active       int64  `json:"active"`
	Requests     uint64 `json:"requests"`
	// Errors counts responses the balancer made itself (403, 404, 413,
	// 502, 503, 504).
	Errors uint64 `json:"errors"`
	// StickyHits, StickyMisses and Repins count stickiness outcomes: a
	// request routed by its session, a session id or cookie the balancer
	// does not know (a learn-mode id that is not stored, see
	// Sticky.PinUnknown), and a session moved off a down or removed
	// backend.
	StickyHits   uint64 `json:"sticky_hits"`
	StickyMisses uint64 `json:"sticky_misses"`
	Repins       uint64 `json:"repins"`
	// Retries counts tries after the first.
	Retries uint64 `json:"retries"`
	// MaxConns is Service.MaxConns (0: no limit); Queued counts the
	// requests that waited for a backend at its limit.
	MaxConns int    `json:"max_conns,omitempty"`
	Queued   uint64 `json:"queued,omitempty"`
	// Responses counts the responses the clients got by status class:
	// [0] 1xx to [4] 5xx, the balancer's own included; a client that went
	// away first counts as 4xx (nginx's 499).
	Responses [5]uint64 `json:"responses"`
}

// PoolStatus reports one pool.
type PoolStatus struct {
	Name     string          `json:"name"`
	Backends []BackendStatus `json:"backends"`
	// Waiting is the number of requests waiting now for a backend at its
	// connection limit; QueueTimeouts and QueueFull count those answered
	// 503 after Queue.Timeout and at once with Queue.Max waiting.
	Waiting       int64  `json:"waiting"`
	QueueTimeouts uint64 `json:"queue_timeouts"`
	QueueFull     uint64 `json:"queue_full"`
}

// BackendStatus reports one backend.
//
// In JSON, durations are milliseconds in fields named *_ms (p50_ms,
// p90_ms, p99_ms), and times are RFC 3339 with their zone.
type BackendStatus struct {
	ID       string            `json:"id"`
	URL      string            `json:"url"`
	Weight   int               `json:"weight"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// State is "up", "down" (active check), "cooling" (passive cool-off,
	// see CoolingUntil and Trial), "draining" or "slow-start".
	State string `json:"state"`
	// CoolingUntil is, in state "cooling", when the passive cool-off ends;
	// zero otherwise.
	CoolingUntil time.Time `json:"cooling_until"`
	// Trial is set in state "cooling" once the cool-off is over: the
	// backend is back in service when one trial request succeeds, and that
	// request is pending (waiting for a client, or in flight).
	Trial bool `json:"trial,omitempty"`
	// Since is when the backend last changed between up and down.
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	Active    int64     `json:"active"`
	// MaxConns is Backend.MaxConns (0: the service's limit applies).
	MaxConns int    `json:"max_conns,omitempty"`
	Requests uint64 `json:"requests"`
	// Failures counts failed tries (transport errors, timeouts, statuses
	// in HealthCheck.FailStatuses) and responses cut after their header.
	Failures uint64 `json:"failures"`
	// Pinned is the number of learned sessions pinned to the backend
	// (built-in table only).
	Pinned int `json:"pinned"`
	// Responses counts the backend's responses the clients got by status
	// class, as ServiceStatus.Responses.
	Responses [5]uint64 `json:"responses"`
	// P50, P90 and P99 are latency percentiles (time to the end of the
	// response body) since the backend joined, interpolated linearly
	// within the bucket of Latency that holds them. Zero without requests.
	P50 time.Duration `json:"-"`
	P90 time.Duration `json:"-"`
	P99 time.Duration `json:"-"`
	// Latency is the distribution the percentiles come from.
	Latency Histogram `json:"-"`
}

// backendStatusJSON is BackendStatus as JSON: durations as milliseconds.
type backendStatusJSON struct {
	ID           string            `json:"id"`
	URL          string            `json:"url"`
	Weight       int               `json:"weight"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	State        string            `json:"state"`
	CoolingUntil *time.Time        `json:"cooling_until,omitempty"`
	Trial        bool              `json:"trial,omitempty"`
	Since        time.Time         `json:"since"`
	LastError    string            `json:"last_error,omitempty"`
	Active       int64             `json:"active"`
	MaxConns     int               `json:"max_conns,omitempty"`
	Requests     uint64            `json:"requests"`
	Failures     uint64            `json:"failures"`
	Pinned       int               `json:"pinned"`
	Responses    [5]uint64         `json:"responses"`
	P50ms        float64           `json:"p50_ms"`
	P90ms        float64           `json:"p90_ms"`
	P99ms        float64           `json:"p99_ms"`
}

// MarshalJSON writes the backend with its durations in milliseconds.
func (bs BackendStatus) MarshalJSON() ([]byte, error) {
	j := backendStatusJSON{ID: bs.ID, URL: bs.URL, Weight: bs.Weight, Metadata: bs.Metadata, State: bs.State,
		Trial: bs.Trial, Since: bs.Since, LastError: bs.LastError, Active: bs.Active, MaxConns: bs.MaxConns,
		Requests: bs.Requests, Failures: bs.Failures, Pinned: bs.Pinned, Responses: bs.Responses,
		P50ms: millis(bs.P50), P90ms: millis(bs.P90), P99ms: millis(bs.P99)}
	if !bs.CoolingUntil.IsZero() {
		j.CoolingUntil = &bs.CoolingUntil
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes; Latency stays empty.
func (bs *BackendStatus) UnmarshalJSON(b []byte) error {
	var j backendStatusJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*bs = BackendStatus{ID: j.ID, URL: j.URL, Weight: j.Weight, Metadata: j.Metadata, State: j.State,
		Trial: j.Trial, Since: j.Since, LastError: j.LastError, Active: j.Active, MaxConns: j.MaxConns,
		Requests: j.Requests, Failures: j.Failures, Pinned: j.Pinned, Responses: j.Responses,
		P50: fromMillis(j.P50ms), P90: fromMillis(j.P90ms), P99: fromMillis(j.P99ms)}
	if j.CoolingUntil != nil {
		bs.CoolingUntil = *j.CoolingUntil
	}
	return nil
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

func fromMillis(ms float64) time.Duration {
	return time.Duration(math.Round(ms * float64(time.Millisecond)))
}

// LatencyBuckets is the number of buckets of a Histogram.
const LatencyBuckets = 40

// Histogram is a distribution of durations in power-of-two microsecond
// buckets: Counts[i] counts the durations d with d < 2^i µs that are not
// in a lower bucket (Counts[0]: under 1 µs), except the last bucket, which
// also counts everything longer. Sum is the total of the durations.
type Histogram struct {
	Counts [LatencyBuckets]uint64
	Sum    time.Duration
}

// UpperBound is the upper bound of bucket i: 2^i µs, or the largest
// Duration for the last bucket.
func (h *Histogram) UpperBound(i int) time.Duration {
	if i >= LatencyBuckets-1 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(uint64(1)<<uint(i)) * time.Microsecond
}

// Count is the number of durations counted.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile returns the q-quantile (0 < q ≤ 1), interpolated linearly within
// the bucket that holds it, as Prometheus' histogram_quantile does; zero
// when the histogram is empty. The last, unbounded bucket reports its lower
// bound.
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range h.Counts {
		if c == 0 || float64(cum+c) < rank {
			cum += c
			continue
		}
		var lo time.Duration
		if i > 0 {
			lo = h.UpperBound(i - 1)
		}
		if i == LatencyBuckets-1 {
			return lo
		}
		hi := h.UpperBound(i)
		frac := (rank - float64(cum)) / float64(c)
		return lo + time.Duration(frac*float64(hi-lo))
	}
	return h.UpperBound(LatencyBuckets - 2)
}

// latency is a histogram of durations in power-of-two microsecond buckets
// (see Histogram), updated with atomic adds only.
type latency struct {
	b   [LatencyBuckets]atomic.Uint64
	sum atomic.Int64 // nanoseconds
}

func (l *latency) add(d time.Duration) {
	us := uint64(d / time.Microsecond)
	i := bits.Len64(us)
	if i >= len(l.b) {
		i = len(l.b) - 1
	}
	l.b[i].Add(1)
	l.sum.Add(int64(d))
}

// snapshot reads the histogram, bucket by bucket.
func (l *latency) snapshot() Histogram {
	var h Histogram
	for i := range l.b {
		h.Counts[i] = l.b[i].Load()
	}
	h.Sum = time.Duration(l.sum.Load())
	return h
}

type serviceStats struct {
	active   atomic.Int64
	requests atomic.Uint64
	errors   atomic.Uint64
	hits     atomic.Uint64
	misses   atomic.Uint64
	repins   atomic.Uint64
	retries  atomic.Uint64
	queued   atomic.Uint64
	codes    statusClasses // responses by status class
}

// Status reports services, pools and backends. It is safe to call
// concurrently with requests; counters are read one by one, not as one
// atomic snapshot.
func (b *Balancer) Status() Status {
	st := b.state.Load()
	now := time.Now()
	nowNs := now.UnixNano()
	out := Status{Time: now}
	out.Sessions = -1
	if b.table != nil {
		out.Sessions = b.table.Len()
	}
	for _, s := range st.services {
		ss := ServiceStatus{
			Name: s.Name, Pool: s.Pool, Hosts: append([]string(nil), s.Hosts...),
			Sticky: s.Sticky.Mode.String(), Policy: s.Policy.String(),
			MinInstances: s.MinInstances,
			Active:       s.stat.active.Load(), Requests: s.stat.requests.Load(), Errors: s.stat.errors.Load(),
			StickyHits: s.stat.hits.Load(), StickyMisses: s.stat.misses.Load(), Repins: s.stat.repins.Load(),
			Retries: s.stat.retries.Load(), MaxConns: s.MaxConns, Queued: s.stat.queued.Load(),
			Responses: s.stat.codes.load(),
		}
		if p := st.pools[s.Pool]; p != nil {
			for _, be := range p.backends {
				if be.healthy(nowNs) {
					ss.Healthy++
				}
			}
		}
		ss.BelowMin = s.MinInstances > 0 && ss.Healthy < s.MinInstances
		out.Services = append(out.Services, ss)
	}
	slow := map[string]time.Duration{}
	for _, s := range st.services {
		if _, ok := slow[s.Pool]; !ok {
			slow[s.Pool] = s.Health.SlowStart
		}
	}
	names := make([]string, 0, len(st.pools))
	for n := range st.pools {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := st.pools[n]
		ps := PoolStatus{Name: n, Waiting: p.queue.n.Load(),
			QueueTimeouts: p.queue.timeouts.Load(), QueueFull: p.queue.rejected.Load()}
		for _, be := range p.backends {
			ps.Backends = append(ps.Backends, be.status(nowNs, slow[n], b.table))
		}
		out.Pools = append(out.Pools, ps)
	}
	return out
}

func (be *backend) status(now int64, slow time.Duration, t *sessionTable) BackendStatus {
	be.mu.Lock()
	bs := BackendStatus{ID: be.id, URL: be.rawURL, Since: be.since, LastError: be.lastErr, Metadata: cloneMap(be.meta)}
	be.mu.Unlock()
	bs.Weight = int(be.weight.Load())
	bs.Active = be.active.Load()
	bs.MaxConns = int(be.maxConns.Load())
	bs.Requests = be.requests.Load()
	bs.Failures = be.failures.Load()
	bs.Responses = be.codes.load()
	switch d := be.downUntil.Load(); {
	case be.activeDown.Load():
		bs.State = "down"
	case d != 0:
		bs.State = "cooling"
		bs.CoolingUntil = time.Unix(0, d)
		bs.Trial = now >= d
	case be.draining.Load():
		bs.State = "draining"
	case slow > 0 && time.Duration(now-be.upSince.Load()) < slow:
		bs.State = "slow-start"
	default:
		bs.State = "up"
	}
	if t != nil {
		bs.Pinned = t.Pinned(be.pool, be.id)
	}
	bs.Latency = be.lat.snapshot()
	bs.P50, bs.P90, bs.P99 = bs.Latency.Quantile(0.5), bs.Latency.Quantile(0.9), bs.Latency.Quantile(0.99)
	return bs
}

// StatusConfig configures the handler StatusHandlerWith returns. The zero
// value is StatusHandler's.
type StatusConfig struct {
	// Members, when not nil, is called on every request, and the members
	// it returns are shown on the page and in the JSON ("members"). It
	// must be safe for concurrent use.
	Members func() []StatusMember
	// Refresh is how often the HTML page reloads itself. Zero means 5
	// seconds; negative means never. A request's "refresh" query parameter
	// (whole seconds, at least 1) overrides it.
	Refresh time.Duration
}

// StatusHandler serves Status as JSON, or as an HTML page that reloads
// itself every 5 seconds when the request's Accept header prefers
// text/html or the query has "html". It is StatusHandlerWith with a zero
// StatusConfig.
func (b *Balancer) StatusHandler() http.Handler { return b.StatusHandlerWith(StatusConfig{}) }

// StatusHandlerWith serves Status as StatusHandler does, configured by c.
//
// The page shows the services, the pools and their backends, and, at the
// top, every state an operator must act on: a service below its
// MinInstances, a backend down, cooling off, waiting for its trial request
// or draining, and requests waiting for a backend at its connection limit.
// Latencies are percentiles interpolated within their power-of-two bucket,
// times carry their zone. The JSON is Status (see BackendStatus for its
// units). Both carry backend URLs: serve them where only operators reach.
func (b *Balancer) StatusHandlerWith(c StatusConfig) http.Handler {
	refresh := c.Refresh
	if refresh == 0 {
		refresh = 5 * time.Second
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := b.Status()
		if c.Members != nil {
			st.Members = c.Members()
		}
		w.Header().Set("Cache-Control", "no-store")
		q := r.URL.Query()
		if q.Has("html") || strings.HasPrefix(r.Header.Get("Accept"), "text/html") {
			every := refresh
			if n, err := strconv.Atoi(q.Get("refresh")); err == nil && n >= 1 {
				every = time.Duration(n) * time.Second
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			statusPage.Execute(w, statusView{Status: st, Refresh: int(every / time.Second), Alerts: alerts(st)})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	})
}

// statusView is what the HTML page shows.
type statusView struct {
	Status
	Refresh int // seconds; 0: never
	Alerts  []string
}

// alerts lists, one sentence each, the states an operator must act on.
func alerts(st Status) []string {
	var out []string
	for _, s := range st.Services {
		if s.BelowMin {
			out = append(out, fmt.Sprintf("service %s: %d healthy backends, below its minimum of %d", s.Name, s.Healthy, s.MinInstances))
		} else if s.Healthy == 0 {
			out = append(out, fmt.Sprintf("service %s: no healthy backend", s.Name))
		}
	}
	for _, p := range st.Pools {
		if p.Waiting > 0 {
			out = append(out, fmt.Sprintf("pool %s: %d requests waiting for a backend at its connection limit", p.Name, p.Waiting))
		}
		for _, be := range p.Backends {
			if s := backendNote(be); s != "" {
				out = append(out, fmt.Sprintf("pool %s: backend %s %s", p.Name, be.ID, s))
			}
		}
	}
	for _, m := range st.Members {
		if m.State != "alive" {
			out = append(out, fmt.Sprintf("member %s (%s) is %s", m.Name, m.Addr, m.State))
		}
	}
	return out
}

// backendNote says what is wrong with a backend, "" when nothing is.
func backendNote(be BackendStatus) string {
	switch {
	case be.State == "down":
		return "is down (active health check)"
	case be.State == "cooling" && be.Trial:
		return "is out of service until one trial request succeeds (trial pending)"
	case be.State == "cooling":
		return "is cooling off after failures until " + be.CoolingUntil.Format(timeLayout)
	case be.State == "draining":
		return "is draining: it serves its sessions and gets no new ones"
	}
	return ""
}

// timeLayout shows times to the second, with their zone.
const timeLayout = "2006-01-02 15:04:05 MST"

// formatDuration shows d with three significant digits ("1.23ms"), "–"
// for zero.
func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'g', 3, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'g', 3, 64) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'g', 3, 64) + "s"
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"dur":  formatDuration,
	"time": func(t time.Time) string { return t.Format(timeLayout) },
	"note": backendNote,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<meta name="viewport" content="width=device-width">
<title>carbonlb status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
p.meta{color:#666;margin:0 0 1em}
table{border-collapse:collapse;background:#fff;margin-bottom:.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eee;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.state{display:inline-block;padding:0 6px;border-radius:3px;font-weight:600}
.up{background:#d7f5dd;color:#135c22}.slow-start{background:#e3f0ff;color:#1b4f8f}
.draining{background:#fff1c2;color:#7a5a00}.cooling{background:#ffe0c2;color:#8a3c00}
.down{background:#ffd6d6;color:#9b1111}.alive{background:#d7f5dd;color:#135c22}
.left,.failed{background:#ffd6d6;color:#9b1111}
ul.alerts{background:#fff4f4;border:1px solid #e4a0a0;padding:.6em 1em .6em 2em;margin:0 0 1em}
p.ok{background:#f0fbf2;border:1px solid #9fd5aa;padding:.5em 1em}
.warn{color:#9b1111;font-weight:600}
</style>
</head><body>
<h1>carbonlb status</h1>
<p class="meta">at <span id="time">{{time .Time}}</span>{{if .Refresh}} · refreshes every {{.Refresh}} s{{end}} · learned sessions: {{if lt .Sessions 0}}external store{{else}}{{.Sessions}}{{end}}</p>
{{if .Alerts}}<ul class="alerts" id="alerts">{{range .Alerts}}<li>{{.}}</li>{{end}}</ul>{{else}}<p class="ok" id="alerts">Nothing needs attention.</p>{{end}}
<h2>Services</h2>
<table id="services"><tr><th>service</th><th>pool</th><th>hosts</th><th>sticky</th><th>policy</th><th>healthy</th><th>min</th><th>active</th><th>requests</th><th>errors</th><th>sticky hits</th><th>misses</th><th>repins</th><th>retries</th><th>queued</th></tr>
{{range .Services}}<tr data-service="{{.Name}}"><td>{{.Name}}</td><td>{{.Pool}}</td><td>{{range .Hosts}}{{.}} {{end}}</td><td>{{.Sticky}}</td><td>{{.Policy}}</td><td class="n{{if or .BelowMin (eq .Healthy 0)}} warn{{end}}">{{.Healthy}}{{if .BelowMin}} (below min){{end}}</td><td class="n">{{.MinInstances}}</td><td class="n">{{.Active}}</td><td class="n">{{.Requests}}</td><td class="n">{{.Errors}}</td><td class="n">{{.StickyHits}}</td><td class="n">{{.StickyMisses}}</td><td class="n">{{.Repins}}</td><td class="n">{{.Retries}}</td><td class="n">{{.Queued}}</td></tr>
{{end}}</table>
{{range .Pools}}<h2>Pool {{.Name}}</h2>
<p class="meta{{if .Waiting}} warn{{end}}">waiting for a backend: {{.Waiting}} · queue timeouts: {{.QueueTimeouts}} · queue full: {{.QueueFull}}</p>
<table class="pool" data-pool="{{.Name}}"><tr><th>backend</th><th>url</th><th>weight</th><th>state</th><th>since</th><th>last error</th><th>active</th><th>requests</th><th>failures</th><th>pinned</th><th>p50</th><th>p90</th><th>p99</th></tr>
{{range .Backends}}<tr data-backend="{{.ID}}" data-state="{{.State}}"><td>{{.ID}}</td><td>{{.URL}}</td><td class="n">{{.Weight}}</td><td><span class="state {{.State}}">{{.State}}</span>{{with note .}}<br><small>{{.}}</small>{{end}}</td><td>{{time .Since}}</td><td>{{.LastError}}</td><td class="n">{{.Active}}{{if .MaxConns}} / {{.MaxConns}}{{end}}</td><td class="n">{{.Requests}}</td><td class="n">{{.Failures}}</td><td class="n">{{.Pinned}}</td><td class="n">{{dur .P50}}</td><td class="n">{{dur .P90}}</td><td class="n">{{dur .P99}}</td></tr>
{{end}}</table>
{{end}}{{if .Members}}<h2>Cluster members</h2>
<table id="members"><tr><th>member</th><th>address</th><th>pool</th><th>state</th></tr>
{{range .Members}}<tr data-member="{{.Name}}"><td>{{.Name}}</td><td>{{.Addr}}</td><td>{{.Pool}}</td><td><span class="state {{.State}}">{{.State}}</span></td></tr>
{{end}}</table>
{{end}}</body></html>
`))

// HealthHandler answers a fronting load balancer's health check (AWS ELB in
// front of two balancer instances, seed 004). It answers 200 "ok" while
// every service has at least one healthy backend; 200 "degraded: " and the
// names of the services that have none while at least one service can still
// serve; and 503 when no service can serve, when there are no services, and
// after Close.
//
// A service without a healthy backend does not fail the check on its own:
// its pool is the same on every instance, so a fronting balancer that
// dropped this instance for it would drop them all, and with them the
// services that still work.
func (b *Balancer) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if b.isClosed.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "closed\n")
			return
		}
		services := b.Status().Services
		var down []string
		for _, s := range services {
			if s.Healthy == 0 {
				down = append(down, s.Name)
			}
		}
		switch {
		case len(services) == 0:
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "no service\n")
		case len(down) == len(services):
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "no healthy backend: "+strings.Join(down, ", ")+"\n")
		case len(down) > 0:
			io.WriteString(w, "degraded: "+strings.Join(down, ", ")+"\n")
		default:
			io.WriteString(w, "ok\n")
		}
	})
}
