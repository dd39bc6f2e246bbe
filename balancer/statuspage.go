package balancer

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

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
