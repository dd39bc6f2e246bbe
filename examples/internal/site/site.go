package site

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/examples/internal/front"
	"github.com/carbonlb/carbonlb/membership"
)

// CertFile is a PEM certificate chain and its key (ssl_certificate and
// ssl_certificate_key), served for the names in the certificate.
type CertFile struct {
	Cert, Key string
}

// KeystoreFile is a Java keystore (JKS or PKCS#12, as Carbon's
// wso2carbon.jks) and the file holding its password
// (balancer.CertStore.AddKeystore).
type KeystoreFile struct {
	Path, PasswordFile string
}

// Config names a site's files and settings.
type Config struct {
	// LBConf is the loadbalancer.conf path: its services' domains become
	// balancer services (see carbonlb.Services). Required. It is read strictly
	// (carbonconf.LoadLBConfStrict): blocks left open at end of file are an
	// error, at Start and at Reload.
	LBConf string
	// Axis2 is an axis2.xml whose clustering section makes the balancer a
	// cluster member whose pools follow the members (the ELB's own
	// axis2.xml). "" means no membership. Re-read by Reload: its
	// well-known members and member properties are applied to the running
	// member; a change of domain, sub-domain, member host, bind address or
	// port is reported and takes effect at the next start.
	Axis2 string
	// MemberPort, when not nil, replaces axis2.xml's localMemberPort (0
	// means any free port).
	MemberPort *int
	// Static lists backends that are not members, "pool=url,url;pool=url"
	// (see StaticBackends). Re-read by Reload. A pool that cluster members
	// fill too gets both: the static backends and the members.
	Static string
	// Certs and SelfSigned are the certificates served by SNI on the TLS
	// listener; SelfSigned names hosts for a generated certificate.
	Certs      []CertFile
	Keystores  []KeystoreFile
	SelfSigned []string
	// BackendCAs (PEM files) and BackendTruststores (Java truststores)
	// hold the certificates trusted for https backends, in place of the
	// system's roots; BackendServerName is the name their certificates
	// must be valid for (see BackendTLS). Re-read by Reload.
	BackendCAs         []string
	BackendTruststores []KeystoreFile
	BackendServerName  string
	// HealthPath, when not empty, turns on active HTTP health checks of
	// every pool on this path.
	HealthPath string
	// TenantsFile, when not empty, names a tenant file ("domain id" lines,
	// balancer.LoadTenants) that resolves the tenants of Carbon's
	// "/t/<domain>/" paths for the services' tenant_range. Re-read by
	// Reload. Empty knows no tenant domain: only "*" services take
	// tenants' requests.
	TenantsFile string
	// StatusPath, when not empty, serves the status page on the listeners.
	StatusPath string
	// DrainDelay is how long Shutdown keeps accepting after /healthz turned
	// 503 (see front.Config.DrainDelay).
	DrainDelay time.Duration
	// Sticky, when not nil, is every service's session affinity. Nil keeps
	// carbonlb.Services' StickyLearn of JSESSIONID.
	Sticky *balancer.StickyMode
	// ShareSessions, with Axis2, shares the sessions learned in
	// StickyLearn with the cluster's other balancer instances that share
	// theirs (front.Config.ShareSessions). Read at Start only.
	ShareSessions bool
	// SharedAwait is front.Config.SharedAwait. Read at Start only.
	SharedAwait time.Duration
	// StickyKeyFile names a file whose bytes, exactly, sign the
	// StickyInsert cookie (balancer.Config.StickyKey, at least 16 bytes).
	// Instances that share it honour each other's cookies. Empty means a
	// random key, which survives neither a restart nor another instance; in
	// StickyInsert mode Start logs a warning. Re-read by Reload.
	StickyKeyFile string
	// MgtAllow, when not empty, is the AllowCIDRs of every service whose
	// pool's sub-domain is mgt (the management console's
	// RemoteAddrValve): other clients get 403.
	MgtAllow []netip.Prefix
	// TrustedProxies are the peers whose X-Forwarded-For is believed and
	// extended (balancer.Config.TrustedProxies). Nil trusts nobody.
	TrustedProxies []netip.Prefix
	// Resolver resolves the host names among axis2.xml's well-known
	// members (a *hosts.Resolver: hosts file, then DNS). Nil means the
	// system resolver.
	Resolver carbonlb.Resolver
	// ClusterKeyFile names a file whose bytes, exactly, encrypt the
	// cluster's traffic (membership.Config.SecretKey: 16, 24 or 32 bytes).
	// It needs Axis2. Empty means no encryption. Read at Start only.
	ClusterKeyFile string
	// Logger receives the site's log. Nil means slog.Default().
	Logger *slog.Logger
	// OnReload, when not nil, is called by Serve after each reload with
	// its outcome (nil: applied), for metrics.
	OnReload func(error)
	// AccessLog, when not nil, receives one record per request at Info
	// (balancer.Config.AccessLog).
	AccessLog *slog.Logger
	// Engine serves the listeners (front.Config.Engine); zero means
	// front.DefaultEngine.
	Engine front.Engine
}

// Site is a running balancer built from files.
type Site struct {
	cfg   Config
	front *front.Front
	certs *balancer.CertStore
	trust *balancer.TrustStore // nil: the system's roots

	mu         sync.Mutex         // serialises Reload
	static     []string           // pools set from Static; guarded by mu
	member     *membership.Config // the running member's configuration; guarded by mu
	clusterKey []byte             // read at Start
}

// load reads loadbalancer.conf and the static backends. loadbalancer.conf is
// read strictly: a file whose blocks are not all closed, such as one caught
// half saved by an editor, is refused rather than applied in part.
func (c Config) load() (balancer.Config, map[string][]balancer.Backend, error) {
	lbc, err := carbonconf.LoadLBConfStrict(c.LBConf)
	if err != nil {
		return balancer.Config{}, nil, err
	}
	services, err := carbonlb.Services(lbc)
	if err != nil {
		return balancer.Config{}, nil, err
	}
	if c.HealthPath != "" {
		for i := range services {
			services[i].Health.Active = balancer.CheckHTTP
			services[i].Health.Path = c.HealthPath
		}
	}
	for i := range services {
		if c.Sticky != nil {
			services[i].Sticky.Mode = *c.Sticky
		}
		if len(c.MgtAllow) > 0 && strings.HasSuffix(services[i].Pool, "/"+membership.SubDomainMgt) {
			services[i].AllowCIDRs = slices.Clone(c.MgtAllow)
		}
	}
	cfg := balancer.DefaultConfig()
	cfg.Services = services
	cfg.Logger = c.Logger
	cfg.AccessLog = c.AccessLog
	if c.TenantsFile != "" {
		tenants, err := balancer.LoadTenants(c.TenantsFile)
		if err != nil {
			return balancer.Config{}, nil, err
		}
		cfg.Tenants = tenants
	}
	cfg.TrustedProxies = slices.Clone(c.TrustedProxies)
	if c.StickyKeyFile != "" {
		if cfg.StickyKey, err = readKey("sticky key", c.StickyKeyFile); err != nil {
			return balancer.Config{}, nil, err
		}
		if len(cfg.StickyKey) < 16 {
			return balancer.Config{}, nil, fmt.Errorf("site: sticky key file %s: %d bytes, want at least 16", c.StickyKeyFile, len(cfg.StickyKey))
		}
	}
	static, err := StaticBackends(c.Static)
	if err != nil {
		return balancer.Config{}, nil, err
	}
	return cfg, static, nil
}

// readKey reads a key file: its bytes, exactly.
func readKey(what, name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("site: %s: %w", what, err)
	}
	return b, nil
}

// clusterKey reads ClusterKeyFile, nil when it is empty.
func (c Config) clusterKey() ([]byte, error) {
	if c.ClusterKeyFile == "" {
		return nil, nil
	}
	if c.Axis2 == "" {
		return nil, errors.New("site: a cluster key file needs an axis2.xml")
	}
	key, err := readKey("cluster key", c.ClusterKeyFile)
	if err != nil {
		return nil, err
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("site: cluster key file %s: %d bytes, want 16, 24 or 32 (AES-128, -192 or -256)", c.ClusterKeyFile, n)
	}
	return key, nil
}

// Check reads and validates every file cfg names, as Start and Reload do,
// without listening or joining the cluster (nginx -t): loadbalancer.conf
// (strictly), the tenant, static, key, certificate and trust files and axis2.xml.
// It returns the first problem, naming its file and, for a parse error,
// line and column.
func Check(cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	bcfg, static, err := cfg.load()
	if err != nil {
		return err
	}
	if _, bcfg.TLSClientConfig, err = BackendTLS(cfg.BackendCAs, cfg.BackendTruststores, cfg.BackendServerName, -1); err != nil {
		return err
	}
	lb, err := balancer.New(bcfg)
	if err != nil {
		return err
	}
	defer lb.Close()
	for pool, bes := range static {
		if err := lb.SetBackends(pool, bes); err != nil {
			return fmt.Errorf("static pool %s: %w", pool, err)
		}
	}
	s := &Site{cfg: cfg}
	if s.clusterKey, err = cfg.clusterKey(); err != nil {
		return err
	}
	if len(cfg.Certs) > 0 || len(cfg.SelfSigned) > 0 {
		if _, err := loadCerts(cfg); err != nil {
			return err
		}
	}
	if cfg.Axis2 != "" {
		if _, err := s.memberConfig(); err != nil {
			return err
		}
	}
	return nil
}

// Start reads the files and serves ln (HTTP) and, when not nil, tlsLn
// (HTTPS, which needs Certs or SelfSigned). On error the listeners are
// closed.
func Start(ctx context.Context, cfg Config, ln, tlsLn net.Listener) (s *Site, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	closeAll := func() {
		ln.Close()
		if tlsLn != nil {
			tlsLn.Close()
		}
	}
	bcfg, static, err := cfg.load()
	if err != nil {
		closeAll()
		return nil, err
	}
	clusterKey, err := cfg.clusterKey()
	if err != nil {
		closeAll()
		return nil, err
	}
	if cfg.StickyKeyFile == "" && cfg.Sticky != nil && *cfg.Sticky == balancer.StickyInsert {
		cfg.Logger.Warn("sticky insert cookies are signed with a random key: they survive neither a restart nor another instance of the balancer; give a sticky key file")
	}
	if cfg.Axis2 != "" && clusterKey == nil {
		cfg.Logger.Warn("the cluster's traffic is not encrypted: anyone who reaches the cluster port can join it and announce backends; give a cluster key file")
	}
	trust, tlsc, err := BackendTLS(cfg.BackendCAs, cfg.BackendTruststores, cfg.BackendServerName, -1) // reloaded on Reload only
	if err != nil {
		closeAll()
		return nil, err
	}
	bcfg.TLSClientConfig = tlsc
	fc := front.Config{Balancer: bcfg, Listener: ln, TLSListener: tlsLn, StatusPath: cfg.StatusPath,
		DrainDelay: cfg.DrainDelay, Logger: cfg.Logger, ShareSessions: cfg.ShareSessions, SharedAwait: cfg.SharedAwait, Engine: cfg.Engine}
	s = &Site{cfg: cfg, trust: trust}
	if tlsLn != nil {
		if s.certs, err = loadCerts(cfg); err != nil {
			closeAll()
			return nil, err
		}
		fc.TLSConfig = s.certs.TLSConfig()
	}
	s.clusterKey = clusterKey
	if cfg.Axis2 != "" {
		if s.member, err = s.memberConfig(); err != nil {
			closeAll()
			return nil, err
		}
		fc.Member = s.member
	}
	if s.front, err = front.Start(ctx, fc); err != nil {
		return nil, err
	}
	if err := s.setStatic(static); err != nil {
		s.front.Close()
		return nil, err
	}
	return s, nil
}

// memberConfig reads axis2.xml into the balancer's member configuration.
func (s *Site) memberConfig() (*membership.Config, error) {
	a, err := carbonconf.LoadAxis2(s.cfg.Axis2)
	if err != nil {
		return nil, err
	}
	mc, err := carbonlb.MemberConfig(&carbonconf.Node{Axis2: a}, s.cfg.Resolver)
	if err != nil {
		return nil, err
	}
	// The balancer is a member, as the Elastic Load Balancer is, but not a
	// backend: it announces no HTTP or HTTPS port, so no balancer (another
	// instance of this one included) makes it a backend of the pool its
	// domain and sub-domain name.
	delete(mc.Properties, membership.PropHTTPPort)
	delete(mc.Properties, membership.PropHTTPSPort)
	if s.cfg.MemberPort != nil {
		mc.Port = *s.cfg.MemberPort
		if mc.Port == 0 {
			mc.PortRetries = 0
		}
	}
	mc.SecretKey = s.clusterKey
	for i, w := range mc.WKA {
		if _, err := membership.ParseWKA(w); err != nil {
			return nil, fmt.Errorf("%s: well-known member %d: %w", s.cfg.Axis2, i+1, err)
		}
	}
	return &mc, nil
}

// fixedAtStart names the member settings that differ between a and b and
// that a running member cannot change.
func fixedAtStart(a, b *membership.Config) []string {
	var diff []string
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"domain", a.Domain, b.Domain}, {"subDomain", a.SubDomain, b.SubDomain},
		{"localMemberHost", a.AdvertiseAddr, b.AdvertiseAddr}, {"localMemberBindAddress", a.BindAddr, b.BindAddr},
		{"localMemberPort", a.Port, b.Port},
	} {
		if f.a != f.b {
			diff = append(diff, f.name)
		}
	}
	return diff
}

func loadCerts(cfg Config) (*balancer.CertStore, error) {
	if len(cfg.Certs) == 0 && len(cfg.Keystores) == 0 && len(cfg.SelfSigned) == 0 {
		return nil, errors.New("site: HTTPS needs a certificate: give certificate files, keystores or self-signed host names")
	}
	store := &balancer.CertStore{CheckInterval: -1} // reloaded on Reload only
	for _, c := range cfg.Certs {
		if err := store.AddFiles(c.Cert, c.Key); err != nil {
			return nil, err
		}
	}
	for _, k := range cfg.Keystores {
		if err := store.AddKeystore(k.Path, k.PasswordFile); err != nil {
			return nil, err
		}
	}
	if len(cfg.SelfSigned) > 0 {
		c, err := balancer.SelfSigned(cfg.SelfSigned...)
		if err != nil {
			return nil, err
		}
		if err := store.AddCertificate(c); err != nil {
			return nil, err
		}
	}
	return store, nil
}

// BackendTLS returns the client TLS configuration for https backends
// that trusts the certificates of the PEM files cas and the Java
// truststores stores, in place of the system's roots (nil without either),
// with the store holding them, which checks its files for changes every
// checkInterval (balancer.TrustStore.CheckInterval). With serverName,
// certificates must be valid for it and it is sent as SNI; without, only
// their chain is verified (balancer.TrustStore.ClientConfig). A
// serverName without trust files verifies it against the system's roots.
// With none of them it returns nil, nil: the defaults.
func BackendTLS(cas []string, stores []KeystoreFile, serverName string, checkInterval time.Duration) (*balancer.TrustStore, *tls.Config, error) {
	if len(cas) == 0 && len(stores) == 0 {
		if serverName == "" {
			return nil, nil, nil
		}
		return nil, &tls.Config{ServerName: serverName}, nil
	}
	ts := &balancer.TrustStore{CheckInterval: checkInterval}
	for _, f := range cas {
		if err := ts.Add(f, ""); err != nil {
			return nil, nil, err
		}
	}
	for _, k := range stores {
		if err := ts.Add(k.Path, k.PasswordFile); err != nil {
			return nil, nil, err
		}
	}
	return ts, ts.ClientConfig(serverName), nil
}

// setStatic sets the static pools and removes the static backends of those
// no longer listed. A pool that cluster members fill too keeps them: the
// two sources are merged (front.Pools).
func (s *Site) setStatic(static map[string][]balancer.Backend) error {
	lb := s.front.Pools() // the operator's drains and weights stay
	for _, pool := range s.static {
		if _, ok := static[pool]; !ok {
			if err := lb.SetStatic(pool, nil); err != nil {
				return err
			}
		}
	}
	for _, pool := range slices.Sorted(maps.Keys(static)) {
		if err := lb.SetStatic(pool, static[pool]); err != nil {
			return fmt.Errorf("static pool %s: %w", pool, err)
		}
	}
	s.static = slices.Sorted(maps.Keys(static))
	return nil
}

// Reload re-reads loadbalancer.conf, the static backends, the sticky key
// file, the certificate and trust files and axis2.xml and applies them atomically:
// requests in flight finish under the old configuration, connections stay
// open, and sessions and health state survive. From axis2.xml it applies the
// well-known members (the member tries new ones at once) and the member
// properties; it logs a warning naming the settings that only a restart
// applies. When a file cannot be read or is not valid, nothing changes.
func (s *Site) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	bcfg, static, err := s.cfg.load()
	if err != nil {
		return err
	}
	// The certificate and trust files are read before anything changes,
	// and applied with the rest.
	commitCerts, commitTrust := func() {}, func() {}
	if s.certs != nil {
		if commitCerts, err = s.certs.PrepareReload(); err != nil {
			return err
		}
	}
	if s.trust != nil {
		if commitTrust, err = s.trust.PrepareReload(); err != nil {
			return err
		}
	}
	var mc *membership.Config
	if s.member != nil {
		if mc, err = s.memberConfig(); err != nil {
			return err
		}
		if !maps.Equal(mc.Properties, s.member.Properties) {
			// First: the one member change that can fail (a metadata size
			// limit), before anything else has changed.
			if err := s.Member().SetProperties(mc.Properties); err != nil {
				return fmt.Errorf("%s: %w", s.cfg.Axis2, err)
			}
		}
	}
	if err := s.front.Update(bcfg); err != nil {
		return err
	}
	if err := s.setStatic(static); err != nil {
		return err
	}
	commitCerts()
	commitTrust()
	if mc != nil {
		if !slices.Equal(mc.WKA, s.member.WKA) {
			if err := s.Member().SetWKA(mc.WKA); err != nil {
				return fmt.Errorf("%s: %w", s.cfg.Axis2, err)
			}
		}
		if diff := fixedAtStart(s.member, mc); len(diff) > 0 {
			s.cfg.Logger.Warn("axis2.xml: changed settings take effect at the next start", "file", s.cfg.Axis2, "settings", diff)
		}
		// The running member keeps what only a restart changes.
		mc.Domain, mc.SubDomain, mc.AdvertiseAddr, mc.BindAddr, mc.Port = s.member.Domain, s.member.SubDomain, s.member.AdvertiseAddr, s.member.BindAddr, s.member.Port
		s.member = mc
	}
	return nil
}

// Front returns the running instance.
func (s *Site) Front() *front.Front { return s.front }

// Certs returns the certificates served on the TLS listener, nil without
// one.
func (s *Site) Certs() *balancer.CertStore { return s.certs }

// Trust returns the certificates trusted for https backends, nil when
// they are the system's roots.
func (s *Site) Trust() *balancer.TrustStore { return s.trust }

// Member returns the site's cluster member, nil without Axis2.
func (s *Site) Member() *membership.Node { return s.front.Member() }

// Shutdown drains and stops the site (see front.Front.Shutdown).
func (s *Site) Shutdown(ctx context.Context) error { return s.front.Shutdown(ctx) }

// Close stops the site at once.
func (s *Site) Close() error { return s.front.Close() }

// Serve reloads the site on every value received from reload, logging the
// outcome, until ctx is done; it then drains and shuts the site down within
// timeout and returns Shutdown's error.
func (s *Site) Serve(ctx context.Context, reload <-chan os.Signal, timeout time.Duration) error {
	for {
		select {
		case <-reload:
			err := s.Reload()
			if err != nil {
				s.cfg.Logger.Error("reload failed; the running configuration is kept", "err", err)
			} else {
				s.cfg.Logger.Info("reloaded", "lbconf", s.cfg.LBConf)
			}
			if s.cfg.OnReload != nil {
				s.cfg.OnReload(err)
			}
		case <-ctx.Done():
			s.cfg.Logger.Info("draining")
			sctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return s.Shutdown(sctx)
		}
	}
}
