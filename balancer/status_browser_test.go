package balancer

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshot, when set, is where TestStatusPageBrowser writes a PNG of the
// status page once a backend is down (docs/status-page.png):
//
//	go test ./balancer -run TestStatusPageBrowser -screenshot $PWD/docs/status-page.png
var screenshot = flag.String("screenshot", "", "TestStatusPageBrowser: write a PNG of the status page to this file")

// chromium returns the path of a Chromium or Chrome binary: $CHROMIUM, or
// the first of the usual names on $PATH; "" when there is none.
func chromium() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestStatusPageBrowser loads the HTML status page in a real headless
// Chromium: its tables show the live backends, and a backend killed during
// the test shows as down after the page has reloaded itself.
func TestStatusPageBrowser(t *testing.T) {
	bin := chromium()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium binary (looked for $CHROMIUM, chromium, chromium-browser, google-chrome, headless-shell); CI must install Debian's chromium")
		}
		t.Skip("no chromium binary: install Debian's chromium (apt-get install chromium) or set $CHROMIUM to run this test")
	}

	backend := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name+"\n")
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	nodeA, nodeB, nodeC, nodeM := backend("node-a"), backend("node-b"), backend("node-c"), backend("node-m")

	const workers, mgt = "wso2.as.domain/worker", "wso2.as.domain/mgt"
	check := DefaultHealthCheck()
	check.Active, check.Path = CheckHTTP, "/"
	check.Interval, check.Timeout, check.Jitter = 100*time.Millisecond, time.Second, 0
	check.Rise, check.Fall = 1, 1
	cfg := DefaultConfig()
	cfg.Logger = quietLogger()
	cfg.Services = []Service{
		DefaultService("worker", workers, "as.example.com"),
		DefaultService("mgt", mgt, "mgt.as.example.com"),
	}
	cfg.Services[0].Default = true
	cfg.Services[0].MinInstances = 3
	for i := range cfg.Services {
		cfg.Services[i].Health = check
	}
	lb := mustNew(t, cfg)
	if err := lb.SetBackends(workers, []Backend{
		{ID: "node-a", URL: nodeA.URL}, {ID: "node-b", URL: nodeB.URL}, {ID: "node-c", URL: nodeC.URL, Draining: true},
	}); err != nil {
		t.Fatal(err)
	}
	if err := lb.SetBackends(mgt, []Backend{{ID: "node-m", URL: nodeM.URL}}); err != nil {
		t.Fatal(err)
	}
	members := func() []StatusMember {
		return []StatusMember{
			{Name: "node-a", Addr: "10.0.0.11:4000", Pool: workers, State: "alive"},
			{Name: "node-b", Addr: "10.0.0.12:4000", Pool: workers, State: "failed"},
			{Name: "node-c", Addr: "10.0.0.13:4000", Pool: workers, State: "alive"},
			{Name: "node-m", Addr: "10.0.0.10:4000", Pool: mgt, State: "alive"},
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/lb-status", lb.StatusHandlerWith(StatusConfig{Members: members}))
	mux.Handle("/", lb)
	front, c := newFront(t, mux)
	for i := range 40 {
		host := "as.example.com"
		if i%4 == 0 {
			host = "mgt.as.example.com"
		}
		get(t, c, front.URL+"/carbon/", host)
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1400, 900),
		chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		chromedp.Cancel(cctx)
		cancel()
	}()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	const rows = `Array.from(document.querySelectorAll('tr[data-backend]')).map(r => r.dataset.backend + '=' + r.dataset.state).join(' ')`
	if err := chromedp.Do(ctx, chromedp.Navigate(front.URL+"/lb-status?html&refresh=1")); err != nil {
		t.Fatalf("load the status page: %v", err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](rows))
	if err != nil {
		t.Fatal(err)
	}
	if want := "node-m=up node-a=up node-b=up node-c=draining"; got != want {
		t.Errorf("backends on the page: %q, want %q", got, want)
	}
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil || title != "carbonlb status" {
		t.Errorf("title %q, %v", title, err)
	}

	nodeB.Close()
	// The page reloads itself every second; the active check marks node-b
	// down within 100 ms. Read the rows until they say so: an evaluation
	// that meets a reload in progress fails, and is tried again.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for !strings.Contains(got, "node-b=down") {
		select {
		case <-deadline.C:
			t.Fatalf("node-b not shown down within 15 s; the page shows %q", got)
		case <-tick.C:
		}
		if s, err := chromedp.Run(ctx, chromedp.Evaluate[string](rows)); err == nil {
			got = s
		}
	}
	alerts, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#alerts")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"backend node-b is down", "below its minimum of 3", "node-c is draining", "member node-b"} {
		if !strings.Contains(alerts, want) {
			t.Errorf("alerts lack %q: %q", want, alerts)
		}
	}
	if *screenshot != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
