package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"syscall"
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

// The deployment of seed 004 on one host: an application server cluster of
// two nodes (sub-domain mgt), two balancer instances on two loopback
// addresses, and a DNS responder that answers the site's name with the
// instances that pass their health check.
const (
	domain   = "wso2.appserver.domain"
	pool     = domain + "/mgt"
	zone     = "appserver.localhost"
	siteName = "management." + zone // the site's one stable name
	lbName   = "lb." + zone         // the live balancer members (carbonlb.Zone)
	mgtName  = "mgt." + zone        // the live app servers, sub-domain mgt (carbonlb.Zone)
	lbPort   = 8290                 // each instance's HTTP port, on its own address
	dnsPort  = 8053                 // the DNS responder's UDP port on 127.0.0.1
	httpPort = 9763                 // shifted by each app server's offset
	dnsTTL   = time.Second          // of the answers: short, as they follow health
)

type appServer struct {
	name       string
	offset     int
	memberPort int
}

// host is the app server's host name, by which it is a well-known member.
func (a appServer) host() string { return a.name + "." + zone }

func appServers() []appServer {
	return []appServer{{"appserver-1", 1, 4100}, {"appserver-2", 2, 4200}}
}

// instance is one balancer instance: a name and the loopback address it has
// to itself, as if on its own host.
type instance struct {
	name string
	ip   netip.Addr
}

func instances() []instance {
	return []instance{
		{"elb01", netip.MustParseAddr("127.0.0.1")},
		{"elb02", netip.MustParseAddr("127.0.0.2")},
	}
}

// options are the program's settings.
type options struct {
	freePorts     bool
	sticky        balancer.StickyMode // StickyLearn (sessions shared) or StickyInsert
	stickyKey     []byte              // shared by the instances, for StickyInsert
	checkInterval time.Duration       // of the DNS responder's health checks
	logger        *slog.Logger
	notes         io.Writer
}

// deployment is the running topology.
type deployment struct {
	opts    options
	nodes   map[string]*standin.Server
	wka     []string        // the app servers, by host name
	names   *hosts.Resolver // resolves the well-known members' names
	port    int             // every instance's HTTP port
	fronts  map[string]*front.Front
	dns     *hosts.Server
	dnsAddr string
	dnsDone chan error
	check   context.CancelFunc
	checked chan struct{}

	// The DNS responder's own cluster member, on which a carbonlb.Zone
	// keeps lbName and mgtName equal to the live members.
	dnsMember *membership.Node
	zone      *carbonlb.Zone
	zoneStop  context.CancelFunc
	zoneDone  chan error

	mu      sync.Mutex
	healthy []netip.Addr  // the DNS answer for siteName; guarded by mu
	changed chan struct{} // closed and replaced when healthy changes; guarded by mu
}

// config is every instance's balancer configuration: the site's name goes
// to the app servers' pool, sticky on the app servers' JSESSIONID (mode
// StickyLearn; the instances share what they learn, see startInstance) or
// on the balancer's own signed cookie (StickyInsert, with the key the
// instances share, so that each honours the cookies of the other with no
// state shared at run time).
func config(name string, mode balancer.StickyMode, key []byte) balancer.Config {
	cfg := balancer.DefaultConfig()
	cfg.Name = name // X-Forwarded-Server
	cfg.StickyKey = key
	svc := balancer.DefaultService("appserver", pool, siteName)
	svc.Sticky.Mode = mode
	cfg.Services = []balancer.Service{svc}
	return cfg
}

func startDeployment(ctx context.Context, o options) (_ *deployment, err error) {
	d := &deployment{opts: o, nodes: make(map[string]*standin.Server), fronts: make(map[string]*front.Front),
		changed: make(chan struct{})}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	lo := instances()[0].ip
	known := make(map[string]netip.Addr)
	for _, a := range appServers() {
		known[a.host()] = lo
	}
	if d.names, err = loopback.Resolver(known); err != nil {
		return nil, err
	}
	for _, a := range appServers() {
		ln, note, err := listen.TCP(lo, d.port0(httpPort+a.offset), true)
		if err != nil {
			return nil, err
		}
		d.note(note)
		mc := membership.DefaultLocalConfig(domain)
		mc.Name, mc.SubDomain, mc.Port, mc.WKA, mc.Logger = a.name, membership.SubDomainMgt, d.port0(a.memberPort), d.wka, o.logger
		mc.Resolve, mc.Timing = d.names.LookupAddr, loopback.Timing()
		s, err := standin.Start(ctx, standin.ServerConfig{Listener: ln, Member: mc, FallbackPort: true})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.name, err)
		}
		d.note(s.Note())
		d.nodes[a.name] = s
		d.wka = append(d.wka, net.JoinHostPort(a.host(), strconv.Itoa(int(s.Member().Addr().Port()))))
	}

	lns, note, err := listenPair(d.port0(lbPort), !o.freePorts)
	if err != nil {
		return nil, err
	}
	d.note(note)
	d.port = listen.Port(lns[0])
	for i, in := range instances() {
		if err := d.startInstance(ctx, in, lns[i]); err != nil {
			for _, ln := range lns[i+1:] {
				ln.Close()
			}
			return nil, err
		}
	}

	d.dns, err = hosts.NewServer(hosts.ServerConfig{Zone: zone, TTL: dnsTTL, Logger: o.logger})
	if err != nil {
		return nil, err
	}
	pc, note, err := listen.UDP(lo, d.port0(dnsPort), true)
	if err != nil {
		return nil, err
	}
	d.note(note)
	d.dnsAddr = pc.LocalAddr().String()
	d.dnsDone = make(chan error, 1)
	go func() { d.dnsDone <- d.dns.ServePacket(pc) }()

	cctx, cancel := context.WithCancel(context.Background())
	d.check, d.checked = cancel, make(chan struct{})
	go func() { defer close(d.checked); d.checkInstances(cctx) }()

	if err := d.startZone(ctx, lo); err != nil {
		return nil, err
	}

	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	// In learn mode an instance's /healthz passes once it has the other's
	// sessions, which it may take a few gossip rounds to fetch (the other
	// must have heard of it); the first checks count an instance that has
	// not yet passed as healthy, so wait for that first.
	for _, in := range instances() {
		if st := d.fronts[in.name].Sessions(); st != nil {
			select {
			case <-st.Ready():
			case <-wctx.Done():
				return nil, fmt.Errorf("%s never fetched the other instance's sessions: %w", in.name, wctx.Err())
			}
		}
	}
	if err := d.waitHealthy(wctx, len(instances())); err != nil {
		return nil, fmt.Errorf("the instances never became healthy: %w", err)
	}
	if err := d.waitZone(wctx, len(instances())); err != nil {
		return nil, fmt.Errorf("the DNS responder never saw every member: %w", err)
	}
	return d, nil
}

// startZone joins the DNS responder to the cluster as a member of its own
// sub-domain, "dns", with no port (neither a backend nor a balancer), and
// keeps the responder's names of the members equal to the live ones: lbName
// answers with the balancer instances, members with no port and no
// sub-domain, and mgtName with the app servers, instead of host entries
// edited on every node.
func (d *deployment) startZone(ctx context.Context, ip netip.Addr) error {
	mc := membership.DefaultLocalConfig(domain)
	mc.Name, mc.SubDomain, mc.BindAddr, mc.WKA, mc.Logger = "dns", "dns", ip.String(), d.wka, d.opts.logger
	mc.Resolve, mc.Timing = d.names.LookupAddr, loopback.Timing()
	var err error
	if d.dnsMember, err = membership.Join(ctx, mc); err != nil {
		return fmt.Errorf("DNS responder: %w", err)
	}
	if d.zone, err = carbonlb.NewZone(d.dns, carbonlb.ZoneConfig{Zone: zone, Balancers: lbName, Logger: d.opts.logger}); err != nil {
		return err
	}
	zctx, cancel := context.WithCancel(context.Background())
	d.zoneStop, d.zoneDone = cancel, make(chan error, 1)
	go func() { d.zoneDone <- d.zone.Run(zctx, d.dnsMember) }()
	return nil
}

// waitZone waits until lbName answers with n instances and mgtName with the
// app servers' address.
func (d *deployment) waitZone(ctx context.Context, n int) error {
	return d.zone.Wait(ctx, func(names map[string][]netip.Addr) bool {
		return len(names[lbName]) == n && len(names[mgtName]) == 1
	})
}

// port0 returns p, or 0 (any free port) with freePorts.
func (d *deployment) port0(p int) int {
	if d.opts.freePorts {
		return 0
	}
	return p
}

func (d *deployment) note(s string) {
	if s != "" && d.opts.notes != nil {
		fmt.Fprintln(d.opts.notes, "  note:", s)
	}
}

// listenPair listens on the same port on every instance's address, so
// that one name and one port reach any of them.
func listenPair(port int, fallback bool) ([]net.Listener, string, error) {
	note := ""
	for range 20 {
		var lns []net.Listener
		var err error
		p := port
		for _, in := range instances() {
			var ln net.Listener
			ln, _, err = listen.TCP(in.ip, p, false)
			if err != nil {
				break
			}
			p = listen.Port(ln)
			lns = append(lns, ln)
		}
		if err == nil {
			return lns, note, nil
		}
		for _, ln := range lns {
			ln.Close()
		}
		if !fallback && port != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, "", err
		}
		if port != 0 {
			note = fmt.Sprintf("port %d is taken on an instance's address; using a free one", port)
		}
		port = 0
	}
	return nil, "", errors.New("no port free on every instance's address")
}

// startInstance starts a balancer instance on ln, a member of the cluster on
// its own address, whose pool follows the cluster.
func (d *deployment) startInstance(ctx context.Context, in instance, ln net.Listener) error {
	mc := membership.DefaultLocalConfig(domain)
	mc.Name, mc.BindAddr, mc.WKA, mc.Logger, mc.Timing = in.name, in.ip.String(), d.wka, d.opts.logger, loopback.Timing()
	mc.Resolve = d.names.LookupAddr
	if !d.opts.freePorts {
		mc.Port, mc.PortRetries = 4000, 10
	}
	// In learn mode each instance broadcasts the sessions it learns to the
	// other, and one that starts fetches the other's table
	// (carbonlb.SessionSync), so a session stays on its app server
	// whichever instance a request reaches.
	f, err := front.Start(ctx, front.Config{Balancer: config(in.name, d.opts.sticky, d.opts.stickyKey), Listener: ln,
		Member: &mc, FallbackPort: !d.opts.freePorts, Logger: d.opts.logger,
		ShareSessions: d.opts.sticky == balancer.StickyLearn,
		// Stay open until the DNS responder has dropped it (two failed checks)
		// and resolvers caching its old answer (TTL) have asked again.
		DrainDelay: 3*d.opts.checkInterval + dnsTTL})
	if err != nil {
		return fmt.Errorf("%s: %w", in.name, err)
	}
	d.note(f.Note())
	d.fronts[in.name] = f
	return nil
}

// checkInstances checks every instance's /healthz each checkInterval and
// publishes those that pass as the addresses of siteName, until ctx ends.
// An instance is dropped after two failed checks in a row (one slow answer
// on a busy machine does not drop it) and taken back after one good check.
// When every instance fails, all are published: a client then finds any
// that still serves, where an empty answer would fail it for sure.
func (d *deployment) checkInstances(ctx context.Context) {
	const fall = 2
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Second}
	tick := time.NewTicker(d.opts.checkInterval)
	defer tick.Stop()
	fails := make(map[string]int)
	for {
		var healthy, all []netip.Addr
		for _, in := range instances() {
			all = append(all, in.ip)
			if d.healthz(ctx, client, in) {
				fails[in.name] = 0
			} else {
				fails[in.name]++
			}
			if fails[in.name] < fall {
				healthy = append(healthy, in.ip)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if len(healthy) == 0 {
			healthy = all
		}
		d.publish(healthy)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// healthz reports whether in answers its health check with 200.
func (d *deployment) healthz(ctx context.Context, client *http.Client, in instance) bool {
	u := fmt.Sprintf("http://%s/healthz", netip.AddrPortFrom(in.ip, uint16(d.port)))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// publish sets the DNS answer for siteName to healthy.
func (d *deployment) publish(healthy []netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.Equal(healthy, d.healthy) {
		return
	}
	if err := d.dns.Set(siteName, healthy...); err != nil {
		d.opts.logger.Error("DNS record not set", "name", siteName, "err", err)
		return
	}
	d.opts.logger.Info("DNS record set", "name", siteName, "addrs", healthy)
	d.healthy = healthy
	close(d.changed)
	d.changed = make(chan struct{})
}

// waitHealthy waits until n instances are published.
func (d *deployment) waitHealthy(ctx context.Context, n int) error {
	for {
		d.mu.Lock()
		ok, ch := len(d.healthy) == n, d.changed
		d.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stopInstance drains and stops instance name.
func (d *deployment) stopInstance(ctx context.Context, name string) error {
	f, ok := d.fronts[name]
	if !ok {
		return fmt.Errorf("%s is not running", name)
	}
	delete(d.fronts, name)
	return f.Shutdown(ctx)
}

// restartInstance starts instance name again on its address and port.
func (d *deployment) restartInstance(ctx context.Context, name string) error {
	i := slices.IndexFunc(instances(), func(in instance) bool { return in.name == name })
	in := instances()[i]
	ln, _, err := listen.TCP(in.ip, d.port, false)
	if err != nil {
		return err
	}
	return d.startInstance(ctx, in, ln)
}

func (d *deployment) close() error {
	var errs []error
	if d.check != nil {
		d.check()
		<-d.checked
	}
	if d.zoneStop != nil {
		d.zoneStop()
		<-d.zoneDone
	}
	if d.dnsMember != nil {
		errs = append(errs, d.dnsMember.Close())
	}
	if d.dns != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, d.dns.Shutdown(ctx))
		cancel()
		if d.dnsDone != nil {
			<-d.dnsDone
		}
	}
	for _, in := range instances() {
		if f, ok := d.fronts[in.name]; ok {
			errs = append(errs, f.Close())
			delete(d.fronts, in.name)
		}
	}
	for _, a := range appServers() {
		if s, ok := d.nodes[a.name]; ok {
			errs = append(errs, s.Kill())
			delete(d.nodes, a.name)
		}
	}
	if d.names != nil {
		errs = append(errs, d.names.Close())
	}
	return errors.Join(errs...)
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
