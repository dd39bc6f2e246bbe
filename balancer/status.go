package balancer

import (
	"encoding/json"
	"math"
	"sort"
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
	// Route is Backend.Route (Tomcat's jvmRoute), "" when none.
	Route string `json:"route,omitempty"`
	// Since is when the backend last changed between up and down, and
	// Transitions how many times it changed (active or passive checks).
	Since       time.Time `json:"since"`
	Transitions uint64    `json:"transitions"`
	LastError   string    `json:"last_error,omitempty"`
	Active      int64     `json:"active"`
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
	Route        string            `json:"route,omitempty"`
	Transitions  uint64            `json:"transitions"`
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
		Route: bs.Route, Transitions: bs.Transitions,
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
		Route: j.Route, Transitions: j.Transitions,
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
	bs.Route = be.route
	bs.Transitions = be.transitions.Load()
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
