// Command carbonnode is a stand-in Carbon node configured from a product
// home, or a sidecar that announces a backend written in another language to
// the cluster on its behalf.
//
//	carbonnode -home /opt/wso2esb-worker1
//	carbonnode -sidecar http://10.0.0.5:8080 -domain wso2.esb.domain -subdomain worker -wka 10.0.0.4:4100
//
// With -home it reads repository/conf/axis2/axis2.xml and carbon.xml (and
// catalina-server.xml) as a Carbon server does: the clustering section gives
// the domain, the sub-domain, localMemberHost and localMemberPort, the
// well-known members and the member properties; carbon.xml's port offset
// gives the HTTP port (9763 plus the offset). It joins the cluster and serves
// HTTP there, issuing JSESSIONID sessions as Tomcat does and naming itself
// in every answer, so a balancer in front can be tried without a JVM.
//
// With -sidecar URL it serves nothing: it joins the cluster announcing URL's
// port as the member's HTTP (or HTTPS) port, so balancers that learn their
// pools from the cluster send traffic to URL. Its cluster address must be
// the backend's own (the sidecar runs beside the backend). It checks URL
// every -check-interval and withdraws the port while the backend does not
// answer, so balancers stop sending it requests.
//
// localMemberHost and localMemberBindAddress may be host names, as in seed
// 004's axis2.xml: they are looked up, like well-known members given by
// name, in the hosts file (-hosts-file, default /etc/hosts) and then DNS,
// when the node joins.
//
// Flags override what the files say. It runs until SIGINT or SIGTERM and
// then leaves the cluster gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/examples/internal/cli"
	"github.com/carbonlb/carbonlb/examples/internal/standin"
	"github.com/carbonlb/carbonlb/hosts"
	"github.com/carbonlb/carbonlb/membership"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Exit("carbonnode", os.Stderr, run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	stop()
	os.Exit(code)
}

// usage is the text of carbonnode -h.
const usage = `Usage:
  carbonnode -home PRODUCT_HOME [flags]
  carbonnode -sidecar URL -domain DOMAIN [-subdomain SUB] [-wka MEMBERS] [flags]

Modes:
  -home     a stand-in Carbon node configured from the product home's
            axis2.xml and carbon.xml: it joins the cluster and serves HTTP
  -sidecar  announce the backend at URL to the cluster, withdrawing it while
            it does not answer; serve nothing

Flags override what the files say.

Signals:
  SIGINT, SIGTERM  leave the cluster gracefully and exit

Under systemd (Type=notify) it sends READY=1 once it has joined and
STOPPING=1 when it leaves.

Exit status:
  0  left the cluster after a signal
  1  it could not start, join or leave
  2  the command line is wrong
`

// options are the command-line settings.
type options struct {
	home, sidecar, name, domain, subDomain, memberHost, wka, httpAddr, hostsFile string
	memberPort                                                                   int
	checkInterval                                                                time.Duration
	log                                                                          *cli.Log
	set                                                                          map[string]bool // flags given
}

// parseFlags parses args (without the program name); stdout gets
// -version's answer.
func parseFlags(args []string, stdout, stderr io.Writer) (options, error) {
	fs := cli.NewFlagSet("carbonnode", usage, stderr)
	var o options
	fs.StringVar(&o.home, "home", "", "product home whose repository/conf files configure the node")
	fs.StringVar(&o.sidecar, "sidecar", "", "announce this backend URL (http://ip:port) instead of serving")
	fs.StringVar(&o.name, "name", "", "member name (default: member host:port)")
	fs.StringVar(&o.domain, "domain", "", "clustering domain (axis2.xml domain)")
	fs.StringVar(&o.subDomain, "subdomain", "", "sub-domain: worker, mgt, ... (axis2.xml subDomain property)")
	fs.StringVar(&o.memberHost, "member-host", "", "address or host name to advertise to the cluster (axis2.xml localMemberHost)")
	fs.StringVar(&o.hostsFile, "hosts-file", "", "hosts file that host names are looked up in before DNS (default /etc/hosts)")
	fs.IntVar(&o.memberPort, "member-port", 4000, "cluster port (axis2.xml localMemberPort); 0 means any free port")
	fs.StringVar(&o.wka, "wka", "", "comma-separated well-known members, host:port or a range such as 192.168.1.2-10:4000")
	fs.StringVar(&o.httpAddr, "http", "", "HTTP listen address (default: member host and 9763 plus the port offset)")
	fs.DurationVar(&o.checkInterval, "check-interval", 2*time.Second, "with -sidecar, how often the backend is checked")
	o.log = cli.LogFlags(fs, "info")
	if err := fs.ParseArgs(args, stdout); err != nil {
		return o, err
	}
	o.set = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	switch {
	case o.home == "" && o.sidecar == "":
		return o, cli.Usagef("either -home or -sidecar is required")
	case o.home == "" && o.domain == "":
		return o, cli.Usagef("-sidecar without -home needs -domain")
	case o.sidecar != "" && o.httpAddr != "":
		return o, cli.Usagef("-http and -sidecar exclude each other")
	case o.checkInterval <= 0:
		return o, cli.Usagef("-check-interval must be positive")
	}
	return o, nil
}

// memberConfig builds the node's membership configuration from the product
// home, when given, and the flags. Well-known members given by host name
// resolve through r.
func (o options) memberConfig(logger *slog.Logger, r *hosts.Resolver) (membership.Config, error) {
	cfg := membership.DefaultConfig(o.domain)
	if o.home != "" {
		n, err := carbonconf.LoadNode(o.home)
		if err != nil {
			return cfg, err
		}
		if o.set["member-host"] && n.Axis2 != nil && n.Axis2.Clustering != nil { // in memory only
			if err := n.Axis2.SetClusteringParameter("localMemberHost", o.memberHost); err != nil {
				return cfg, err
			}
		}
		if cfg, err = carbonlb.MemberConfig(n, r); err != nil {
			return cfg, err
		}
	}
	if o.set["domain"] {
		cfg.Domain = o.domain
	}
	if o.set["subdomain"] {
		cfg.SubDomain = o.subDomain
	}
	if o.set["member-host"] {
		cfg.AdvertiseAddr, cfg.BindAddr = o.memberHost, o.memberHost
	}
	if o.set["member-port"] || o.home == "" {
		cfg.Port = o.memberPort
		if cfg.Port == 0 {
			cfg.PortRetries = 0
		}
	}
	if o.set["wka"] {
		cfg.WKA = splitList(o.wka)
	}
	if o.sidecar != "" {
		addr, props, err := sidecarConfig(o.sidecar)
		if err != nil {
			return cfg, err
		}
		if cfg.Properties == nil {
			cfg.Properties = make(map[string]string)
		}
		delete(cfg.Properties, membership.PropHTTPPort)
		delete(cfg.Properties, membership.PropHTTPSPort)
		for k, v := range props {
			cfg.Properties[k] = v
		}
		if !o.set["member-host"] { // the member is reached where the backend is
			cfg.AdvertiseAddr, cfg.BindAddr = addr.String(), addr.String()
		}
	}
	if cfg.AdvertiseAddr == "" {
		return cfg, errors.New("no address to advertise: set localMemberHost in axis2.xml or -member-host")
	}
	cfg.Resolve = r.LookupAddr
	cfg.Name = o.name // "": membership names the node by the address and port it gets
	cfg.Logger = logger
	return cfg, nil
}

// resolver returns the resolver of host names: hostsFile, or the system's
// hosts file when it is "", then DNS.
func resolver(logger *slog.Logger, hostsFile string) (*hosts.Resolver, error) {
	if hostsFile == "" {
		return carbonlb.SystemResolver(logger)
	}
	rc := hosts.DefaultResolverConfig()
	rc.Logger = logger
	rc.HostsFile = hostsFile
	if _, err := os.Stat(rc.ResolvConf); err != nil {
		rc.ResolvConf = ""
	}
	return hosts.NewResolver(rc)
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

// run is the program: it joins the cluster, serves (or watches the sidecar's
// backend) until ctx is done, and leaves.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	logger, err := o.log.Logger(stderr)
	if err != nil {
		return err
	}
	r, err := resolver(logger, o.hostsFile)
	if err != nil {
		return err
	}
	defer r.Close()
	cfg, err := o.memberConfig(logger, r)
	if err != nil {
		return err
	}
	sc := standin.ServerConfig{Member: cfg}
	if o.sidecar == "" {
		addr := o.httpAddr
		if addr == "" {
			host := cfg.AdvertiseAddr
			if _, err := netip.ParseAddr(host); err != nil && !strings.Contains(host, "{{") {
				ips, err := r.LookupAddr(ctx, host) // the name membership advertises
				if err != nil {
					return fmt.Errorf("localMemberHost %s: %w", host, err)
				}
				host = ips[0].String()
			}
			addr = net.JoinHostPort(host, cfg.Properties[membership.PropHTTPPort])
		}
		if sc.Listener, err = net.Listen("tcp", addr); err != nil {
			return err
		}
		// The port announced is the one listened on.
		sc.Member.Properties[membership.PropHTTPPort] = strconv.Itoa(sc.Listener.Addr().(*net.TCPAddr).Port)
	}
	srv, err := standin.Start(ctx, sc)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return err
	}
	m := srv.Member()
	what := "serving " + srv.URL()
	if o.sidecar != "" {
		what = "announcing " + o.sidecar
	}
	fmt.Fprintf(stdout, "%s joined %s as %s at %s, %s (well-known members: %s)\n",
		m.Name(), cfg.Domain, orNone(cfg.SubDomain), m.Addr(), what, orNone(strings.Join(cfg.WKA, ", ")))
	if err := cli.Notify("READY=1\nSTATUS=" + what); err != nil {
		logger.Warn("carbonnode: systemd notification", "err", err)
	}

	var watchErr error
	if o.sidecar != "" {
		watchErr = watchBackend(ctx, o.sidecar, o.checkInterval, m, cfg.Properties, logger)
	} else {
		<-ctx.Done()
	}
	cli.Notify("STOPPING=1")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(watchErr, srv.Stop(sctx))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// watchBackend connects to the backend every interval until ctx is done.
// While it refuses, the member announces no port, so that balancers drop it;
// once it accepts again, props are announced again.
func watchBackend(ctx context.Context, backendURL string, interval time.Duration, m *membership.Node, props map[string]string, logger *slog.Logger) error {
	_, rest, _ := strings.Cut(backendURL, "://")
	hostport, _, _ := strings.Cut(rest, "/")
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return err
	}
	withdrawn := make(map[string]string)
	for k, v := range props {
		if k != membership.PropHTTPPort && k != membership.PropHTTPSPort {
			withdrawn[k] = v
		}
	}
	var d net.Dialer
	up := true
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, interval)
		conn, err := d.DialContext(cctx, "tcp", ap.String())
		cancel()
		if conn != nil {
			conn.Close()
		}
		if ctx.Err() != nil {
			return nil
		}
		if now := err == nil; now != up {
			up = now
			announce := props
			if !up {
				announce = withdrawn
				logger.Warn("backend down; withdrawn from the cluster", "backend", backendURL, "err", err)
			} else {
				logger.Info("backend up; announced to the cluster", "backend", backendURL)
			}
			if err := m.SetProperties(announce); err != nil {
				return err
			}
		}
	}
}
