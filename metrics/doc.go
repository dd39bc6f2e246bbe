// Package metrics exports a balancer's and a cluster member's state to
// Prometheus.
//
// A Collector reads balancer.Balancer.Status, membership.Node.Members and
// membership.Node.Health when it is scraped, and at no other time: the
// request path gains no lock, no allocation and no work for being
// measured. An embedding program registers it in one line:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.New(metrics.Config{Balancer: lb, Cluster: node}))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The families follow Traefik's and HAProxy's conventions, under the
// namespace "carbonlb": counters end in _total, durations are seconds, times
// are Unix seconds in gauges ending in _timestamp_seconds, a service is
// labelled service, a backend pool and backend (its ID). The request
// duration of a backend is a histogram whose buckets are the balancer's own
// power-of-two buckets (2^7 µs to 2^29 µs, 128 µs to about 9 minutes), so
// histogram_quantile reads the same distribution the status page does.
//
// # Families
//
// Services: carbonlb_service_requests_total, _responses_total (by code:
// 1xx to 5xx), _balancer_responses_total
// (the responses the balancer made itself), _active_requests,
// _backends_up, _min_instances, _below_min_instances, _sticky_hits_total,
// _sticky_misses_total, _sticky_repins_total, _retries_total,
// _queued_total.
//
// Pools: carbonlb_pool_queue_current, _queue_timeouts_total,
// _queue_full_total. Sessions: carbonlb_sessions (learned sessions in the
// built-in table; absent with a custom store).
//
// Backends: carbonlb_backend_info (url), _up, _state (one series per
// state, 1 for the current one), _weight, _active_requests, _max_conns,
// _requests_total, _responses_total (by code), _failures_total, _pinned_sessions,
// _request_duration_seconds, _last_change_timestamp_seconds,
// _health_transitions_total (changes between up and down).
//
// Cluster: carbonlb_cluster_members (by state), _pool_members (alive
// members by pool), _health_score, _wka_members, _wka_alive,
// _dropped_events_total.
//
// Certificates: carbonlb_certificate_not_after_timestamp_seconds by name
// and serial. Configuration: carbonlb_config_reloads_total,
// _reload_failures_total, _last_reload_successful,
// _last_reload_success_timestamp_seconds, fed by Collector.ObserveReload.
//
// # Concurrency
//
// A Collector is safe for concurrent use: scrapes may overlap with each
// other and with ObserveReload.
//
// Package metrics imports balancer and membership; none of the library's
// four packages imports it.
package metrics
