package tomcat

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	"github.com/google/go-cmp/cmp"
)

func TestParsePage(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want Page
		ok   bool
	}{
		{"cookie", `<!DOCTYPE html>
<title>counter</title>
<p id="node">node-a</p>
<p id="count">3</p>
<p id="session">0123ABCD.node-a</p>
<a id="next" href="/counter.jsp">next</a>
`, Page{Node: "node-a", Count: 3, Session: "0123ABCD.node-a", Link: "/counter.jsp"}, true},
		{"rewritten", `<p id="node">node-b</p><p id="count">1</p><p id="session">FF.node-b</p>` +
			`<a id="next" href="/counter.jsp;jsessionid=FF.node-b">next</a>`,
			Page{Node: "node-b", Count: 1, Session: "FF.node-b", Link: "/counter.jsp;jsessionid=FF.node-b"}, true},
		{"no link", `<p id="node">node-b</p><p id="count">1</p><p id="session">FF.node-b</p>`, Page{}, false},
		{"bad count", `<p id="node">a</p><p id="count">x</p><p id="session">FF</p><a id="next" href="/">`, Page{}, false},
		{"missing node", `<p id="count">1</p><p id="session">FF</p><a id="next" href="/">`, Page{}, false},
		{"error page", `<html><body><h1>HTTP Status 500</h1></body></html>`, Page{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePage([]byte(tc.body))
			if (err == nil) != tc.ok {
				t.Fatalf("ParsePage: err %v, want ok=%v", err, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParsePage mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInstance runs one real Tomcat: the instance as configured, the
// counter page by cookie and by link, a kill -9 that leaves no process, and
// a restart on the same port that knows none of the old sessions.
func TestInstance(t *testing.T) {
	leakcheck.Check(t)
	Require(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	in := New(t, "node-t")
	conf, err := os.ReadFile(filepath.Join(in.Dir(), "conf", "server.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`jvmRoute="node-t"`, `address="127.0.0.1"`, `<Server port="-1"`} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("server.xml lacks %s", want)
		}
	}
	start := time.Now()
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Tomcat ready in %v", time.Since(start).Round(time.Millisecond))
	if err := in.Start(ctx); err == nil {
		t.Error("a second Start of a running instance succeeded")
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for _, rewrite := range []bool{false, true} {
		s := &Session{Client: client, URL: in.URL(), Rewrite: rewrite}
		var id string
		for n := 1; n <= 3; n++ {
			p, err := s.Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				id = p.Session
			}
			// Tomcat rewrites the links of a session's first page, not
			// knowing yet whether the client keeps cookies, and of every
			// page of a client that does not.
			want := Page{Node: "node-t", Count: n, Session: id, Link: Path}
			if rewrite || n == 1 {
				want.Link = Path + ";jsessionid=" + id
			}
			if diff := cmp.Diff(want, p); diff != "" {
				t.Errorf("rewrite=%v, request %d: page mismatch (-want +got):\n%s", rewrite, n, diff)
			}
		}
		if !strings.HasSuffix(id, ".node-t") {
			t.Errorf("session id %q lacks the jvmRoute suffix", id)
		}
	}

	old := &Session{Client: client, URL: in.URL()}
	if _, err := old.Get(ctx); err != nil {
		t.Fatal(err)
	}
	pid := in.PID()
	if err := in.Kill(); err != nil {
		t.Fatal(err)
	}
	if in.Running() {
		t.Error("Running after Kill")
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the instance's process group %d after Kill: %v, want ESRCH", pid, err)
	}
	tr.CloseIdleConnections()
	if _, err := old.Get(ctx); err == nil {
		t.Error("a killed instance answered")
	}
	start = time.Now()
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Tomcat restarted in %v", time.Since(start).Round(time.Millisecond))
	p, err := old.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Count != 1 {
		t.Errorf("after a kill -9 and a restart the old session counts %d, want a new session", p.Count)
	}
}
