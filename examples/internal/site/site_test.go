package site

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	"github.com/carbonlb/carbonlb/examples/internal/standin"
	"github.com/carbonlb/carbonlb/membership"
)

// lbconf is a loadbalancer.conf in the shape of the ELB's: the workers'
// host, and the manager's host when mgt is set.
func lbconf(mgt bool, timeout int) string {
	s := fmt.Sprintf(`loadbalancer {
    instances 1;
    session_timeout %d;
}
services {
    defaults {
        min_app_instances 1;
    }
    esb {
        hosts esb.localhost;
        domains {
            wso2.esb.domain {
                sub_domain worker;
                tenant_range *;
            }
        }
    }
`, timeout)
	if mgt {
		s += `    mgtconsole {
        hosts mgt.esb.localhost;
        domains {
            wso2.esb.domain {
                sub_domain mgt;
                tenant_range *;
            }
        }
    }
`
	}
	return s + "}\n"
}

func write(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func node(t *testing.T, name string) string {
	srv := httptest.NewServer(standin.NewNode(name))
	t.Cleanup(srv.Close)
	return srv.URL
}

func listenLoopback(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestReloadUnderLoad(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "loadbalancer.conf")
	write(t, conf, lbconf(false, 600000))
	w1, w2, m1 := node(t, "worker-1"), node(t, "worker-2"), node(t, "manager")
	cert, key := filepath.Join(dir, "wrk.crt"), filepath.Join(dir, "wrk.key")
	writeCert(t, cert, key, "esb.localhost")

	cfg := Config{
		LBConf:     conf,
		Static:     fmt.Sprintf("wso2.esb.domain/worker=%s,%s;wso2.esb.domain/mgt=%s", w1, w2, m1),
		Certs:      []CertFile{{cert, key}},
		StatusPath: "/lb-status",
		Logger:     slog.New(slog.DiscardHandler),
	}
	s, err := Start(ctx, cfg, listenLoopback(t), listenLoopback(t))
	if err != nil {
		t.Fatal(err)
	}
	reload := make(chan os.Signal, 1)
	served := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() { served <- s.Serve(sctx, reload, 5*time.Second) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	httpURL := "http://" + s.Front().Addr().String()
	httpsURL := "https://" + s.Front().TLSAddr().String()

	// The manager's host is not served yet.
	tr := &http.Transport{MaxIdleConnsPerHost: 16, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the test's own certificate
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if _, err := (&standin.Session{Client: client, URL: httpURL, Host: "mgt.esb.localhost"}).Get(ctx, "/"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("mgt host before the reload: %v, want 404", err)
	}

	// Users over HTTP and HTTPS, pinned to their workers.
	var users []*standin.Session
	var home []string
	for i := range 8 {
		u := &standin.Session{Client: client, URL: httpURL, Host: "esb.localhost"}
		if i%2 == 1 {
			u.URL = httpsURL
		}
		r, err := u.Get(ctx, "/")
		if err != nil {
			t.Fatal(err)
		}
		users, home = append(users, u), append(home, r.Node)
	}

	// Reload many times under load, flipping the manager's service and
	// the session timeout.
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([][]string, len(users))
	counts := make([]int, len(users))
	progress := make(chan struct{}, 1)
	for i, u := range users {
		wg.Go(func() {
			pace := time.NewTicker(2 * time.Millisecond)
			defer pace.Stop()
			for n := 0; n < 50_000; n++ {
				select {
				case <-stopLoad:
					return
				case <-pace.C:
				}
				r, err := u.Get(ctx, "/")
				counts[i]++
				select {
				case progress <- struct{}{}:
				default:
				}
				switch {
				case err != nil:
					errs[i] = append(errs[i], err.Error())
				case r.Node != home[i]:
					errs[i] = append(errs[i], "moved to "+r.Node)
				}
			}
		})
	}
	for i := range 20 {
		for range len(users) { // let requests run between reloads
			select {
			case <-progress:
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
		write(t, conf, lbconf(i%2 == 0, 600000+i))
		if err := s.Reload(); err != nil {
			t.Errorf("reload %d: %v", i, err)
		}
		reload <- os.Interrupt // and through Serve's channel
	}
	write(t, conf, lbconf(true, 600000))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	close(stopLoad)
	wg.Wait()
	total := 0
	for i := range users {
		total += counts[i]
		for _, e := range errs[i] {
			t.Errorf("user %d: %s", i, e)
		}
	}
	t.Logf("%d requests across 21 reloads", total)

	// The reloaded configuration serves the manager's host.
	if r, err := (&standin.Session{Client: client, URL: httpURL, Host: "mgt.esb.localhost"}).Get(ctx, "/"); err != nil || r.Node != "manager" {
		t.Errorf("mgt host after the reload: %+v %v", r, err)
	}

	// A bad file is refused and the running configuration kept.
	write(t, conf, "services { esb { hosts esb.localhost; domains { d { tenant_range 1-x; } } } }\n")
	if err := s.Reload(); err == nil {
		t.Error("reload of a bad file succeeded")
	}
	if _, err := users[0].Get(ctx, "/"); err != nil {
		t.Errorf("after a failed reload: %v", err)
	}

	// A new certificate file is served after a reload, to new connections.
	serial := func() string {
		conn, err := tls.Dial("tcp", s.Front().TLSAddr().String(), &tls.Config{ServerName: "esb.localhost", InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	write(t, conf, lbconf(true, 600000))
	writeCert(t, cert, key, "esb.localhost")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if after := serial(); after == before {
		t.Errorf("certificate serial %s unchanged after the reload", after)
	}
}

func writeCert(t *testing.T, cert, key string, hosts ...string) {
	t.Helper()
	c, err := balancer.SelfSigned(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := balancer.WritePEM(c, cert+".new", key+".new"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cert, key} {
		if err := os.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := x509.ParseCertificate(c.Certificate[0]); err != nil {
		t.Fatal(err)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "loadbalancer.conf")
	write(t, conf, lbconf(false, 1000))
	bad := filepath.Join(dir, "bad.conf")
	write(t, bad, "services {\n  esb {\n    hosts esb.localhost\n  }\n}\n")
	short, key16 := filepath.Join(dir, "short.key"), filepath.Join(dir, "16.key")
	write(t, short, strings.Repeat("k", 15))
	write(t, key16, strings.Repeat("k", 16))
	for _, tc := range []struct {
		name string
		cfg  Config
		tls  bool
		want string
	}{
		{"missing file", Config{LBConf: filepath.Join(dir, "none.conf")}, false, "none.conf"},
		{"syntax", Config{LBConf: bad}, false, "bad.conf:"},
		{"static", Config{LBConf: conf, Static: "=http://127.0.0.1:1"}, false, "want pool=url"},
		{"no certificate", Config{LBConf: conf}, true, "needs a certificate"},
		{"axis2 missing", Config{LBConf: conf, Axis2: filepath.Join(dir, "axis2.xml")}, false, "axis2.xml"},
		{"sticky key missing", Config{LBConf: conf, StickyKeyFile: filepath.Join(dir, "none.key")}, false, "none.key"},
		{"sticky key short", Config{LBConf: conf, StickyKeyFile: short}, false, "15 bytes, want at least 16"},
		{"cluster key without axis2", Config{LBConf: conf, ClusterKeyFile: key16}, false, "needs an axis2.xml"},
		{"cluster key length", Config{LBConf: conf, Axis2: filepath.Join(dir, "axis2.xml"), ClusterKeyFile: short}, false, "15 bytes, want 16, 24 or 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = slog.New(slog.DiscardHandler)
			var tlsLn net.Listener
			if tc.tls {
				tlsLn = listenLoopback(t)
			}
			s, err := Start(t.Context(), tc.cfg, listenLoopback(t), tlsLn)
			if err == nil {
				s.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// memberAxis2 writes to dir an axis2.xml that makes the balancer a member
// of wso2.esb.domain on 127.0.0.1:4000 with no well-known members, and
// returns it and its path.
func memberAxis2(t *testing.T, dir string) (*carbonconf.Axis2, string) {
	t.Helper()
	a, err := carbonconf.LoadAxis2("../../carbonnode/testdata/carbon-home/repository/conf/axis2/axis2.xml")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		a.SetClusteringEnabled(true),
		a.SetClusteringParameter("membershipScheme", "wka"),
		a.SetClusteringParameter("domain", "wso2.esb.domain"),
		a.SetClusteringParameter("localMemberHost", "127.0.0.1"),
		a.SetClusteringParameter("localMemberPort", "4000"),
		a.SetMembers(nil),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	axis2 := filepath.Join(dir, "axis2.xml")
	if err := a.Save(axis2); err != nil {
		t.Fatal(err)
	}
	return a, axis2
}

// TestMembershipPools runs a site whose axis2.xml makes it a cluster member:
// the workers' pool follows a member that joins and leaves, beside a static
// pool for the manager.
func TestMembershipPools(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "loadbalancer.conf")
	write(t, conf, lbconf(true, 600000))
	_, axis2 := memberAxis2(t, dir)
	// The cluster's traffic is encrypted: a member without the key could
	// not join.
	clusterKey := filepath.Join(dir, "cluster.key")
	write(t, clusterKey, "0123456789abcdef0123456789abcdef")
	free := 0
	logger := slog.New(slog.DiscardHandler)
	s, err := Start(ctx, Config{LBConf: conf, Axis2: axis2, MemberPort: &free, Static: "wso2.esb.domain/mgt=" + node(t, "manager"),
		ClusterKeyFile: clusterKey, Logger: logger}, listenLoopback(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	mc := membership.DefaultLocalConfig("wso2.esb.domain")
	mc.Name, mc.SubDomain, mc.WKA, mc.Logger = "worker-1", membership.SubDomainWorker, []string{s.Member().Addr().String()}, logger
	mc.SecretKey = []byte("0123456789abcdef0123456789abcdef")
	w, err := standin.Start(ctx, standin.ServerConfig{Listener: listenLoopback(t), Member: mc})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Kill()
	feed := s.Front().Feed()
	if err := feed.Wait(ctx, func(p map[string][]balancer.Backend) bool { return len(p["wso2.esb.domain/worker"]) == 1 }); err != nil {
		t.Fatalf("%v: members %+v, pools %v", err, s.Member().Members(), feed.Pools())
	}
	// The balancer is a member but no backend: it announces no HTTP or HTTPS
	// port, so another instance of it would not make it a backend.
	for _, m := range s.Member().Members() {
		if m.Name != s.Member().Name() {
			continue
		}
		if _, ok := m.Properties[membership.PropHTTPPort]; ok {
			t.Errorf("the balancer announces an HTTP port: %v", m.Properties)
		}
		if _, ok := m.Properties[membership.PropHTTPSPort]; ok {
			t.Errorf("the balancer announces an HTTPS port: %v", m.Properties)
		}
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "http://" + s.Front().Addr().String()
	for host, want := range map[string]string{"esb.localhost": "worker-1", "mgt.esb.localhost": "manager"} {
		if r, err := (&standin.Session{Client: client, URL: url, Host: host}).Get(ctx, "/"); err != nil || r.Node != want {
			t.Errorf("%s: %+v %v, want %s", host, r, err, want)
		}
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := feed.Wait(ctx, func(p map[string][]balancer.Backend) bool { return len(p["wso2.esb.domain/worker"]) == 0 }); err != nil {
		t.Fatal(err)
	}
}

// TestPerHostCertificates serves a certificate per host, as seed 000's
// wrk.crt and mgt.crt, picked by SNI.
// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestReloadAxis2: a well-known member added to axis2.xml is joined on
// Reload, and its workers become a pool; a changed domain is reported and
// kept for the next start; an axis2.xml with a bad member is refused and
// changes nothing.
func TestReloadAxis2(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "loadbalancer.conf")
	write(t, conf, lbconf(false, 600000))
	a, axis2 := memberAxis2(t, dir)
	var log syncBuffer
	logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	free := 0
	s, err := Start(ctx, Config{LBConf: conf, Axis2: axis2, MemberPort: &free, Logger: logger}, listenLoopback(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// A worker of a cluster the balancer does not know yet.
	mc := membership.DefaultLocalConfig("wso2.esb.domain")
	mc.Name, mc.SubDomain, mc.Logger = "worker-1", membership.SubDomainWorker, slog.New(slog.DiscardHandler)
	w, err := standin.Start(ctx, standin.ServerConfig{Listener: listenLoopback(t), Member: mc})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Kill()
	if n := len(s.Member().Members()); n != 1 {
		t.Fatalf("the balancer lists %d members before the reload, want itself only", n)
	}

	// A bad member: refused, nothing changes.
	if err := a.SetMembers([]string{w.Member().Addr().String()}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetClusteringParameter("domain", "wso2.other.domain"); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(axis2); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(axis2)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "<hostName>127.0.0.1</hostName>", "<hostName>127.0.0.[9-1]</hostName>", 1)
	if bad == string(good) {
		t.Fatal("no member host name to spoil in axis2.xml")
	}
	write(t, axis2, bad)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "127.0.0.[9-1]") {
		t.Fatalf("Reload with a bad member = %v, want an error naming it", err)
	}
	if h := s.Member().Health(); h.WKA != 0 {
		t.Errorf("after a refused reload the member has %d well-known members, want 0", h.WKA)
	}

	// The good file: the worker is joined, the domain change waits.
	write(t, axis2, string(good))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	feed := s.Front().Feed()
	if err := feed.Wait(ctx, func(p map[string][]balancer.Backend) bool { return len(p["wso2.esb.domain/worker"]) == 1 }); err != nil {
		t.Fatalf("%v: members %+v, pools %v", err, s.Member().Members(), feed.Pools())
	}
	if got := s.Member().Local().Domain; got != "wso2.esb.domain" {
		t.Errorf("the running member's domain is %q after the reload, want it kept", got)
	}
	if !strings.Contains(log.String(), "take effect at the next start") || !strings.Contains(log.String(), "domain") {
		t.Errorf("no warning naming the domain change; log:\n%s", log.String())
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	url := "http://" + s.Front().Addr().String()
	if r, err := (&standin.Session{Client: &http.Client{Transport: tr}, URL: url, Host: "esb.localhost"}).Get(ctx, "/"); err != nil || r.Node != "worker-1" {
		t.Errorf("esb.localhost after the reload: %+v %v, want worker-1", r, err)
	}
}

func TestPerHostCertificates(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "loadbalancer.conf")
	write(t, conf, lbconf(true, 600000))
	wrk, mgt := filepath.Join(dir, "wrk"), filepath.Join(dir, "mgt")
	writeCert(t, wrk+".crt", wrk+".key", "esb.localhost")
	writeCert(t, mgt+".crt", mgt+".key", "mgt.esb.localhost")
	s, err := Start(t.Context(), Config{LBConf: conf, Certs: []CertFile{{wrk + ".crt", wrk + ".key"}, {mgt + ".crt", mgt + ".key"}},
		Logger: slog.New(slog.DiscardHandler)}, listenLoopback(t), listenLoopback(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, host := range []string{"esb.localhost", "mgt.esb.localhost"} {
		conn, err := tls.Dial("tcp", s.Front().TLSAddr().String(), &tls.Config{ServerName: host, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("SNI %s: %v", host, err)
		}
	}
}

// TestStickyInsertSharedKey runs two instances in StickyInsert mode with
// the same sticky key file: each honours the other's cookie, so a session
// stays on its backend whichever instance serves it, also after a reload.
func TestStickyInsertSharedKey(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	conf, key := filepath.Join(dir, "loadbalancer.conf"), filepath.Join(dir, "sticky.key")
	write(t, conf, lbconf(false, 600000))
	write(t, key, "a shared key of the two balancer instances")
	insert := balancer.StickyInsert
	cfg := Config{LBConf: conf, Static: fmt.Sprintf("wso2.esb.domain/worker=%s,%s,%s", node(t, "w1"), node(t, "w2"), node(t, "w3")),
		Sticky: &insert, StickyKeyFile: key, Logger: slog.New(slog.DiscardHandler)}
	var sites []*Site
	var urls []string
	for range 2 {
		s, err := Start(ctx, cfg, listenLoopback(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sites = append(sites, s)
		urls = append(urls, "http://"+s.Front().Addr().String())
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	homes := map[string]bool{}
	for i := range 6 {
		u := &standin.Session{Client: client, URL: urls[i%2], Host: "esb.localhost"}
		r, err := u.Get(ctx, "/")
		if err != nil {
			t.Fatal(err)
		}
		home := r.Node
		homes[home] = true
		if i == 3 {
			for _, s := range sites { // re-reads the key: the cookies stay valid
				if err := s.Reload(); err != nil {
					t.Fatal(err)
				}
			}
		}
		for j := range 8 {
			u.URL = urls[(i+j+1)%2]
			if r, err := u.Get(ctx, "/"); err != nil || r.Node != home {
				t.Errorf("user %d, request %d to %s: %+v %v, want %s", i, j, u.URL, r, err, home)
			}
		}
	}
	if len(homes) < 2 {
		t.Errorf("sessions on %v, want them spread over the backends", homes)
	}
}

// TestMgtAllow limits the management console's host to -mgt-allow, also
// after a reload, and leaves the workers' host open.
func TestMgtAllow(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "loadbalancer.conf")
	write(t, conf, lbconf(true, 600000))
	static := fmt.Sprintf("wso2.esb.domain/worker=%s;wso2.esb.domain/mgt=%s", node(t, "worker-1"), node(t, "manager"))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, tc := range []struct {
		name    string
		allow   []netip.Prefix
		wantMgt int
	}{
		{"inside", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}, http.StatusOK},
		{"outside", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, http.StatusForbidden},
		{"no list", nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(ctx, Config{LBConf: conf, Static: static, MgtAllow: tc.allow, Logger: slog.New(slog.DiscardHandler)},
				listenLoopback(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, when := range []string{"start", "reload"} {
				if when == "reload" {
					if err := s.Reload(); err != nil {
						t.Fatal(err)
					}
				}
				for host, want := range map[string]int{"esb.localhost": http.StatusOK, "mgt.esb.localhost": tc.wantMgt} {
					if got := status(ctx, t, client, "http://"+s.Front().Addr().String(), host, nil); got != want {
						t.Errorf("after %s, %s: status %d, want %d", when, host, got, want)
					}
				}
			}
		})
	}
}

// TestTrustedProxies extends the X-Forwarded-For of a trusted peer and
// replaces that of any other.
func TestTrustedProxies(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "loadbalancer.conf")
	write(t, conf, lbconf(false, 600000))
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Forwarded-For", r.Header.Get("X-Forwarded-For"))
	}))
	defer echo.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "192.0.2.7, 127.0.0.1"},
		{"untrusted", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "127.0.0.1"},
		{"nobody", nil, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(ctx, Config{LBConf: conf, Static: "wso2.esb.domain/worker=" + echo.URL, TrustedProxies: tc.trusted,
				Logger: slog.New(slog.DiscardHandler)}, listenLoopback(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, when := range []string{"start", "reload"} {
				if when == "reload" {
					if err := s.Reload(); err != nil {
						t.Fatal(err)
					}
				}
				var seen string
				got := status(ctx, t, client, "http://"+s.Front().Addr().String(), "esb.localhost", func(req *http.Request, resp *http.Response) {
					if req != nil {
						req.Header.Set("X-Forwarded-For", "192.0.2.7")
					} else {
						seen = resp.Header.Get("X-Seen-Forwarded-For")
					}
				})
				if got != http.StatusOK || seen != tc.want {
					t.Errorf("after %s: status %d, X-Forwarded-For %q, want 200 and %q", when, got, seen, tc.want)
				}
			}
		})
	}
}

// status sends GET / for host to url and returns the status; hook, when
// not nil, sees the request before it is sent and then the response.
func status(ctx context.Context, t *testing.T, client *http.Client, url, host string, hook func(*http.Request, *http.Response)) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if hook != nil {
		hook(req, nil)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if hook != nil {
		hook(nil, resp)
	}
	return resp.StatusCode
}

// TestReloadRefusesUnclosedBlocks reloads a loadbalancer.conf caught half
// saved, its last blocks still open: leniently read it would serve the
// manager's host; the reload refuses it with the position of the first
// open block, and the running configuration stays.
func TestReloadRefusesUnclosedBlocks(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "loadbalancer.conf")
	write(t, conf, lbconf(false, 600000))
	w1, m1 := node(t, "worker-1"), node(t, "manager")
	var logs syncBuffer
	s, err := Start(ctx, Config{
		LBConf: conf,
		Static: fmt.Sprintf("wso2.esb.domain/worker=%s;wso2.esb.domain/mgt=%s", w1, m1),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}, listenLoopback(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + s.Front().Addr().String()
	get := func(host string) int { return status(ctx, t, client, url+"/", host, nil) }
	if got := get("mgt.esb.localhost"); got != http.StatusNotFound {
		t.Fatalf("mgt host before the reload: %d, want 404", got)
	}

	// The new file, cut after the manager's sub_domain: services (line 5)
	// and three blocks inside it are still open.
	full := lbconf(true, 700000)
	half := full[:strings.Index(full, "sub_domain mgt;")+len("sub_domain mgt;\n")]
	if lb, err := carbonconf.ReadLBConf(strings.NewReader(half)); err != nil || len(lb.Services) != 2 {
		t.Fatalf("the half file read leniently: %v, %v; want the two services a lenient reload would apply", lb, err)
	}
	write(t, conf, half)
	err = s.Reload()
	var pe *carbonconf.ParseError
	if !errors.As(err, &pe) || !errors.Is(err, carbonconf.ErrUnclosedBlock) || pe.File != conf || pe.Line != 5 || pe.Col != 1 {
		t.Fatalf("Reload = %v, want a *ParseError at %s:5:1 wrapping ErrUnclosedBlock", err, conf)
	}
	if !strings.Contains(err.Error(), conf+":5:1: 4 blocks are not closed") {
		t.Errorf("Reload error %q does not say where and how many", err)
	}
	if got := get("mgt.esb.localhost"); got != http.StatusNotFound {
		t.Errorf("mgt host after the refused reload: %d, want 404: the half file was applied", got)
	}
	if got := get("esb.localhost"); got != http.StatusOK {
		t.Errorf("workers' host after the refused reload: %d, want 200", got)
	}
	if strings.Contains(logs.String(), "not closed") {
		t.Errorf("the refused file was logged as warnings:\n%s", logs.String())
	}

	// The whole file, saved at last, is applied.
	write(t, conf, full)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := get("mgt.esb.localhost"); got != http.StatusOK {
		t.Errorf("mgt host after the reload of the whole file: %d, want 200", got)
	}

	// Start refuses the half file too.
	write(t, conf, half)
	if s2, err := Start(ctx, Config{LBConf: conf, Logger: slog.New(slog.DiscardHandler)}, listenLoopback(t), nil); !errors.Is(err, carbonconf.ErrUnclosedBlock) {
		if s2 != nil {
			s2.Close()
		}
		t.Errorf("Start with the half file = %v, want ErrUnclosedBlock", err)
	}
}

// TestBackendTrustReload: a site trusts the certificates of BackendCAs for
// its https backends; Reload reads a replaced file, after which the
// backend's certificate verifies. When the file no longer loads, Reload
// changes nothing: neither the certificates trusted nor a
// loadbalancer.conf changed with it.
func TestBackendTrustReload(t *testing.T) {
	leakcheck.Check(t)
	back := httptest.NewTLSServer(standin.NewNode("worker"))
	defer back.Close()
	dir := t.TempDir()
	conf, ca := filepath.Join(dir, "loadbalancer.conf"), filepath.Join(dir, "ca.pem")
	write(t, conf, lbconf(false, 600000))
	other, err := balancer.SelfSigned("other.example")
	if err != nil {
		t.Fatal(err)
	}
	certPEM := func(der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	write(t, ca, certPEM(other.Certificate[0]))
	s, err := Start(t.Context(), Config{LBConf: conf, Static: "wso2.esb.domain/worker=" + back.URL, BackendCAs: []string{ca},
		Logger: slog.New(slog.DiscardHandler)}, listenLoopback(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	subjectsNow := func() []string {
		var out []string
		for _, c := range s.Trust().Certificates() {
			out = append(out, c.Subject.CommonName+strings.Join(c.DNSNames, ","))
		}
		return out
	}
	if got := subjectsNow(); len(got) != 1 || !strings.Contains(got[0], "other.example") {
		t.Fatalf("trusted at start: %v", got)
	}

	write(t, ca, certPEM(back.Certificate().Raw))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	u := &standin.Session{Client: client, URL: "http://" + s.Front().Addr().String(), Host: "esb.localhost"}
	if r, err := u.Get(t.Context(), "/"); err != nil || r.Node != "worker" {
		t.Fatalf("after the reload: %+v, %v", r, err)
	}

	// A good loadbalancer.conf with a new service, and a broken CA file:
	// the reload fails and applies neither.
	write(t, conf, lbconf(true, 600000))
	write(t, ca, "-----BEGIN CERTIFICATE-----\nbroken\n")
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), ca) {
		t.Errorf("reloading a broken CA file: %v, want an error naming it", err)
	}
	mgt := &standin.Session{Client: client, URL: "http://" + s.Front().Addr().String(), Host: "mgt.esb.localhost"}
	if _, err := mgt.Get(t.Context(), "/"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("the management host after the failed reload: %v, want 404 (loadbalancer.conf not applied)", err)
	}
	if got := subjectsNow(); len(got) != 1 || !strings.Contains(got[0], "example.com") {
		t.Errorf("trusted after the failed reload: %v, want the backend's certificate still", got)
	}
}
