package metrics

import (
	"crypto/x509"
	"math/big"
	"sort"
	"sync"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/membership"
	"github.com/prometheus/client_golang/prometheus"
)

// Balancer is what a Collector reads of a balancer; *balancer.Balancer
// implements it.
type Balancer interface {
	Status() balancer.Status
}

// Cluster is what a Collector reads of a cluster member;
// *membership.Node implements it.
type Cluster interface {
	Members() []membership.Member
	Health() membership.Health
}

var (
	_ Balancer = (*balancer.Balancer)(nil)
	_ Cluster  = (*membership.Node)(nil)
)

// Config says what a Collector reads. Every field is optional: a nil field
// leaves its families out. Leave an interface field nil rather than holding
// a nil pointer.
type Config struct {
	// Balancer is read for the service, pool, backend and session
	// families.
	Balancer Balancer
	// Cluster is read for the cluster families.
	Cluster Cluster
	// Certificates returns the certificates served (for example the
	// leaves of a balancer.CertStore's files), read for
	// carbonlb_certificate_not_after_timestamp_seconds. It is called once
	// per scrape and must be safe for concurrent use.
	Certificates func() []*x509.Certificate
}

// Collector is a prometheus.Collector of a balancer's and a cluster
// member's state, read at scrape time. Create it with New.
type Collector struct {
	cfg Config

	mu          sync.Mutex // protects the reload fields below
	reloads     uint64
	failures    uint64
	lastOK      bool
	lastSuccess time.Time
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns a Collector reading what cfg names. The configuration in
// force when New is called counts as loaded successfully at that time.
func New(cfg Config) *Collector {
	return &Collector{cfg: cfg, lastOK: true, lastSuccess: time.Now()}
}

// ObserveReload records one configuration reload and its outcome: err nil
// for a reload applied, non-nil for one refused (the running configuration
// kept).
func (c *Collector) ObserveReload(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reloads++
	c.lastOK = err == nil
	if err == nil {
		c.lastSuccess = time.Now()
	} else {
		c.failures++
	}
}

const ns = "carbonlb"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

var (
	svcLabels = []string{"service"}
	beLabels  = []string{"pool", "backend"}

	svcRequests    = desc("service_requests_total", "Requests received for the service.", svcLabels...)
	svcResponses   = desc("service_responses_total", "Responses the clients of the service got, by status class (1xx to 5xx; a client gone first counts as 4xx).", "service", "code")
	svcLocal       = desc("service_balancer_responses_total", "Responses the balancer made itself for the service (403, 404, 413, 502, 503, 504).", svcLabels...)
	svcActive      = desc("service_active_requests", "Requests of the service in progress.", svcLabels...)
	svcUp          = desc("service_backends_up", "Backends of the service's pool that are up.", svcLabels...)
	svcMin         = desc("service_min_instances", "The service's minimum of healthy backends (0: none).", svcLabels...)
	svcBelowMin    = desc("service_below_min_instances", "1 when the service has fewer healthy backends than its minimum.", svcLabels...)
	svcStickyHits  = desc("service_sticky_hits_total", "Requests routed by their session.", svcLabels...)
	svcStickyMiss  = desc("service_sticky_misses_total", "Requests whose session id or cookie the balancer did not know.", svcLabels...)
	svcStickyRepin = desc("service_sticky_repins_total", "Sessions moved off a down or removed backend.", svcLabels...)
	svcRetries     = desc("service_retries_total", "Tries after a request's first.", svcLabels...)
	svcQueued      = desc("service_queued_total", "Requests that waited for a backend at its connection limit.", svcLabels...)

	poolWaiting  = desc("pool_queue_current", "Requests waiting now for a backend of the pool at its connection limit.", "pool")
	poolTimeouts = desc("pool_queue_timeouts_total", "Queued requests answered 503 after the queue timeout.", "pool")
	poolFull     = desc("pool_queue_full_total", "Requests answered 503 at once because the queue was full.", "pool")
	sessions     = desc("sessions", "Learned sessions in the balancer's built-in table.")

	beInfo      = desc("backend_info", "A backend of a pool and its URL; always 1.", "pool", "backend", "url")
	beUp        = desc("backend_up", "1 when the backend takes requests (up, slow-start or draining), 0 when it is down, cooling off or waiting for its trial request.", beLabels...)
	beState     = desc("backend_state", "1 for the backend's current state: up, slow-start, draining, cooling, trial or down.", "pool", "backend", "state")
	beWeight    = desc("backend_weight", "The backend's weight.", beLabels...)
	beActive    = desc("backend_active_requests", "Requests in progress on the backend.", beLabels...)
	beMaxConns  = desc("backend_max_conns", "The backend's own connection limit (0: the service's applies).", beLabels...)
	beRequests  = desc("backend_requests_total", "Requests sent to the backend.", beLabels...)
	beResponses = desc("backend_responses_total", "Responses of the backend the clients got, by status class (1xx to 5xx).", "pool", "backend", "code")
	beFailures  = desc("backend_failures_total", "Failed tries on the backend and responses cut after their header.", beLabels...)
	bePinned    = desc("backend_pinned_sessions", "Learned sessions pinned to the backend.", beLabels...)
	beDuration  = desc("backend_request_duration_seconds", "Time from sending a request to the backend to the end of its response body.", beLabels...)
	beChange    = desc("backend_last_change_timestamp_seconds", "When the backend last changed between up and down.", beLabels...)
	beTrans     = desc("backend_health_transitions_total", "Changes of the backend between up and down, by active or passive checks (HAProxy's chkdown).", beLabels...)

	clMembers     = desc("cluster_members", "Cluster members this node knows, by state.", "state")
	clPoolMembers = desc("cluster_pool_members", "Alive cluster members by pool (domain/subDomain).", "pool")
	clScore       = desc("cluster_health_score", "The node's awareness score: 0 when its probes are answered in time, higher when the node itself is slow.")
	clWKA         = desc("cluster_wka_members", "Well-known addresses other than the node's own.")
	clWKAAlive    = desc("cluster_wka_alive", "Well-known addresses that are alive members.")
	clDropped     = desc("cluster_dropped_events_total", "Membership events dropped for subscribers that fell behind.")
	clMessages    = desc("cluster_messages_total", "Application messages (shared sessions) by outcome: sent, received, shed (the node's queue was full), dropped (unreadable or from no peer), overflow (memberlist's handler queue was full).", "outcome")
	clStates      = desc("cluster_state_requests_total", "State requests (a joining instance's session table) answered by outcome: served, refused.", "outcome")

	certNotAfter = desc("certificate_not_after_timestamp_seconds", "When a served certificate expires.", "name", "serial")

	cfgReloads     = desc("config_reloads_total", "Configuration reloads, applied or refused.")
	cfgFailures    = desc("config_reload_failures_total", "Configuration reloads refused (the running configuration kept).")
	cfgLastOK      = desc("config_last_reload_successful", "1 when the last configuration reload was applied.")
	cfgLastSuccess = desc("config_last_reload_success_timestamp_seconds", "When a configuration was last loaded successfully.")
)

// classes are the values of the code label, by index of the Responses of
// balancer.ServiceStatus and balancer.BackendStatus.
var classes = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// states are the values of carbonlb_backend_state's state label.
var states = []string{"up", "slow-start", "draining", "cooling", "trial", "down"}

// durationBuckets are the balancer's histogram buckets exported as the
// request duration's: 2^minBucket µs to 2^maxBucket µs.
const minBucket, maxBucket = 7, 29

// Describe sends the descriptors of every family the Collector may send.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		svcRequests, svcResponses, beResponses, svcLocal, svcActive, svcUp, svcMin, svcBelowMin, svcStickyHits, svcStickyMiss, svcStickyRepin,
		svcRetries, svcQueued, poolWaiting, poolTimeouts, poolFull, sessions,
		beInfo, beUp, beState, beWeight, beActive, beMaxConns, beRequests, beFailures, bePinned, beDuration, beChange, beTrans,
		clMembers, clPoolMembers, clScore, clWKA, clWKAAlive, clDropped, clMessages, clStates, certNotAfter,
		cfgReloads, cfgFailures, cfgLastOK, cfgLastSuccess,
	} {
		ch <- d
	}
}

// Collect reads the balancer's status, the cluster's members and health and
// the certificates, and sends their metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.cfg.Balancer != nil {
		collectBalancer(ch, c.cfg.Balancer.Status())
	}
	if c.cfg.Cluster != nil {
		collectCluster(ch, c.cfg.Cluster)
	}
	if c.cfg.Certificates != nil {
		collectCerts(ch, c.cfg.Certificates())
	}
	c.mu.Lock()
	reloads, failures, lastOK, lastSuccess := c.reloads, c.failures, c.lastOK, c.lastSuccess
	c.mu.Unlock()
	ch <- counter(cfgReloads, reloads)
	ch <- counter(cfgFailures, failures)
	ch <- gauge(cfgLastOK, boolValue(lastOK))
	ch <- gauge(cfgLastSuccess, unixSeconds(lastSuccess))
}

func counter(d *prometheus.Desc, v uint64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

func collectBalancer(ch chan<- prometheus.Metric, st balancer.Status) {
	for _, s := range st.Services {
		ch <- counter(svcRequests, s.Requests, s.Name)
		for i, n := range s.Responses {
			ch <- counter(svcResponses, n, s.Name, classes[i])
		}
		ch <- counter(svcLocal, s.Errors, s.Name)
		ch <- gauge(svcActive, float64(s.Active), s.Name)
		ch <- gauge(svcUp, float64(s.Healthy), s.Name)
		ch <- gauge(svcMin, float64(s.MinInstances), s.Name)
		ch <- gauge(svcBelowMin, boolValue(s.BelowMin), s.Name)
		ch <- counter(svcStickyHits, s.StickyHits, s.Name)
		ch <- counter(svcStickyMiss, s.StickyMisses, s.Name)
		ch <- counter(svcStickyRepin, s.Repins, s.Name)
		ch <- counter(svcRetries, s.Retries, s.Name)
		ch <- counter(svcQueued, s.Queued, s.Name)
	}
	if st.Sessions >= 0 {
		ch <- gauge(sessions, float64(st.Sessions))
	}
	for _, p := range st.Pools {
		ch <- gauge(poolWaiting, float64(p.Waiting), p.Name)
		ch <- counter(poolTimeouts, p.QueueTimeouts, p.Name)
		ch <- counter(poolFull, p.QueueFull, p.Name)
		for _, be := range p.Backends {
			collectBackend(ch, p.Name, be)
		}
	}
}

// stateOf is the backend's state label: Status's State, with "trial" for
// a cooling backend waiting for its trial request.
func stateOf(be balancer.BackendStatus) string {
	if be.State == "cooling" && be.Trial {
		return "trial"
	}
	return be.State
}

func collectBackend(ch chan<- prometheus.Metric, pool string, be balancer.BackendStatus) {
	l := []string{pool, be.ID}
	ch <- gauge(beInfo, 1, pool, be.ID, be.URL)
	state := stateOf(be)
	up := state == "up" || state == "slow-start" || state == "draining"
	ch <- gauge(beUp, boolValue(up), l...)
	for _, s := range states {
		ch <- gauge(beState, boolValue(s == state), pool, be.ID, s)
	}
	ch <- gauge(beWeight, float64(be.Weight), l...)
	ch <- gauge(beActive, float64(be.Active), l...)
	ch <- gauge(beMaxConns, float64(be.MaxConns), l...)
	ch <- counter(beRequests, be.Requests, l...)
	for i, n := range be.Responses {
		ch <- counter(beResponses, n, pool, be.ID, classes[i])
	}
	ch <- counter(beFailures, be.Failures, l...)
	ch <- counter(beTrans, be.Transitions, l...)
	ch <- gauge(bePinned, float64(be.Pinned), l...)
	ch <- histogram(be.Latency, l)
	ch <- gauge(beChange, unixSeconds(be.Since), l...)
}

// histogram exports h with the upper bounds of its buckets 2^minBucket µs
// to 2^maxBucket µs: each cumulative count is exact, since those are the
// histogram's own boundaries.
func histogram(h balancer.Histogram, labels []string) prometheus.Metric {
	buckets := make(map[float64]uint64, maxBucket-minBucket+1)
	var cum uint64
	for i, n := range h.Counts {
		cum += n
		if i >= minBucket && i <= maxBucket {
			buckets[h.UpperBound(i).Seconds()] = cum
		}
	}
	return prometheus.MustNewConstHistogram(beDuration, cum, h.Sum.Seconds(), buckets, labels...)
}

func collectCluster(ch chan<- prometheus.Metric, cl Cluster) {
	members := cl.Members()
	byState := map[string]int{}
	for _, s := range []membership.State{membership.StateAlive, membership.StateLeft, membership.StateFailed} {
		byState[s.String()] = 0
	}
	byPool := map[string]int{}
	for _, m := range members {
		byState[m.State.String()]++
		if m.State == membership.StateAlive {
			byPool[m.Pool()]++
		}
	}
	for _, s := range sortedKeys(byState) {
		ch <- gauge(clMembers, float64(byState[s]), s)
	}
	for _, p := range sortedKeys(byPool) {
		ch <- gauge(clPoolMembers, float64(byPool[p]), p)
	}
	h := cl.Health()
	ch <- gauge(clScore, float64(h.Score))
	ch <- gauge(clWKA, float64(h.WKA))
	ch <- gauge(clWKAAlive, float64(h.WKAAlive))
	ch <- counter(clDropped, uint64(max(h.DroppedEvents, 0)))
	for _, m := range []struct {
		outcome string
		n       int64
	}{
		{"sent", h.MessagesSent}, {"received", h.MessagesReceived}, {"shed", h.MessagesShed},
		{"dropped", h.MessagesDropped}, {"overflow", h.HandlerQueueDropped},
	} {
		ch <- counter(clMessages, uint64(max(m.n, 0)), m.outcome)
	}
	ch <- counter(clStates, uint64(max(h.StateRequestsServed, 0)), "served")
	ch <- counter(clStates, uint64(max(h.StateRequestsRefused, 0)), "refused")
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func collectCerts(ch chan<- prometheus.Metric, certs []*x509.Certificate) {
	seen := map[[2]string]bool{}
	for _, c := range certs {
		if c == nil {
			continue
		}
		name := c.Subject.CommonName
		if len(c.DNSNames) > 0 {
			name = c.DNSNames[0]
		}
		serial := serialOf(c.SerialNumber)
		if k := [2]string{name, serial}; !seen[k] {
			seen[k] = true
			ch <- gauge(certNotAfter, unixSeconds(c.NotAfter), name, serial)
		}
	}
}

func serialOf(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}
