// Package admin serves a gateway's admin interface on a listener of its
// own: Prometheus metrics, the status page, the health check, the Go
// profiler, and POST requests that drain, undrain or reweight one backend.
//
// It lists backend addresses and can take backends out of service, so it
// listens on loopback unless told otherwise, and then only with a token
// (see Listen).
package admin

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/front"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MinTokenLen is the least number of bytes of a token.
const MinTokenLen = 16

// Config configures the admin handler.
type Config struct {
	// Balancer is the balancer shown and checked. Required.
	Balancer *balancer.Balancer
	// Pools sets the balancer's pools; drain, undrain and weight go
	// through it so that they survive later updates of the pool.
	// Required.
	Pools *front.Pools
	// Members, when not nil, lists the cluster's members on the status
	// page.
	Members func() []balancer.StatusMember
	// Health answers /healthz. Nil means Balancer.HealthHandler().
	Health http.Handler
	// Metrics is served at /metrics. Nil means no /metrics.
	Metrics prometheus.Gatherer
	// Token, when not empty, is required of every request as
	// "Authorization: Bearer <token>".
	Token string
	// Logger receives one Info record per change made. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Handler returns the admin interface:
//
//	GET  /metrics                 Prometheus metrics
//	GET  /status                  the status as JSON; ?html (or a browser) for the page
//	GET  /healthz                 the health check a fronting balancer sees
//	GET  /debug/pprof/            the Go profiler
//	POST /backends/drain?pool=P&backend=ID
//	POST /backends/undrain?pool=P&backend=ID
//	POST /backends/weight?pool=P&backend=ID&weight=N
//
// The POST parameters may also come as a form body. A change answers 200
// with the backend's state, 404 for an unknown backend, 400 for a bad
// weight.
func Handler(cfg Config) http.Handler {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	health := cfg.Health
	if health == nil {
		health = cfg.Balancer.HealthHandler()
	}
	mux := http.NewServeMux()
	status := cfg.Balancer.StatusHandlerWith(balancer.StatusConfig{Members: cfg.Members})
	mux.Handle("GET /status", status)
	mux.Handle("GET /{$}", http.RedirectHandler("/status?html", http.StatusFound))
	mux.Handle("GET /healthz", health)
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	change := func(action string, do func(pool, id string, r *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			pool, id := r.FormValue("pool"), r.FormValue("backend")
			if pool == "" || id == "" {
				http.Error(w, "pool and backend are required", http.StatusBadRequest)
				return
			}
			if err := do(pool, id, r); err != nil {
				code := http.StatusBadRequest
				if errors.Is(err, front.ErrNoBackend) {
					code = http.StatusNotFound
				}
				http.Error(w, err.Error(), code)
				return
			}
			logger.Info("admin: "+action, "pool", pool, "backend", id, "client", r.RemoteAddr)
			state := "absent"
			for _, p := range cfg.Balancer.Status().Pools {
				for _, b := range p.Backends {
					if p.Name == pool && b.ID == id {
						state = fmt.Sprintf("%s weight %d", b.State, b.Weight)
					}
				}
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "%s %s: %s\n", pool, id, state)
		}
	}
	mux.Handle("POST /backends/drain", change("drain", func(pool, id string, _ *http.Request) error {
		return cfg.Pools.Drain(pool, id)
	}))
	mux.Handle("POST /backends/undrain", change("undrain", func(pool, id string, _ *http.Request) error {
		return cfg.Pools.Undrain(pool, id)
	}))
	mux.Handle("POST /backends/weight", change("weight", func(pool, id string, r *http.Request) error {
		w, err := strconv.Atoi(r.FormValue("weight"))
		if err != nil {
			return fmt.Errorf("weight %q: want a whole number of at least 1", r.FormValue("weight"))
		}
		return cfg.Pools.SetWeight(pool, id, w)
	}))
	if cfg.Token == "" {
		return mux
	}
	want := []byte("Bearer " + cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="carbonlb admin"`)
			http.Error(w, "a bearer token is required", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// Address returns addr with a host: an address without one (":9090")
// listens on loopback (127.0.0.1:9090). It reports whether the host is a
// loopback address or "localhost".
func Address(addr string) (string, bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, fmt.Errorf("admin address %q: %w", addr, err)
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port), true, nil
	}
	if host == "localhost" {
		return addr, true, nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "", false, fmt.Errorf("admin address %q: the host must be an IP address or localhost", addr)
	}
	return addr, a.IsLoopback(), nil
}

// ReadToken reads a token file: its content without surrounding white
// space, at least MinTokenLen bytes.
func ReadToken(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLen {
		return "", fmt.Errorf("admin token file %s: %d bytes, want at least %d", name, len(tok), MinTokenLen)
	}
	return tok, nil
}
