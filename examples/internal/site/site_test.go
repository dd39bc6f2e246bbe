package site

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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
	free := 0
	logger := slog.New(slog.DiscardHandler)
	s, err := Start(ctx, Config{LBConf: conf, Axis2: axis2, MemberPort: &free, Static: "wso2.esb.domain/mgt=" + node(t, "manager"),
		Logger: logger}, listenLoopback(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	mc := membership.DefaultLocalConfig("wso2.esb.domain")
	mc.Name, mc.SubDomain, mc.WKA, mc.Logger = "worker-1", membership.SubDomainWorker, []string{s.Member().Addr().String()}, logger
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
