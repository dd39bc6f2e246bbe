// Command gateway is a sticky HTTP(S) load balancer built on package
// balancer. It runs in one of two modes.
//
// In front of a static list of backends:
//
//	go run ./examples/gateway -listen 127.0.0.1:18080 \
//		-backends http://127.0.0.1:19001,http://127.0.0.1:19002 -sticky learn
//
// With -tls-cert/-tls-key (repeatable as comma-separated lists) or
// -tls-self-signed it serves HTTPS (HTTP/2 and HTTP/1.1), certificates
// picked by SNI.
//
// Configured from a WSO2 Elastic Load Balancer's files:
//
//	go run ./examples/gateway -lbconf repository/conf/loadbalancer.conf \
//		-axis2 repository/conf/axis2/axis2.xml -listen :8280 -https :8243 \
//		-tls-cert wrk.crt,mgt.crt -tls-key wrk.key,mgt.key
//
// loadbalancer.conf's services and domains become virtual hosts routed to
// the pools "domain/subDomain"; the optional axis2.xml makes the gateway a
// member of the cluster whose pools follow the members; -static adds pools
// of backends that are not members ("pool=url,url;pool=url"). -listen serves
// HTTP and -https HTTPS with a certificate per host. /healthz answers a
// fronting load balancer. SIGHUP re-reads loadbalancer.conf, the static
// pools, the certificate files and axis2.xml's well-known members and
// properties without dropping a connection (a file that does not parse, or
// a loadbalancer.conf whose blocks are not all closed, as an editor's
// half-saved file, is refused with its position and the running
// configuration kept). SIGTERM drains: /healthz turns 503 for -drain, then
// the gateway leaves the cluster and finishes the requests in flight.
// -sticky, -sticky-key-file, -mgt-allow, -trusted-proxies and
// -cluster-key-file set the services' stickiness and its cookie key, the
// networks allowed to the management console (the pools of sub-domain mgt),
// the proxies whose X-Forwarded-For is believed, and the key that encrypts
// the cluster's traffic.
//
// In both modes -admin serves metrics, the status page, the health check,
// the profiler and the drain of a backend on an address of its own;
// -engine chooses what serves HTTP (auto: balancer.Server for HTTP/1.1 and
// net/http's server for HTTP/2; own; net/http);
// -proxy-protocol takes client addresses from a TCP front; -check validates
// the configuration and exits, as nginx -t; under systemd it reports
// READY, RELOADING and STOPPING (sd_notify). gateway -h prints the usage,
// the signals and the exit statuses.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/cli"
	"github.com/carbonlb/carbonlb/examples/internal/front"
	"github.com/carbonlb/carbonlb/examples/internal/listen"
	"github.com/carbonlb/carbonlb/examples/internal/site"
	"github.com/carbonlb/carbonlb/metrics"
)

// options are the command-line settings.
type options struct {
	listen             string
	backends           []string
	sticky             balancer.StickyMode
	policy             balancer.Policy
	pool               string
	tlsCerts           []string
	tlsKeys            []string
	keystores          []site.KeystoreFile // -tls-keystore with -tls-keystore-password-file
	backendCAs         []string            // -backend-ca
	backendTruststores []site.KeystoreFile // -backend-truststore with its password files
	backendServerName  string              // -backend-server-name
	selfSigned         []string
	log                *cli.Log
	accessLog          bool
	check              bool
	healthPath         string
	tenants            string
	cpuProfile         string
	procs              int               // -procs: GOMAXPROCS, 0 for Go's default
	ready              func(addr string) // called once listening (tests)

	// Both modes.
	engine                front.Engine // -engine
	admin, adminTokenFile string
	adminReady            func(addr string) // called once the admin listener listens (tests)
	proxyProtocol         []netip.Prefix

	// Configuration-file mode.
	lbconf, axis2, static, https, statusPath string
	memberPort                               *int
	fileSticky                               *balancer.StickyMode // -sticky given with -lbconf
	stickyKeyFile, clusterKeyFile            string
	shareSessions                            bool
	shareAwait                               time.Duration
	mgtAllow, trustedProxies                 []netip.Prefix
	drain                                    time.Duration
	started                                  func(*site.Site) // called once serving (tests)
}

// parseFlags parses args (without the program name); stderr gets the
// usage, and -version's answer too.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	return parseArgs(args, stderr, stderr)
}

// parseArgs parses args (without the program name). Its error is a
// *cli.Exited after -h, -version or a bad flag, and a *cli.UsageError for
// flags that do not go together.
func parseArgs(args []string, stdout, stderr io.Writer) (options, error) {
	o, err := parseCommandLine(args, stdout, stderr)
	var ex *cli.Exited
	var ue *cli.UsageError
	if err != nil && !errors.As(err, &ex) && !errors.As(err, &ue) {
		err = &cli.UsageError{Err: err}
	}
	return o, err
}

func parseCommandLine(args []string, stdout, stderr io.Writer) (options, error) {
	fs := cli.NewFlagSet("gateway", usage, stderr)
	var o options
	var backends, sticky, policy, certs, keys, self, mgtAllow, trusted, proxy, keystores, keystorePWs, engine string
	var backendCAs, truststores, truststorePWs string
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve on")
	fs.StringVar(&backends, "backends", "", "comma-separated backend URLs (http://host:port), or name=URL: a backend whose name is its route (Tomcat's jvmRoute, for -sticky learn)")
	fs.StringVar(&sticky, "sticky", "learn", "stickiness: learn (JSESSIONID), insert (own cookie) or off")
	fs.StringVar(&policy, "policy", "round_robin", "policy: round_robin, least_conn or p2c")
	fs.StringVar(&o.pool, "pool", "default", "pool name")
	fs.StringVar(&certs, "tls-cert", "", "comma-separated PEM certificate files; enables HTTPS")
	fs.StringVar(&keys, "tls-key", "", "comma-separated PEM key files, one per -tls-cert")
	fs.StringVar(&keystores, "tls-keystore", "", "comma-separated Java keystores (JKS or PKCS#12, as Carbon's wso2carbon.jks) whose keys and certificates are served; enables HTTPS")
	fs.StringVar(&keystorePWs, "tls-keystore-password-file", "", "comma-separated files holding the password of each -tls-keystore")
	fs.StringVar(&self, "tls-self-signed", "", "comma-separated host names for a generated self-signed certificate; enables HTTPS")
	o.log = cli.LogFlags(fs, "info")
	fs.StringVar(&backendCAs, "backend-ca", "", "comma-separated PEM files of the certificates trusted for https backends, in place of the system's roots (re-read on SIGHUP with -lbconf, else when they change)")
	fs.StringVar(&truststores, "backend-truststore", "", "comma-separated Java truststores (JKS or PKCS#12, as Carbon's client-truststore.jks) whose certificates are trusted for https backends, in place of the system's roots")
	fs.StringVar(&truststorePWs, "backend-truststore-password-file", "", "comma-separated files holding the password of each -backend-truststore")
	fs.StringVar(&o.backendServerName, "backend-server-name", "", "name https backends' certificates must be valid for, sent as SNI (empty: with -backend-ca or -backend-truststore only the chain is verified, as HAProxy does without verifyhost; without them, the backend URL's host against the system's roots)")
	fs.BoolVar(&o.accessLog, "access-log", false, "log one record per request at Info (client, host, method, path, status, bytes, duration, service, backend, sticky, retries, request id), in -log-format")
	fs.BoolVar(&o.check, "check", false, "read and validate the configuration (files, keys, certificates, backends) and exit: 0 valid, 1 not; nothing listens")
	fs.StringVar(&o.healthPath, "health-path", "", "active HTTP health check path (empty: passive checks only)")
	fs.StringVar(&o.tenants, "tenants", "", "with -lbconf: tenant file of \"domain id\" lines for the services' tenant_range (re-read on SIGHUP)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.IntVar(&o.procs, "procs", 0, "OS threads running Go code at once (GOMAXPROCS; 0: one per CPU, Go's default); 1 spends less CPU per request on a host whose CPUs the backends or other programs share")
	fs.StringVar(&engine, "engine", front.DefaultEngine.String(), "HTTP server: auto (the balancer's own HTTP/1.1 engine, net/http's server for HTTP/2), own (the own engine only: no HTTP/2) or net/http")
	fs.StringVar(&o.lbconf, "lbconf", "", "loadbalancer.conf whose services configure the gateway (instead of -backends)")
	fs.StringVar(&o.axis2, "axis2", "", "with -lbconf: axis2.xml whose clustering section makes the gateway a cluster member")
	memberPort := fs.Int("member-port", -1, "with -axis2: cluster port instead of localMemberPort (0: any free port)")
	fs.StringVar(&o.static, "static", "", "with -lbconf: static pools, pool=url,url;pool=url")
	fs.StringVar(&o.https, "https", "", "with -lbconf: HTTPS listen address (certificates from -tls-cert/-tls-key or -tls-self-signed)")
	fs.StringVar(&o.statusPath, "status-path", "", "with -lbconf: also serve the status page on the public listeners at this path (it lists backend addresses; empty: only on -admin)")
	fs.StringVar(&o.admin, "admin", "", "admin address: /metrics, /status, /healthz, /debug/pprof/ and POST /backends/drain, undrain, weight; a bare :port listens on loopback (empty: none)")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "file holding the bearer token (at least 16 bytes) the admin interface requires; required when -admin is not loopback")
	fs.StringVar(&proxy, "proxy-protocol", "", "comma-separated CIDRs of TCP fronts that must send a PROXY protocol v1/v2 header; others may not (empty: none)")
	fs.StringVar(&o.stickyKeyFile, "sticky-key-file", "", "with -lbconf: file whose bytes (at least 16) sign the -sticky insert cookie; instances sharing it honour each other's cookies (empty: a random key)")
	fs.StringVar(&mgtAllow, "mgt-allow", "", "with -lbconf: comma-separated CIDRs allowed to the services whose pool's sub-domain is mgt; others get 403 (empty: everyone)")
	fs.StringVar(&trusted, "trusted-proxies", "", "with -lbconf: comma-separated CIDRs of peers whose X-Forwarded-For is kept and extended (empty: nobody)")
	fs.BoolVar(&o.shareSessions, "share-sessions", true, "with -axis2: share the sessions learned by -sticky learn with the cluster's other gateways (each routes the sessions any learned; a restarted one fetches them)")
	fs.DurationVar(&o.shareAwait, "share-await", 50*time.Millisecond, "with -share-sessions: how long a request whose session this gateway does not know waits for it to come from another gateway (0 to 1s)")
	fs.StringVar(&o.clusterKeyFile, "cluster-key-file", "", "with -axis2: file whose bytes (16, 24 or 32) encrypt the cluster's traffic (empty: none)")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "with -lbconf: on SIGTERM, how long /healthz answers 503 before the listeners close")
	if err := fs.ParseArgs(args, stdout); err != nil {
		return o, err
	}
	if _, err := o.log.Logger(io.Discard); err != nil {
		return o, err
	}
	var eerr error
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "engine" { // else the zero Engine: the build's default
			o.engine, eerr = front.ParseEngine(engine)
		}
	})
	if eerr != nil {
		return o, fmt.Errorf("-engine: %w", eerr)
	}
	if o.procs < 0 {
		return o, fmt.Errorf("-procs %d: want 0 or more", o.procs)
	}
	if *memberPort >= 0 {
		o.memberPort = memberPort
	}
	if err := o.checkAdmin(); err != nil {
		return o, err
	}
	var perr error
	if o.proxyProtocol, perr = parseCIDRs("-proxy-protocol", proxy); perr != nil {
		return o, perr
	}
	o.backendCAs = splitList(backendCAs)
	if o.backendTruststores, perr = pairFiles("-backend-truststore", truststores, truststorePWs); perr != nil {
		return o, perr
	}
	if o.lbconf != "" {
		var err error
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "policy" || f.Name == "pool" {
				err = fmt.Errorf("-%s applies to -backends; with -lbconf, loadbalancer.conf decides", f.Name)
			}
		})
		if err != nil {
			return o, err
		}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "sticky" {
				var m balancer.StickyMode
				if m, err = balancer.ParseStickyMode(sticky); err == nil {
					o.fileSticky = &m
				}
			}
		})
		if err != nil {
			return o, fmt.Errorf("-sticky: %w", err)
		}
		if o.mgtAllow, err = parseCIDRs("-mgt-allow", mgtAllow); err != nil {
			return o, err
		}
		if o.trustedProxies, err = parseCIDRs("-trusted-proxies", trusted); err != nil {
			return o, err
		}
		if o.keystores, err = parseKeystores(keystores, keystorePWs); err != nil {
			return o, err
		}
		return o.fileMode(backends, certs, keys, self)
	}
	if o.axis2 != "" || o.static != "" || o.https != "" || o.memberPort != nil {
		return o, errors.New("-axis2, -static, -https and -member-port need -lbconf")
	}
	if o.stickyKeyFile != "" || mgtAllow != "" || trusted != "" || o.clusterKeyFile != "" || o.tenants != "" {
		return o, errors.New("-sticky-key-file, -mgt-allow, -trusted-proxies, -cluster-key-file and -tenants need -lbconf")
	}
	var err error
	if o.sticky, err = balancer.ParseStickyMode(sticky); err != nil {
		return o, err
	}
	if o.policy, err = balancer.ParsePolicy(policy); err != nil {
		return o, err
	}
	o.backends = splitList(backends)
	if len(o.backends) == 0 {
		return o, errors.New("-backends: at least one backend URL is required")
	}
	o.tlsCerts, o.tlsKeys, o.selfSigned = splitList(certs), splitList(keys), splitList(self)
	if len(o.tlsCerts) != len(o.tlsKeys) {
		return o, errors.New("-tls-cert and -tls-key must list the same number of files")
	}
	if o.keystores, err = parseKeystores(keystores, keystorePWs); err != nil {
		return o, err
	}
	return o, nil
}

// parseKeystores pairs -tls-keystore with -tls-keystore-password-file.
func parseKeystores(paths, passwordFiles string) ([]site.KeystoreFile, error) {
	return pairFiles("-tls-keystore", paths, passwordFiles)
}

// pairFiles pairs the keystores of flag name with the password files of
// name-password-file.
func pairFiles(name, paths, passwordFiles string) ([]site.KeystoreFile, error) {
	ps, pws := splitList(paths), splitList(passwordFiles)
	if len(ps) != len(pws) {
		return nil, fmt.Errorf("%s and %s-password-file must list the same number of files", name, name)
	}
	var out []site.KeystoreFile
	for i := range ps {
		out = append(out, site.KeystoreFile{Path: ps[i], PasswordFile: pws[i]})
	}
	return out, nil
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

// parseCIDRs parses a comma-separated list of CIDRs; a bare address is the
// prefix of that one address.
func parseCIDRs(flagName, s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range splitList(s) {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR such as 10.0.0.0/8 or an IP address", flagName, v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}

// fileMode checks the flags of the configuration-file mode.
func (o options) fileMode(backends, certs, keys, self string) (options, error) {
	if backends != "" {
		return o, errors.New("-backends and -lbconf exclude each other: give static pools with -static")
	}
	o.tlsCerts, o.tlsKeys, o.selfSigned = splitList(certs), splitList(keys), splitList(self)
	if len(o.tlsCerts) != len(o.tlsKeys) {
		return o, errors.New("-tls-cert and -tls-key must list the same number of files")
	}
	if o.https == "" && (len(o.tlsCerts) > 0 || len(o.keystores) > 0 || len(o.selfSigned) > 0) {
		return o, errors.New("with -lbconf, certificates need an -https listen address")
	}
	if o.drain < 0 {
		return o, errors.New("-drain must not be negative")
	}
	if o.clusterKeyFile != "" && o.axis2 == "" {
		return o, errors.New("-cluster-key-file needs -axis2")
	}
	if o.shareAwait < 0 || o.shareAwait > time.Second {
		return o, fmt.Errorf("-share-await %v: want 0 to 1s", o.shareAwait)
	}
	if o.stickyKeyFile != "" && (o.fileSticky == nil || *o.fileSticky != balancer.StickyInsert) {
		return o, errors.New("-sticky-key-file signs the cookie of -sticky insert: give -sticky insert")
	}
	return o, nil
}

// siteConfig is the configuration-file mode's site.
func (o options) siteConfig(logger *slog.Logger) site.Config {
	cfg := site.Config{LBConf: o.lbconf, Axis2: o.axis2, MemberPort: o.memberPort, Static: o.static,
		SelfSigned: o.selfSigned, HealthPath: o.healthPath, TenantsFile: o.tenants, StatusPath: o.statusPath, DrainDelay: o.drain, Logger: logger,
		Sticky: o.fileSticky, StickyKeyFile: o.stickyKeyFile, MgtAllow: o.mgtAllow, TrustedProxies: o.trustedProxies,
		ClusterKeyFile: o.clusterKeyFile, AccessLog: o.accessLogger(logger), Engine: o.engine,
		ShareSessions: o.shareSessions && o.axis2 != "" && (o.fileSticky == nil || *o.fileSticky == balancer.StickyLearn)}
	if cfg.ShareSessions {
		cfg.SharedAwait = o.shareAwait
		if o.shareAwait == 0 {
			cfg.SharedAwait = -1 // no wait (front's zero is its default)
		}
	}
	for i := range o.tlsCerts {
		cfg.Certs = append(cfg.Certs, site.CertFile{Cert: o.tlsCerts[i], Key: o.tlsKeys[i]})
	}
	cfg.Keystores = o.keystores
	cfg.BackendCAs, cfg.BackendTruststores, cfg.BackendServerName = o.backendCAs, o.backendTruststores, o.backendServerName
	return cfg
}

// serveFiles runs the configuration-file mode until ctx is done, reloading
// on every value from reload, then drains.
func serveFiles(ctx context.Context, o options, logger *slog.Logger, reload <-chan os.Signal) error {
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	var tlsLn net.Listener
	if o.https != "" {
		if tlsLn, err = net.Listen("tcp", o.https); err != nil {
			ln.Close()
			return err
		}
	}
	ln = listen.Proxy(ln, o.proxyProtocol)
	if tlsLn != nil {
		tlsLn = listen.Proxy(tlsLn, o.proxyProtocol)
	}
	scfg := o.siteConfig(logger)
	if o.axis2 != "" {
		// The well-known members' names, and member host names, resolve
		// as a Carbon node's do: the hosts file, then DNS.
		r, err := carbonlb.SystemResolver(logger)
		if err != nil {
			ln.Close()
			if tlsLn != nil {
				tlsLn.Close()
			}
			return err
		}
		defer r.Close()
		scfg.Resolver = r
	}
	var collector *metrics.Collector // set before Serve calls OnReload
	scfg.OnReload = func(err error) {
		collector.ObserveReload(err)
		notify(logger, "READY=1")
	}
	s, err := site.Start(ctx, scfg, ln, tlsLn)
	if err != nil {
		return err
	}
	f := s.Front()
	collector = o.newCollector(f.Balancer(), f.Member(), s.Certs())
	stopAdmin, err := o.startAdmin(adminParts{lb: f.Balancer(), pools: f.Pools(), member: f.Member(),
		health: f.HealthHandler(), collector: collector}, logger)
	if err != nil {
		s.Close()
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopAdmin(sctx)
	}()
	attrs := []any{"http", ln.Addr().String(), "lbconf", o.lbconf}
	if tlsLn != nil {
		attrs = append(attrs, "https", tlsLn.Addr().String())
	}
	if m := s.Member(); m != nil {
		attrs = append(attrs, "member", m.Addr().String())
	}
	logger.Info("gateway listening", attrs...)
	if o.started != nil {
		o.started(s)
	}
	notify(logger, "READY=1\nSTATUS=serving on "+ln.Addr().String())
	// Relay the reload signals, telling systemd a reload begins (its
	// READY=1 follows in OnReload), and tell it when the drain begins.
	relayed := make(chan os.Signal, 1)
	done, relayDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(relayDone)
		for {
			select {
			case sig := <-reload:
				notify(logger, cli.Reloading())
				select {
				case relayed <- sig:
				case <-done:
					return
				}
			case <-ctx.Done():
				notify(logger, "STOPPING=1")
				return
			case <-done:
				return
			}
		}
	}()
	defer func() {
		close(done)
		<-relayDone
	}()
	return s.Serve(ctx, relayed, o.drain+30*time.Second)
}

// notify sends state to systemd when it runs the gateway (cli.Notify),
// logging a failure.
func notify(logger *slog.Logger, state string) {
	if err := cli.Notify(state); err != nil {
		logger.Warn("gateway: systemd notification", "err", err)
	}
}

// config turns options into a balancer configuration and backends.
func (o options) config(logger *slog.Logger) (balancer.Config, []balancer.Backend) {
	cfg := balancer.DefaultConfig()
	cfg.Logger = logger
	cfg.AccessLog = o.accessLogger(logger)
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
		be := balancer.Backend{ID: "b" + strconv.Itoa(i+1)}
		// "node-a=http://…": a named backend whose name is its route
		// (Tomcat's jvmRoute).
		if name, rest, ok := strings.Cut(u, "="); ok && !strings.Contains(name, "/") {
			be.ID, be.Route, u = name, name, rest
		}
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		be.URL = u
		bes = append(bes, be)
	}
	return cfg, bes
}

// usage is the text of gateway -h.
const usage = `Usage:
  gateway -backends URL,URL [-listen ADDR] [-sticky MODE] [-policy P] [flags]
  gateway -lbconf loadbalancer.conf [-axis2 axis2.xml] [-listen ADDR] [-https ADDR] [flags]
  gateway -check (with either mode's flags)

Modes:
  -backends  one pool of static backends behind one listener (HTTP, or
             HTTPS with -tls-cert/-tls-key or -tls-self-signed)
  -lbconf    a WSO2 Elastic Load Balancer's loadbalancer.conf: its services
             and domains as virtual hosts; with -axis2 the gateway is a
             cluster member whose pools follow the members
  -check     read and validate the configuration of either mode and exit
             (as nginx -t); nothing listens and no cluster is joined

Signals:
  SIGHUP           (-lbconf) re-read the files; a file that does not parse
                   is refused and the running configuration kept
  SIGTERM, SIGINT  drain: /healthz answers 503 for -drain, the gateway
                   leaves the cluster, and requests in flight finish

Under systemd (Type=notify-reload) it sends READY=1 once serving,
RELOADING=1 and READY=1 around each reload, and STOPPING=1 when it drains.

Exit status:
  0  stopped by a signal after a clean drain; -check: the configuration is valid
  1  it failed to start or serve; -check: the configuration is not valid
  2  the command line is wrong
`

func main() {
	os.Exit(exitCode(os.Args[1:], os.Stdout, os.Stderr))
}

// exitCode runs the program and returns its exit status, having said on
// stderr, once, why it failed.
func exitCode(args []string, stdout, stderr io.Writer) int {
	return cli.Exit("gateway", stderr, run(args, stdout, stderr))
}

// run is the program: it parses args and serves until SIGINT or SIGTERM.
func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stdout, stderr)
	if err != nil {
		return err
	}
	logger, err := o.log.Logger(stderr)
	if err != nil {
		return err
	}
	if o.check {
		if err := o.checkConfig(logger); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "gateway: the configuration is valid")
		return nil
	}
	if o.procs > 0 {
		runtime.GOMAXPROCS(o.procs)
	}
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
	if o.lbconf != "" {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		return serveFiles(ctx, o, logger, hup)
	}
	return serve(ctx, o, logger)
}

// checkConfig reads and validates the configuration as serve or
// serveFiles would, without listening (-check).
func (o options) checkConfig(logger *slog.Logger) error {
	if o.lbconf != "" {
		return site.Check(o.siteConfig(logger))
	}
	cfg, bes := o.config(logger)
	var err error
	if _, cfg.TLSClientConfig, err = o.backendTLS(); err != nil {
		return err
	}
	lb, err := balancer.New(cfg)
	if err != nil {
		return err
	}
	defer lb.Close()
	if err := lb.SetBackends(o.pool, bes); err != nil {
		return err
	}
	_, err = o.certStore()
	return err
}

// backendTLS returns the static mode's trust for https backends, whose
// files are checked for changes every 5 seconds (there is no SIGHUP
// reload in this mode).
func (o options) backendTLS() (*balancer.TrustStore, *tls.Config, error) {
	return site.BackendTLS(o.backendCAs, o.backendTruststores, o.backendServerName, 0)
}

// certStore returns the static mode's certificates, nil without HTTPS.
func (o options) certStore() (*balancer.CertStore, error) {
	if len(o.tlsCerts) == 0 && len(o.keystores) == 0 && len(o.selfSigned) == 0 {
		return nil, nil
	}
	store := &balancer.CertStore{}
	for i := range o.tlsCerts {
		if err := store.AddFiles(o.tlsCerts[i], o.tlsKeys[i]); err != nil {
			return nil, err
		}
	}
	for _, k := range o.keystores {
		if err := store.AddKeystore(k.Path, k.PasswordFile); err != nil {
			return nil, err
		}
	}
	if len(o.selfSigned) > 0 {
		c, err := balancer.SelfSigned(o.selfSigned...)
		if err != nil {
			return nil, err
		}
		if err := store.AddCertificate(c); err != nil {
			return nil, err
		}
	}
	return store, nil
}

// accessLogger is the access log -access-log asks for, nil without it.
func (o options) accessLogger(logger *slog.Logger) *slog.Logger {
	if !o.accessLog {
		return nil
	}
	return logger.With("log", "access")
}

// serve runs the gateway until ctx is done.
func serve(ctx context.Context, o options, logger *slog.Logger) error {
	cfg, bes := o.config(logger)
	var err error
	if _, cfg.TLSClientConfig, err = o.backendTLS(); err != nil {
		return err
	}
	lb, err := balancer.New(cfg)
	if err != nil {
		return err
	}
	defer lb.Close()
	pools := front.NewPools(lb)
	if err := pools.SetBackends(o.pool, bes); err != nil {
		return err
	}
	store, err := o.certStore()
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if store != nil {
		tlsConfig = store.TLSConfig()
	}
	srv := front.NewServer(front.ServerConfig{Engine: o.engine, Handler: lb, TLSConfig: tlsConfig, ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, Logger: logger, ErrorLevel: slog.LevelWarn})
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	ln = listen.Proxy(ln, o.proxyProtocol)
	stopAdmin, err := o.startAdmin(adminParts{lb: lb, pools: pools, collector: o.newCollector(lb, nil, store)}, logger)
	if err != nil {
		ln.Close()
		return err
	}
	servers := []*front.Server{srv}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	started := 1
	logger.Info("gateway listening", "addr", ln.Addr().String(), "backends", len(bes), "sticky", o.sticky.String(), "tls", tlsConfig != nil,
		"engine", o.engine.String())
	if o.ready != nil {
		o.ready(ln.Addr().String())
	}
	notify(logger, "READY=1\nSTATUS=serving on "+ln.Addr().String())
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		started--
	}
	logger.Info("gateway shutting down")
	notify(logger, "STOPPING=1")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	for ; started > 0; started-- {
		<-errc
	}
	stopAdmin(sctx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}
