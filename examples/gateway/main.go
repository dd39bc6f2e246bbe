// Command gateway is a sticky HTTP(S) load balancer in front of a static
// list of backends, built on package balancer.
//
//	go run ./examples/gateway -listen 127.0.0.1:18080 \
//		-backends http://127.0.0.1:19001,http://127.0.0.1:19002 -sticky learn
//
// With -tls-cert/-tls-key (repeatable as comma-separated lists) or
// -tls-self-signed it serves HTTPS (HTTP/2 and HTTP/1.1), certificates
// picked by SNI. -status serves the balancer's status page on another
// address. It runs in the foreground, logs to stderr and exits cleanly on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
)

// options are the command-line settings.
type options struct {
	listen     string
	backends   []string
	sticky     balancer.StickyMode
	policy     balancer.Policy
	pool       string
	status     string
	tlsCerts   []string
	tlsKeys    []string
	selfSigned []string
	logLevel   slog.Level
	healthPath string
	cpuProfile string
	ready      func(addr string) // called once listening (tests)
}

// parseFlags parses args (without the program name).
func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var backends, sticky, policy, certs, keys, self, level string
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve on")
	fs.StringVar(&backends, "backends", "", "comma-separated backend URLs (http://host:port)")
	fs.StringVar(&sticky, "sticky", "learn", "stickiness: learn (JSESSIONID), insert (own cookie) or off")
	fs.StringVar(&policy, "policy", "round_robin", "policy: round_robin, least_conn or p2c")
	fs.StringVar(&o.pool, "pool", "default", "pool name")
	fs.StringVar(&o.status, "status", "", "address for the status page (JSON; ?html for HTML) and /healthz; empty disables")
	fs.StringVar(&certs, "tls-cert", "", "comma-separated PEM certificate files; enables HTTPS")
	fs.StringVar(&keys, "tls-key", "", "comma-separated PEM key files, one per -tls-cert")
	fs.StringVar(&self, "tls-self-signed", "", "comma-separated host names for a generated self-signed certificate; enables HTTPS")
	fs.StringVar(&level, "log-level", "info", "log level: debug (access log), info, warn, error")
	fs.StringVar(&o.healthPath, "health-path", "", "active HTTP health check path (empty: passive checks only)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.sticky, err = balancer.ParseStickyMode(sticky); err != nil {
		return o, err
	}
	if o.policy, err = balancer.ParsePolicy(policy); err != nil {
		return o, err
	}
	if err := o.logLevel.UnmarshalText([]byte(level)); err != nil {
		return o, fmt.Errorf("-log-level: %w", err)
	}
	o.backends = splitList(backends)
	if len(o.backends) == 0 {
		return o, errors.New("-backends: at least one backend URL is required")
	}
	o.tlsCerts, o.tlsKeys, o.selfSigned = splitList(certs), splitList(keys), splitList(self)
	if len(o.tlsCerts) != len(o.tlsKeys) {
		return o, errors.New("-tls-cert and -tls-key must list the same number of files")
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// config turns options into a balancer configuration and backends.
func (o options) config(logger *slog.Logger) (balancer.Config, []balancer.Backend) {
	cfg := balancer.DefaultConfig()
	cfg.Logger = logger
	svc := &cfg.Services[0]
	svc.Pool = o.pool
	svc.Sticky.Mode = o.sticky
	svc.Policy = o.policy
	if o.healthPath != "" {
		svc.Health.Active = balancer.CheckHTTP
		svc.Health.Path = o.healthPath
	}
	var bes []balancer.Backend
	for i, u := range o.backends {
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		bes = append(bes, balancer.Backend{ID: "b" + strconv.Itoa(i+1), URL: u})
	}
	return cfg, bes
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Error("gateway", "err", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel}))
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, o, logger)
}

// serve runs the gateway until ctx is done.
func serve(ctx context.Context, o options, logger *slog.Logger) error {
	cfg, bes := o.config(logger)
	lb, err := balancer.New(cfg)
	if err != nil {
		return err
	}
	defer lb.Close()
	if err := lb.SetBackends(o.pool, bes); err != nil {
		return err
	}
	srv := &http.Server{Handler: lb, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	if len(o.tlsCerts) > 0 || len(o.selfSigned) > 0 {
		store := &balancer.CertStore{}
		for i := range o.tlsCerts {
			if err := store.AddFiles(o.tlsCerts[i], o.tlsKeys[i]); err != nil {
				return err
			}
		}
		if len(o.selfSigned) > 0 {
			c, err := balancer.SelfSigned(o.selfSigned...)
			if err != nil {
				return err
			}
			if err := store.AddCertificate(c); err != nil {
				return err
			}
		}
		srv.TLSConfig = store.TLSConfig()
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	useTLS := srv.TLSConfig != nil // read before Serve configures HTTP/2 on it
	go func() {
		if useTLS {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	started := 1
	if o.status != "" {
		sln, err := net.Listen("tcp", o.status)
		if err != nil {
			srv.Close()
			<-errc
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/", lb.StatusHandler())
		mux.Handle("/healthz", lb.HealthHandler())
		ssrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, ssrv)
		started++
		go func() { errc <- ssrv.Serve(sln) }()
	}
	logger.Info("gateway listening", "addr", ln.Addr().String(), "backends", len(bes), "sticky", o.sticky.String(), "tls", useTLS)
	if o.ready != nil {
		o.ready(ln.Addr().String())
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		started--
	}
	logger.Info("gateway shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	for ; started > 0; started-- {
		<-errc
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}
