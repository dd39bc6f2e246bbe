package balancer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestUpdateUnderLoad swaps the configuration and the pool while clients
// send requests, and expects zero failed requests.
func TestUpdateUnderLoad(t *testing.T) {
	n1, n2, n3 := newCarbonNode(t, "n1"), newCarbonNode(t, "n2"), newCarbonNode(t, "n3")
	cfg := testConfig(StickyLearn)
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{n1.backend(), n2.backend()})
	front, c := newFront(t, lb)

	const workers, perWorker = 4, 100
	var failed, done atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer done.Add(1)
			cookie := ""
			for i := range perWorker {
				req, _ := http.NewRequest("GET", front.URL+fmt.Sprintf("/w%d/%d", w, i), nil)
				if cookie != "" {
					req.Header.Set("Cookie", cookie)
				}
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
				if ck := cookiePair(resp.Header.Values("Set-Cookie"), "JSESSIONID"); ck != "" {
					cookie = ck
				}
			}
		}()
	}
	policies := []Policy{RoundRobin, LeastConn, PowerOfTwo}
	modes := []StickyMode{StickyLearn, StickyInsert, StickyOff}
	updates := 0
	for i := 0; done.Load() < workers && i < 10000; i++ {
		next := testConfig(modes[i%3])
		next.Services[0].Policy = policies[i%len(policies)]
		next.Services[0].Timeouts.Read = time.Duration(1+i%3) * time.Minute
		if err := lb.Update(next); err != nil {
			t.Fatal(err)
		}
		updates++
		bes := []Backend{n1.backend(), n2.backend()}
		if i%2 == 0 {
			bes = append(bes, n3.backend())
		}
		if err := lb.SetBackends("p", bes); err != nil {
			t.Fatal(err)
		}
		runtime.Gosched()
	}
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d requests failed during %d updates", f, workers*perWorker, updates)
	}
	// A bad config is refused and the old one stays.
	bad := testConfig(StickyLearn)
	bad.Services[0].Hosts = []string{"bad host:80"}
	bad.Services[0].Default = false
	if err := lb.Update(bad); !errors.Is(err, ErrConfig) {
		t.Errorf("bad Update: %v, want ErrConfig", err)
	}
	if code, _, _, _ := get(t, c, front.URL+"/", ""); code != 200 {
		t.Errorf("after a refused Update: %d", code)
	}
}

// TestCloseNoLeak checks that Close ends every goroutine the Balancer
// started: health checkers and an open WebSocket relay.
func TestCloseNoLeak(t *testing.T) {
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			wsEcho(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer back.Close()
	cfg := testConfig(StickyOff)
	cfg.Services[0].Health.Active = CheckHTTP
	cfg.Services[0].Health.Interval = 10 * time.Millisecond
	lb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lb.SetBackends("p", []Backend{{ID: "a", URL: back.URL}, {ID: "b", URL: back.URL + "/"}})
	front := startFront(t, lb)
	defer front.Close()
	// Open a relayed WebSocket and leave it open.
	req, _ := http.NewRequest("GET", front.URL+"/ws", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	ws := resp.Body.(io.ReadWriteCloser)
	defer ws.Close()
	if n := ours(); n == 0 {
		t.Fatal("no balancer goroutines found while running; the check would not see a leak")
	}
	lb.Close()
	// Close waited for the goroutines; give the ones past their last
	// statement a chance to be scheduled out, boundedly.
	for i := 0; ours() != 0; i++ {
		if i == 1000 {
			t.Fatalf("goroutines left after Close:\n%s", stacks())
		}
		runtime.Gosched()
	}
	// The relayed connection was closed by Close.
	if _, err := ws.Read(make([]byte, 1)); err == nil {
		t.Error("WebSocket still open after Close")
	}
	if code := serveN(lb, 1, ""); code[":Service Unavailable"] != 1 {
		t.Errorf("request after Close: %v, want 503", code)
	}
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// ours counts goroutines running balancer code other than this test.
func ours() int {
	n := 0
	for _, g := range strings.Split(stacks(), "\n\n") {
		if strings.Contains(g, "balancer.(*Balancer).runChecks") || strings.Contains(g, "balancer.(*Balancer).serveUpgrade") {
			n++
		}
	}
	return n
}

// TestTLS serves two hosts with two certificates by SNI over HTTP/2,
// routes them to two pools, and reloads a certificate without a restart.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	wrk, mgt := newCarbonNode(t, "worker"), newCarbonNode(t, "manager")
	files := map[string][2]string{}
	pool := x509.NewCertPool()
	write := func(host string) *x509.Certificate {
		c, err := SelfSigned(host)
		if err != nil {
			t.Fatal(err)
		}
		f := [2]string{filepath.Join(dir, host+".crt"), filepath.Join(dir, host+".key")}
		if err := WritePEM(c, f[0], f[1]); err != nil {
			t.Fatal(err)
		}
		files[host] = f
		pool.AddCert(c.Leaf)
		return c.Leaf
	}
	wrkCert, mgtCert := write("esb.example.com"), write("mgt.esb.example.com")
	store := &CertStore{CheckInterval: -1}
	for _, h := range []string{"esb.example.com", "mgt.esb.example.com"} {
		if err := store.AddFiles(files[h][0], files[h][1]); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(StickyInsert)
	cfg.Services = []Service{
		DefaultService("esb", "worker", "esb.example.com"),
		DefaultService("mgt", "mgt", "mgt.esb.example.com"),
	}
	cfg.Services[1].Sticky.Mode = StickyInsert
	lb := mustNew(t, cfg)
	lb.SetBackends("worker", []Backend{wrk.backend()})
	lb.SetBackends("mgt", []Backend{mgt.backend()})
	front := newFrontServer(t, lb, store.TLSConfig(), true)
	defer front.Close()

	call := func(host string) (*http.Response, *x509.Certificate) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", front.URL+"/", nil)
		req.Host = host
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, resp.TLS.PeerCertificates[0]
	}
	for _, tc := range []struct {
		host, backend string
		cert          *x509.Certificate
	}{
		{"esb.example.com", "worker", wrkCert},
		{"mgt.esb.example.com", "manager", mgtCert},
	} {
		resp, cert := call(tc.host)
		if resp.Header.Get("X-Backend") != tc.backend || !cert.Equal(tc.cert) || resp.ProtoMajor != 2 {
			t.Errorf("%s: backend %q, cert %s, proto %s", tc.host, resp.Header.Get("X-Backend"), cert.Subject, resp.Proto)
		}
		if tc.host == "mgt.esb.example.com" && !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), "|"), "; Secure") {
			t.Errorf("insert cookie over TLS lacks Secure: %q", resp.Header.Values("Set-Cookie"))
		}
	}
	// Replace the manager's certificate on disk and reload.
	newMgt := write("mgt.esb.example.com")
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, cert := call("mgt.esb.example.com"); !cert.Equal(newMgt) {
		t.Errorf("after reload: still serving serial %v", cert.SerialNumber)
	}
	if _, cert := call("esb.example.com"); !cert.Equal(wrkCert) {
		t.Errorf("worker certificate changed by the manager's reload")
	}
}

func TestCertStoreWildcard(t *testing.T) {
	var s CertStore
	if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "x"}); err == nil {
		t.Error("empty store returned a certificate")
	}
	a, _ := SelfSigned("default.example.org")
	w, _ := SelfSigned("*.example.com")
	s.AddCertificate(a)
	s.AddCertificate(w)
	for name, want := range map[string]*tls.Certificate{"api.example.com": &w, "API.Example.com.": &w, "example.com": &a, "a.b.example.com": &a, "": &a} {
		got, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil || !got.Leaf.Equal(want.Leaf) {
			t.Errorf("%q: got %v, err %v", name, got.Leaf.Subject, err)
		}
	}
}

// TestUpdateKeepsState: sessions, health state and statistics survive an
// Update that changes the policy, timeouts and hosts.
func TestUpdateKeepsState(t *testing.T) {
	n1, n2 := newCarbonNode(t, "n1"), newCarbonNode(t, "n2")
	lb := mustNew(t, testConfig(StickyLearn))
	lb.SetBackends("p", []Backend{n1.backend(), n2.backend(), {ID: "dead", URL: deadURL(t)}})
	front, c := newFront(t, lb)
	sessions := map[string]string{}
	for len(sessions) < 10 {
		_, be, sc, _ := get(t, c, front.URL+"/", "")
		sessions[cookiePair(sc, "JSESSIONID")] = be
	}
	if s := backendState(lb, "dead"); s != "cooling" {
		t.Fatalf("dead backend is %q, want cooling", s)
	}
	before := lb.Status().Services[0].Requests
	next := testConfig(StickyLearn)
	next.Services[0].Policy = LeastConn
	next.Services[0].Timeouts.Read = time.Minute
	next.Services[0].Hosts = []string{"esb.example.com"}
	if err := lb.Update(next); err != nil {
		t.Fatal(err)
	}
	if s := backendState(lb, "dead"); s != "cooling" {
		t.Errorf("after Update the dead backend is %q, want cooling", s)
	}
	for ck, want := range sessions {
		if _, be, _, _ := get(t, c, front.URL+"/", "", ck); be != want {
			t.Errorf("after Update session %s moved from %s to %s", ck, want, be)
		}
	}
	if got := lb.Status().Services[0].Requests; got != before+10 {
		t.Errorf("requests after Update = %d, want %d (statistics kept)", got, before+10)
	}
}

// TestUpdateRefusesConstructionSettings: Update names each setting fixed at
// New that the new Config changes, and applies nothing; zero values keep
// the running settings.
func TestUpdateRefusesConstructionSettings(t *testing.T) {
	cfg := testConfig(StickyOff)
	cfg.MaxSessions = 5000
	lb := mustNew(t, cfg)
	next := testConfig(StickyLearn)
	next.MaxSessions = 6000
	next.IdleConnTimeout = time.Second
	next.Transport = newFakeNodes("b1")
	err := lb.Update(next)
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Update = %v, want ErrConfig", err)
	}
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if errors.As(e, &ce) {
			fields = append(fields, ce.Field)
		}
	}
	if diff := cmp.Diff([]string{"Transport", "IdleConnTimeout", "MaxSessions"}, fields); diff != "" {
		t.Errorf("fields named (-want +got):\n%s", diff)
	}
	if got := lb.Status().Services[0].Sticky; got != "off" {
		t.Errorf("a refused Update applied the sticky mode: %s", got)
	}
	// Zero values and the running values are accepted.
	next = testConfig(StickyLearn)
	next.MaxSessions = 5000
	if err := lb.Update(next); err != nil {
		t.Fatalf("Update with the running MaxSessions: %v", err)
	}
	if got := lb.Status().Services[0].Sticky; got != "learn" {
		t.Errorf("sticky after Update: %s", got)
	}
}
