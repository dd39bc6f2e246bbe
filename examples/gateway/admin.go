package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/admin"
	"github.com/carbonlb/carbonlb/examples/internal/front"
	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// checkAdmin checks -admin and -admin-token-file: an address without a
// host listens on loopback; any other than loopback needs a token.
func (o *options) checkAdmin() error {
	if o.admin == "" {
		if o.adminTokenFile != "" {
			return errors.New("-admin-token-file needs -admin")
		}
		return nil
	}
	addr, loopback, err := admin.Address(o.admin)
	if err != nil {
		return fmt.Errorf("-admin: %w", err)
	}
	o.admin = addr
	if !loopback && o.adminTokenFile == "" {
		return fmt.Errorf("-admin %s is not a loopback address: give -admin-token-file", addr)
	}
	return nil
}

// adminParts are what the admin interface shows and acts on.
type adminParts struct {
	lb        *balancer.Balancer
	pools     *front.Pools
	member    *membership.Node // nil without a cluster
	health    http.Handler     // nil: the balancer's
	collector *metrics.Collector
}

// newCollector returns the metrics collector of a gateway; certs, when not
// nil, are the certificates it serves.
func (o options) newCollector(lb *balancer.Balancer, member *membership.Node, certs *balancer.CertStore) *metrics.Collector {
	cfg := metrics.Config{Balancer: lb}
	if certs != nil {
		cfg.Certificates = certs.Leaves
	}
	if member != nil {
		cfg.Cluster = member
	}
	return metrics.New(cfg)
}

// startAdmin serves the admin interface on o.admin, when set, until the
// returned stop is called; stop waits for the server's goroutine.
func (o options) startAdmin(p adminParts, logger *slog.Logger) (stop func(context.Context), err error) {
	if o.admin == "" {
		return func(context.Context) {}, nil
	}
	var token string
	if o.adminTokenFile != "" {
		if token, err = admin.ReadToken(o.adminTokenFile); err != nil {
			return nil, err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), p.collector)
	cfg := admin.Config{Balancer: p.lb, Pools: p.pools, Health: p.health, Metrics: reg, Token: token, Logger: logger}
	if p.member != nil {
		members := func() []balancer.StatusMember {
			var out []balancer.StatusMember
			for _, m := range p.member.Members() {
				out = append(out, balancer.StatusMember{Name: m.Name, Addr: m.Addr.String(), Pool: m.Pool(), State: m.State.String()})
			}
			return out
		}
		cfg.Members = members
	}
	ln, err := net.Listen("tcp", o.admin)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	srv := &http.Server{Handler: admin.Handler(cfg), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	logger.Info("admin listening", "addr", ln.Addr().String(), "token", token != "")
	if o.adminReady != nil {
		o.adminReady(ln.Addr().String())
	}
	return func(ctx context.Context) {
		srv.Shutdown(ctx)
		srv.Close()
		<-done
	}, nil
}
