package balancer

import (
	"encoding/json"
	"html/template"
	"io"
	"math/bits"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Status is a point-in-time report of a Balancer.
type Status struct {
	Services []ServiceStatus `json:"services"`
	// Pools holds every pool with backends, named by a service or not.
	Pools []PoolStatus `json:"pools"`
	// Sessions is the number of learned sessions in the built-in table
	// (-1 with a custom SessionStore).
	Sessions int `json:"sessions"`
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
type BackendStatus struct {
	ID       string            `json:"id"`
	URL      string            `json:"url"`
	Weight   int               `json:"weight"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// State is "up", "down" (active check), "cooling" (passive cool-off),
	// "draining" or "slow-start".
	State string `json:"state"`
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
	// P50, P90 and P99 are latency percentiles (time to the end of the
	// response body) since the backend joined, as the upper bound of a
	// power-of-two histogram bucket.
	P50 time.Duration `json:"p50"`
	P90 time.Duration `json:"p90"`
	P99 time.Duration `json:"p99"`
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
}

// latency is a histogram of durations in power-of-two microsecond buckets.
type latency struct {
	b [40]atomic.Uint64
}

func (l *latency) add(d time.Duration) {
	us := uint64(d / time.Microsecond)
	i := bits.Len64(us)
	if i >= len(l.b) {
		i = len(l.b) - 1
	}
	l.b[i].Add(1)
}

func (l *latency) percentiles(qs ...float64) []time.Duration {
	var counts [40]uint64
	var total uint64
	for i := range l.b {
		counts[i] = l.b[i].Load()
		total += counts[i]
	}
	out := make([]time.Duration, len(qs))
	if total == 0 {
		return out
	}
	for j, q := range qs {
		want := uint64(q*float64(total) + 0.5)
		if want < 1 {
			want = 1
		}
		var cum uint64
		for i, c := range counts {
			cum += c
			if cum >= want {
				out[j] = time.Duration(uint64(1)<<uint(i)) * time.Microsecond
				break
			}
		}
	}
	return out
}

// Status reports services, pools and backends. It is safe to call
// concurrently with requests; counters are read one by one, not as one
// atomic snapshot.
func (b *Balancer) Status() Status {
	st := b.state.Load()
	now := time.Now()
	nowNs := now.UnixNano()
	var out Status
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
	switch {
	case be.activeDown.Load():
		bs.State = "down"
	case be.downUntil.Load() != 0:
		bs.State = "cooling"
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
	p := be.lat.percentiles(0.5, 0.9, 0.99)
	bs.P50, bs.P90, bs.P99 = p[0], p[1], p[2]
	return bs
}

// StatusHandler serves Status as JSON, or as a plain HTML page when the
// request's Accept header prefers text/html or the query has "html".
func (b *Balancer) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := b.Status()
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Query().Has("html") || strings.HasPrefix(r.Header.Get("Accept"), "text/html") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			statusPage.Execute(w, st)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	})
}

var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>carbonlb status</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}</style>
</head><body>
<h1>Services</h1>
<table><tr><th>service</th><th>pool</th><th>hosts</th><th>sticky</th><th>healthy</th><th>min</th><th>active</th><th>requests</th><th>errors</th><th>hits</th><th>misses</th><th>repins</th></tr>
{{range .Services}}<tr><td>{{.Name}}</td><td>{{.Pool}}</td><td>{{range .Hosts}}{{.}} {{end}}</td><td>{{.Sticky}}</td><td>{{.Healthy}}{{if .BelowMin}} (below min){{end}}</td><td>{{.MinInstances}}</td><td>{{.Active}}</td><td>{{.Requests}}</td><td>{{.Errors}}</td><td>{{.StickyHits}}</td><td>{{.StickyMisses}}</td><td>{{.Repins}}</td></tr>
{{end}}</table>
<p>learned sessions: {{.Sessions}}</p>
{{range .Pools}}<h2>Pool {{.Name}}</h2>
<table><tr><th>backend</th><th>url</th><th>weight</th><th>state</th><th>since</th><th>last error</th><th>active</th><th>requests</th><th>failures</th><th>pinned</th><th>p50</th><th>p90</th><th>p99</th></tr>
{{range .Backends}}<tr><td>{{.ID}}</td><td>{{.URL}}</td><td>{{.Weight}}</td><td>{{.State}}</td><td>{{.Since.Format "2006-01-02 15:04:05"}}</td><td>{{.LastError}}</td><td>{{.Active}}</td><td>{{.Requests}}</td><td>{{.Failures}}</td><td>{{.Pinned}}</td><td>{{.P50}}</td><td>{{.P90}}</td><td>{{.P99}}</td></tr>
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
