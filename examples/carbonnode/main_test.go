package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/examples/internal/cli/clitest"
	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	"github.com/carbonlb/carbonlb/examples/internal/standin"
	"github.com/carbonlb/carbonlb/membership"
)

const domain = "wso2.esb.domain"

// copyHome copies testdata/carbon-home into a temporary directory.
func copyHome(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("testdata/carbon-home", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/carbon-home", p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// workerHome is a stock product home configured as a worker of seed 001
// whose well-known member is wka.
func workerHome(t *testing.T, wka string) string {
	return workerHomeAt(t, "127.0.0.1", wka)
}

func workerHomeAt(t *testing.T, memberHost, wka string) string {
	t.Helper()
	home := copyHome(t)
	n, err := carbonconf.LoadNode(home)
	if err != nil {
		t.Fatal(err)
	}
	offset := 2
	if _, err := n.ConfigureWorker(carbonconf.Setup{
		Domain: domain, LocalMemberHost: memberHost, LocalMemberPort: 4200,
		WKA: []string{wka}, HostName: "esb.localhost", Offset: &offset,
	}); err != nil {
		t.Fatal(err)
	}
	if err := n.Save(); err != nil {
		t.Fatal(err)
	}
	return home
}

// front is a balancer that is a cluster member and learns its pools.
type front struct {
	lb   *balancer.Balancer
	feed *carbonlb.Feed
	node *membership.Node
	srv  *httptest.Server
}

func startFront(t *testing.T) *front {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	cfg := balancer.DefaultConfig()
	cfg.Logger = logger
	cfg.Services = []balancer.Service{balancer.DefaultService("esb", domain+"/worker", "esb.localhost")}
	cfg.Services[0].Default = true
	lb, err := balancer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mc := membership.DefaultLocalConfig(domain)
	mc.Name, mc.Logger = "balancer", logger
	node, err := membership.Join(t.Context(), mc)
	if err != nil {
		t.Fatal(err)
	}
	feed, err := carbonlb.NewFeed(lb, carbonlb.FeedConfig{Scheme: "http", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	f := &front{lb: lb, node: node, feed: feed, srv: httptest.NewServer(lb)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.feed.Run(ctx, node); close(done) }()
	t.Cleanup(func() {
		f.srv.Close()
		cancel()
		<-done
		node.Close()
		lb.Close()
	})
	return f
}

func (f *front) waitPool(t *testing.T, ctx context.Context, n int) []balancer.Backend {
	t.Helper()
	var got []balancer.Backend
	if err := f.feed.Wait(ctx, func(p map[string][]balancer.Backend) bool {
		got = p[domain+"/worker"]
		return len(got) == n
	}); err != nil {
		t.Fatalf("worker pool never had %d backends (has %v): %v", n, got, err)
	}
	return got
}

// runNode runs the program with args until the returned stop is called.
func runNode(t *testing.T, args ...string) (stdout *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, stdout, io.Discard) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return stdout, stop
}

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

func TestNodeFromProductHome(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	f := startFront(t)
	home := workerHome(t, f.node.Addr().String())
	out, stop := runNode(t, "-home", home, "-member-port", "0", "-http", "127.0.0.1:0", "-log-level", "error")

	bes := f.waitPool(t, ctx, 1)
	b := bes[0]
	if b.Metadata["subDomain"] != "worker" || b.Metadata[membership.PropHostName] != "esb.localhost" {
		t.Errorf("member metadata %v, want subDomain worker and hostName esb.localhost", b.Metadata)
	}
	// ${hostName} and ${httpsPort} are expanded: 9443 plus the offset 2.
	if got, want := b.Metadata[membership.PropBackendServerURL], "https://esb.localhost:9445/services/"; got != want {
		t.Errorf("backendServerURL %q, want %q", got, want)
	}

	// Straight to the node: a Tomcat-style session cookie.
	resp, err := http.Get(b.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	sc := resp.Header.Get("Set-Cookie")
	if !regexp.MustCompile(`^JSESSIONID=[0-9A-F]{32}; Path=/; HttpOnly$`).MatchString(sc) {
		t.Errorf("Set-Cookie %q, want JSESSIONID=<32 upper-case hex>; Path=/; HttpOnly", sc)
	}

	// Through the balancer: sticky.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	u := &standin.Session{Client: &http.Client{Transport: tr}, URL: f.srv.URL, Host: "esb.localhost"}
	first, err := u.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r, err := u.Get(ctx, "/")
		if err != nil || r.Node != first.Node || r.NewSession {
			t.Fatalf("second request: %+v %v, want the session of %+v", r, err, first)
		}
	}
	if !strings.Contains(out.String(), "joined wso2.esb.domain as worker") {
		t.Errorf("stdout %q", out)
	}

	// Stopping it leaves the cluster: the pool empties.
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
	f.waitPool(t, ctx, 0)
}

func TestSidecar(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	f := startFront(t)
	backend := httptest.NewServer(standin.NewNode("python-app"))
	_, stop := runNode(t, "-sidecar", backend.URL, "-domain", domain, "-subdomain", "worker",
		"-member-port", "0", "-wka", f.node.Addr().String(), "-check-interval", "20ms", "-log-level", "error")

	b := f.waitPool(t, ctx, 1)[0]
	if b.URL != backend.URL {
		t.Errorf("backend URL %s, want the sidecar's backend %s", b.URL, backend.URL)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	u := &standin.Session{Client: &http.Client{Transport: tr}, URL: f.srv.URL, Host: "esb.localhost"}
	if r, err := u.Get(ctx, "/"); err != nil || r.Node != "python-app" {
		t.Fatalf("through the balancer: %+v %v", r, err)
	}

	// The backend goes away: the sidecar withdraws it from the pool.
	backend.Close()
	f.waitPool(t, ctx, 0)
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
}

// A localMemberHost that is a host name (seed 004 writes one) is refused
// with its file and line, and -member-host replaces it.
// TestMemberHostName runs a node whose localMemberHost is a host name, as
// in seed 004's axis2.xml: it is looked up in the hosts file (-hosts-file)
// and the node joins under its address; -member-host still overrides it.
func TestMemberHostName(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	f := startFront(t)
	home := workerHomeAt(t, "local.localhost", f.node.Addr().String())
	hostsFile := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hostsFile, []byte("127.0.0.1\tlocal.localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stop := runNode(t, "-home", home, "-hosts-file", hostsFile, "-member-port", "0", "-http", "127.0.0.1:0", "-log-level", "error")
	f.waitPool(t, ctx, 1)
	if err := stop(); err != nil {
		t.Error(err)
	}
	f.waitPool(t, ctx, 0)
	_, stop = runNode(t, "-home", home, "-hosts-file", hostsFile, "-member-host", "127.0.0.1", "-member-port", "0", "-http", "127.0.0.1:0", "-log-level", "error")
	f.waitPool(t, ctx, 1)
	if err := stop(); err != nil {
		t.Error(err)
	}
}

func TestBadInput(t *testing.T) {
	home := copyHome(t) // stock files: clustering is off
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "either -home or -sidecar"},
		{[]string{"-sidecar", "http://127.0.0.1:1"}, "needs -domain"},
		{[]string{"-sidecar", "http://localhost:80", "-domain", "d"}, "want scheme://ip:port"},
		{[]string{"-sidecar", "ftp://127.0.0.1:21", "-domain", "d"}, "want http or https"},
		{[]string{"-home", filepath.Join(home, "nowhere")}, "no Carbon configuration files"},
		{[]string{"-home", home}, "axis2.xml:607: clustering is not enabled"},
		{[]string{"-home", home, "extra"}, "unexpected argument"},
	} {
		err := run(t.Context(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestUsageExitCodes runs carbonnode's command line to its exit status:
// usage errors are said once and exit 2, a node that cannot start exits 1.
func TestUsageExitCodes(t *testing.T) {
	clitest.Usage(t, "carbonnode", run, []clitest.Case{
		{Args: []string{"-h"}, Code: 0, Stdout: "", Stderr: "Exit status:"},
		{Args: []string{"-version"}, Code: 0, Stdout: "carbonnode ", Stderr: ""},
		{Args: []string{"-nope"}, Code: 2, Stdout: "", Stderr: "flag provided but not defined: -nope"},
		{Args: nil, Code: 2, Stdout: "", Stderr: "either -home or -sidecar is required"},
		{Args: []string{"-sidecar", "http://127.0.0.1:1"}, Code: 2, Stdout: "", Stderr: "needs -domain"},
		{Args: []string{"-home", t.TempDir(), "extra"}, Code: 2, Stdout: "", Stderr: `unexpected argument "extra"`},
		{Args: []string{"-home", t.TempDir(), "-log-format", "xml"}, Code: 2, Stdout: "", Stderr: `-log-format "xml"`},
		{Args: []string{"-home", filepath.Join(t.TempDir(), "nowhere")}, Code: 1, Stdout: "", Stderr: "no Carbon configuration files"},
	})
}
