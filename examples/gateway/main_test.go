package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	"github.com/carbonlb/carbonlb/examples/internal/site"
	"github.com/carbonlb/carbonlb/examples/internal/standin"
	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-listen", "127.0.0.1:0", "-backends", "http://127.0.0.1:1,http://127.0.0.1:2", "-sticky", "learn"}, true},
		{[]string{"-backends", "127.0.0.1:1", "-sticky", "insert", "-policy", "p2c"}, true},
		{[]string{"-backends", "http://a", "-sticky", "off", "-tls-self-signed", "localhost"}, true},
		{[]string{"-sticky", "learn"}, false},
		{[]string{"-backends", "http://a", "-sticky", "sometimes"}, false},
		{[]string{"-backends", "http://a", "-policy", "random"}, false},
		{[]string{"-backends", "http://a", "-tls-cert", "a.crt"}, false},
		{[]string{"-backends", "http://a", "extra"}, false},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
}

func TestServeSticky(t *testing.T) {
	for _, tc := range []struct {
		sticky string
		tls    bool
	}{{"learn", false}, {"insert", true}} {
		t.Run(tc.sticky, func(t *testing.T) {
			backs := make([]string, 2)
			for i, name := range []string{"b1", "b2"} {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if _, err := r.Cookie("JSESSIONID"); err != nil {
						w.Header().Set("Set-Cookie", "JSESSIONID="+name+"; Path=/")
					}
					io.WriteString(w, name)
				}))
				defer srv.Close()
				backs[i] = srv.URL
			}
			args := []string{"-listen", "127.0.0.1:0", "-backends", strings.Join(backs, ","), "-sticky", tc.sticky}
			if tc.tls {
				args = append(args, "-tls-self-signed", "localhost,127.0.0.1")
			}
			o, err := parseFlags(args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			addr := make(chan string, 1)
			o.ready = func(a string) { addr <- a }
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
			var a string
			select {
			case a = <-addr:
			case err := <-done:
				t.Fatal(err)
			}
			scheme := "http://"
			tr := &http.Transport{}
			if tc.tls {
				scheme = "https://"
				tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the gateway's own self-signed certificate
			}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			resp, err := c.Get(scheme + a + "/")
			if err != nil {
				t.Fatal(err)
			}
			first, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var cookies []string
			for _, ck := range resp.Cookies() {
				cookies = append(cookies, ck.Name+"="+ck.Value)
			}
			for range 5 {
				req, _ := http.NewRequest("GET", scheme+a+"/", nil)
				req.Header.Set("Cookie", strings.Join(cookies, "; "))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(got) != string(first) {
					t.Fatalf("session moved from %s to %s", first, got)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
}

func TestParseFlagsFileMode(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-lbconf", "lb.conf"}, true},
		{[]string{"-lbconf", "lb.conf", "-axis2", "axis2.xml", "-member-port", "0", "-static", "p=http://127.0.0.1:1", "-https", "127.0.0.1:0", "-tls-self-signed", "a.localhost"}, true},
		{[]string{"-lbconf", "lb.conf", "-backends", "http://a"}, false},
		{[]string{"-lbconf", "lb.conf", "-sticky", "insert", "-sticky-key-file", "sticky.key"}, true},
		{[]string{"-lbconf", "lb.conf", "-sticky", "off", "-mgt-allow", "10.0.0.0/8, 192.168.1.5", "-trusted-proxies", "::1,127.0.0.0/8"}, true},
		{[]string{"-lbconf", "lb.conf", "-axis2", "axis2.xml", "-cluster-key-file", "cluster.key"}, true},
		{[]string{"-lbconf", "lb.conf", "-sticky", "sometimes"}, false},
		{[]string{"-lbconf", "lb.conf", "-sticky-key-file", "sticky.key"}, false},
		{[]string{"-lbconf", "lb.conf", "-sticky", "learn", "-sticky-key-file", "sticky.key"}, false},
		{[]string{"-lbconf", "lb.conf", "-mgt-allow", "10.0.0.0/33"}, false},
		{[]string{"-lbconf", "lb.conf", "-trusted-proxies", "proxy.example"}, false},
		{[]string{"-lbconf", "lb.conf", "-cluster-key-file", "cluster.key"}, false},
		{[]string{"-lbconf", "lb.conf", "-policy", "p2c"}, false},
		{[]string{"-backends", "http://a", "-sticky-key-file", "sticky.key"}, false},
		{[]string{"-backends", "http://a", "-mgt-allow", "127.0.0.1"}, false},
		{[]string{"-backends", "http://a", "-trusted-proxies", "127.0.0.1"}, false},
		{[]string{"-backends", "http://a", "-cluster-key-file", "cluster.key"}, false},
		{[]string{"-lbconf", "lb.conf", "-status", "127.0.0.1:0"}, false},
		{[]string{"-lbconf", "lb.conf", "-tls-self-signed", "a.localhost"}, false},
		{[]string{"-lbconf", "lb.conf", "-drain", "-1s"}, false},
		{[]string{"-backends", "http://a", "-procs", "1"}, true},
		{[]string{"-backends", "http://a", "-procs", "-1"}, false},
		{[]string{"-lbconf", "lb.conf", "-axis2", "axis2.xml", "-share-await", "2s"}, false},
		{[]string{"-backends", "http://a", "-axis2", "axis2.xml"}, false},
		{[]string{"-backends", "http://a", "-https", "127.0.0.1:0"}, false},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
}

// TestFileModeFlagsConfigure checks that the file mode's flags reach the
// site's configuration.
func TestFileModeFlagsConfigure(t *testing.T) {
	insert, off := balancer.StickyInsert, balancer.StickyOff
	for _, tc := range []struct {
		name string
		args []string
		want site.Config
	}{
		{"defaults", nil, site.Config{}},
		{"sticky insert", []string{"-sticky", "insert", "-sticky-key-file", "sticky.key"}, site.Config{Sticky: &insert, StickyKeyFile: "sticky.key"}},
		{"sticky off", []string{"-sticky", "OFF"}, site.Config{Sticky: &off}},
		{"networks", []string{"-mgt-allow", "10.0.0.0/8, 192.168.1.5", "-trusted-proxies", "::1,127.0.0.0/8"}, site.Config{
			MgtAllow:       []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.5/32")},
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("127.0.0.0/8")}}},
		{"cluster key", []string{"-axis2", "axis2.xml", "-cluster-key-file", "cluster.key"}, site.Config{Axis2: "axis2.xml", ClusterKeyFile: "cluster.key", ShareSessions: true, SharedAwait: 50 * time.Millisecond}},
		{"no wait for shared sessions", []string{"-axis2", "axis2.xml", "-share-await", "0s"}, site.Config{Axis2: "axis2.xml", ShareSessions: true, SharedAwait: -1}},
		{"sessions kept apart", []string{"-axis2", "axis2.xml", "-share-sessions=false"}, site.Config{Axis2: "axis2.xml"}},
		{"insert shares no sessions", []string{"-axis2", "axis2.xml", "-sticky", "insert", "-sticky-key-file", "sticky.key"}, site.Config{Axis2: "axis2.xml", Sticky: &insert, StickyKeyFile: "sticky.key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(append([]string{"-lbconf", "lb.conf", "-drain", "0s", "-status-path", ""}, tc.args...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.LBConf = "lb.conf"
			if diff := cmp.Diff(tc.want, o.siteConfig(nil), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("siteConfig mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

const testLBConf = `loadbalancer {
    session_timeout 600000;
}
services {
    esb {
        hosts esb.localhost;
        domains {
            wso2.esb.domain { sub_domain worker; tenant_range *; }
        }
    }
%s}
`

const testMgt = `    mgt {
        hosts mgt.esb.localhost;
        domains {
            wso2.esb.domain { sub_domain mgt; tenant_range *; }
        }
    }
`

// TestFileModeReloadAndDrain runs the configuration-file mode: HTTP and
// HTTPS, SIGHUP reloads under load with no failed request and no session
// moved, and a drain on SIGTERM.
func TestFileModeReloadAndDrain(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var nodes []string
	var closers []*httptest.Server
	for _, name := range []string{"worker-1", "worker-2", "manager"} {
		srv := httptest.NewServer(standin.NewNode(name))
		defer srv.Close()
		nodes, closers = append(nodes, srv.URL), append(closers, srv)
	}
	conf := filepath.Join(t.TempDir(), "loadbalancer.conf")
	writeFile(t, conf, fmt.Sprintf(testLBConf, ""))
	o, err := parseFlags([]string{"-lbconf", conf, "-listen", "127.0.0.1:0", "-https", "127.0.0.1:0",
		"-tls-self-signed", "esb.localhost,mgt.esb.localhost", "-drain", "500ms", "-log-level", "error",
		"-static", fmt.Sprintf("wso2.esb.domain/worker=%s,%s;wso2.esb.domain/mgt=%s", nodes[0], nodes[1], nodes[2])}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *site.Site, 1)
	o.started = func(s *site.Site) { started <- s }
	hup := make(chan os.Signal, 1)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- serveFiles(sctx, o, slog.New(slog.DiscardHandler), hup) }()
	var s *site.Site
	select {
	case s = <-started:
	case err := <-done:
		t.Fatal(err)
	}
	// Each user has its own client, as each browser does, so it keeps one
	// connection; the dials are counted to see that reloads drop none.
	var dials atomic.Int64
	var transports []*http.Transport
	newClient := func() *http.Client {
		var d net.Dialer
		tr := &http.Transport{ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the gateway's own self-signed certificate
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return d.DialContext(ctx, network, addr)
			}}
		transports = append(transports, tr)
		return &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	closeIdle := func() {
		for _, tr := range transports {
			tr.CloseIdleConnections()
		}
	}
	defer closeIdle()
	client := newClient()
	httpURL, httpsURL := "http://"+s.Front().Addr().String(), "https://"+s.Front().TLSAddr().String()
	mgt := &standin.Session{Client: client, URL: httpsURL, Host: "mgt.esb.localhost"}
	if _, err := mgt.Get(ctx, "/"); err == nil {
		t.Fatal("mgt.esb.localhost served before it is configured")
	}
	var users []*standin.Session
	var home []string
	for i := range 6 {
		u := &standin.Session{Client: newClient(), URL: []string{httpURL, httpsURL}[i%2], Host: "esb.localhost"}
		r, err := u.Get(ctx, "/")
		if err != nil {
			t.Fatal(err)
		}
		users, home = append(users, u), append(home, r.Node)
	}

	// SIGHUP under load: the manager's host appears, nothing fails.
	var wg sync.WaitGroup
	quit := make(chan struct{})
	var mu sync.Mutex
	var failures []string
	requests := 0
	progress := make(chan struct{}, 1)
	for i, u := range users {
		wg.Go(func() {
			for n := 0; n < 20_000; n++ {
				select {
				case <-quit:
					return
				default:
				}
				r, err := u.Get(ctx, "/")
				select {
				case progress <- struct{}{}:
				default:
				}
				mu.Lock()
				requests++
				if err != nil {
					failures = append(failures, err.Error())
				} else if r.Node != home[i] {
					failures = append(failures, fmt.Sprintf("user %d moved from %s to %s", i, home[i], r.Node))
				}
				mu.Unlock()
			}
		})
	}
	dialsBefore := dials.Load() // every user has its connection
	for i := range 10 {
		mgtBlock := ""
		if i%2 == 1 || i == 9 {
			mgtBlock = testMgt
		}
		for range len(users) { // requests run between reloads
			select {
			case <-progress:
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
		writeFile(t, conf, fmt.Sprintf(testLBConf, mgtBlock))
		hup <- syscall.SIGHUP
	}
	// The last reload has been taken once the manager's host answers.
	for n := 0; ; n++ {
		if r, err := mgt.Get(ctx, "/"); err == nil && r.Node == "manager" {
			break
		}
		if ctx.Err() != nil || n > 100_000 {
			t.Fatal("the reloaded configuration never served mgt.esb.localhost")
		}
		hup <- syscall.SIGHUP
	}
	close(quit)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if n := dials.Load() - dialsBefore; n > 0 {
		t.Errorf("the users opened %d connections during the reloads: the reloads dropped connections", n)
	}
	t.Logf("%d requests across the reloads", requests)

	// SIGTERM: /healthz turns 503 for the drain, then the gateway exits.
	health := "http://" + s.Front().Addr().String() + "/healthz"
	if code := status(t, client, health); code != http.StatusOK {
		t.Errorf("/healthz before SIGTERM: %d", code)
	}
	stop()
	drained := false // /healthz answered 503 before the listeners closed
	for n := 0; n < 10_000 && !drained; n++ {
		code, err := statusErr(client, health)
		if err != nil {
			break // closed
		}
		drained = code == http.StatusServiceUnavailable
	}
	if !drained {
		t.Error("/healthz never answered 503 during the drain")
	}
	closeIdle()
	if err := <-done; err != nil {
		t.Errorf("serveFiles: %v", err)
	}
	closeIdle()
	for _, c := range closers {
		c.Close()
	}
	leakcheck.Wait(t, before)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func status(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func statusErr(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
