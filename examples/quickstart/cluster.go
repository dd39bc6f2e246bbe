package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/front"
	"github.com/carbonlb/carbonlb/examples/internal/listen"
	"github.com/carbonlb/carbonlb/examples/internal/loopback"
	"github.com/carbonlb/carbonlb/examples/internal/standin"
	"github.com/carbonlb/carbonlb/hosts"
	"github.com/carbonlb/carbonlb/membership"
)

// The cluster of seeds 000 and 001 on one host: one domain, a manager and
// two workers, each with its own port offset and cluster port.
const (
	domain     = "wso2.esb.domain"
	mgtHost    = "mgt.localhost" // the manager's host name (carbon.xml MgtHostName)
	workerHost = "esb.localhost" // the workers' host name (carbon.xml HostName)
	httpPort   = 9763            // Carbon's servlet HTTP port, shifted by the offset
	lbPort     = 8290            // the Elastic Load Balancer's HTTP port (seed 002)
	lbMember   = 4000            // the ELB's localMemberPort
)

// nodeSpec is one Carbon node of the cluster.
type nodeSpec struct {
	name       string
	subDomain  string
	offset     int // carbon.xml Ports/Offset
	memberPort int // axis2.xml localMemberPort, not shifted by the offset
}

func specs() []nodeSpec {
	return []nodeSpec{
		{"manager", membership.SubDomainMgt, 1, 4100},
		{"worker-1", membership.SubDomainWorker, 2, 4200},
		{"worker-2", membership.SubDomainWorker, 3, 4300},
	}
}

// options are quickstart's settings.
type options struct {
	freePorts bool // every port free rather than the conventional ones
	logger    *slog.Logger
	notes     io.Writer // where port fallbacks are reported
}

// cluster is the running quickstart topology.
type cluster struct {
	opts   options
	front  *front.Front       // the balancer instance
	lb     *balancer.Balancer // front's balancer
	feed   *carbonlb.Feed     // front's pools, fed by the cluster
	member *membership.Node   // the balancer's own cluster member
	lbURL  string

	nodes    map[string]*standin.Server
	ports    map[string][2]int // node → HTTP port, cluster port, kept for restarts
	wka      []string          // the well-known members, by host name
	resolver *hosts.Resolver   // resolves the well-known members' names
}

// wkaHosts are the host names the well-known members (the manager and the
// first worker) are given by, as the guides write them in axis2.xml once
// every node's /etc/hosts has them; the cluster's resolver maps them to
// 127.0.0.1.
var wkaHosts = map[string]string{"manager": mgtHost, "worker-1": workerHost}

// startCluster starts the manager, the workers and the balancer, and waits
// until the balancer has learned both pools from the cluster.
func startCluster(ctx context.Context, o options) (_ *cluster, err error) {
	c := &cluster{opts: o, nodes: make(map[string]*standin.Server), ports: make(map[string][2]int)}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.resolver, err = loopback.Resolver(map[string]netip.Addr{mgtHost: loopbackIP, workerHost: loopbackIP}); err != nil {
		return nil, err
	}
	for _, s := range specs() {
		if err := c.startNode(ctx, s); err != nil {
			return nil, err
		}
		if host, ok := wkaHosts[s.name]; ok { // the manager and the first worker are well-known members
			c.wka = append(c.wka, net.JoinHostPort(host, strconv.Itoa(int(c.nodes[s.name].Member().Addr().Port()))))
		}
	}
	if err := c.startBalancer(ctx); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.feed.Wait(wctx, func(p map[string][]balancer.Backend) bool {
		return len(p[domain+"/mgt"]) == 1 && len(p[domain+"/worker"]) == 2
	}); err != nil {
		return nil, fmt.Errorf("the balancer did not learn its pools from the cluster: %w", err)
	}
	return c, nil
}

// config is the balancer's configuration: the management host goes to the
// manager pool, every other host to the worker pool, both sticky on
// JSESSIONID.
func config(logger *slog.Logger) balancer.Config {
	cfg := balancer.DefaultConfig()
	cfg.Logger = logger
	workers := balancer.DefaultService("worker", domain+"/worker", workerHost)
	workers.Default = true // and any other host
	cfg.Services = []balancer.Service{
		balancer.DefaultService("mgt", domain+"/mgt", mgtHost),
		workers,
	}
	return cfg
}

// startBalancer starts the balancer, joins it to the cluster as a member
// (like the ELB on localMemberPort 4000) and feeds its pools from the
// cluster's events (front runs a carbonlb.Feed).
func (c *cluster) startBalancer(ctx context.Context) error {
	mc := membership.DefaultLocalConfig(domain)
	mc.Name, mc.WKA, mc.Resolve, mc.Timing = "balancer", c.wka, c.resolver.LookupAddr, loopback.Timing()
	if !c.opts.freePorts {
		mc.Port, mc.PortRetries = lbMember, 10 // as Carbon, take the next port when 4000 is taken
	}
	ln, note, err := listen.TCP(loopbackIP, c.port(lbPort), true)
	if err != nil {
		return err
	}
	c.note(note)
	f, err := front.Start(ctx, front.Config{Balancer: config(c.opts.logger), Listener: ln, Member: &mc,
		FallbackPort: !c.opts.freePorts, StatusPath: statusPath, Logger: c.opts.logger})
	if err != nil {
		return err
	}
	c.note(f.Note())
	c.front, c.lb, c.feed, c.member = f, f.Balancer(), f.Feed(), f.Member()
	c.lbURL = "http://" + f.Addr().String()
	return nil
}

// statusPath serves the balancer's status page instead of a backend's answer.
const statusPath = "/lb-status"

var loopbackIP = netip.MustParseAddr("127.0.0.1")

// port returns p, or 0 (any free port) with options.freePorts.
func (c *cluster) port(p int) int {
	if c.opts.freePorts {
		return 0
	}
	return p
}

func (c *cluster) note(s string) {
	if s != "" && c.opts.notes != nil {
		fmt.Fprintln(c.opts.notes, "  note:", s)
	}
}

func spec(name string) nodeSpec {
	i := slices.IndexFunc(specs(), func(s nodeSpec) bool { return s.name == name })
	return specs()[i]
}

// startNode starts node s: its HTTP server on 9763 plus its offset and its
// cluster member on its localMemberPort, with the well-known members. A
// restarted node takes the ports it had.
func (c *cluster) startNode(ctx context.Context, s nodeSpec) error {
	httpP, memberP, restart := c.port(httpPort+s.offset), c.port(s.memberPort), false
	if p, ok := c.ports[s.name]; ok {
		httpP, memberP, restart = p[0], p[1], true
	}
	var ln net.Listener
	var note string
	var err error
	ln, note, err = listen.TCP(loopbackIP, httpP, !restart)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	c.note(note)
	mc := membership.DefaultLocalConfig(domain)
	mc.Name, mc.SubDomain, mc.Port, mc.WKA, mc.Logger, mc.Timing = s.name, s.subDomain, memberP, c.wka, c.opts.logger, loopback.Timing()
	mc.Resolve = c.resolver.LookupAddr
	srv, err := standin.Start(ctx, standin.ServerConfig{Listener: ln, Member: mc, FallbackPort: !restart})
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	c.note(srv.Note())
	c.nodes[s.name] = srv
	c.ports[s.name] = [2]int{listen.Port(ln), int(srv.Member().Addr().Port())}
	return nil
}

// kill stops node name as a crash would.
func (c *cluster) kill(name string) error {
	srv, ok := c.nodes[name]
	if !ok {
		return fmt.Errorf("%s is not running", name)
	}
	delete(c.nodes, name)
	return srv.Kill()
}

// close stops everything, the balancer first.
func (c *cluster) close() error {
	var errs []error
	if c.front != nil {
		errs = append(errs, c.front.Close())
	}
	for _, s := range specs() {
		if srv, ok := c.nodes[s.name]; ok {
			errs = append(errs, srv.Kill())
			delete(c.nodes, s.name)
		}
	}
	if c.resolver != nil {
		errs = append(errs, c.resolver.Close())
	}
	return errors.Join(errs...)
}
