package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	"github.com/carbonlb/carbonlb/examples/internal/site"
	"github.com/carbonlb/carbonlb/examples/internal/tomcat"
)

// shareLBConf sends host localhost to the pool of domain tomcat.domain.
const shareLBConf = `loadbalancer {
    session_timeout 600000;
}
services {
    tomcat {
        hosts localhost;
        domains {
            tomcat.domain {
                tenant_range *;
            }
        }
    }
}
`

// shareAxis2 writes to dir an axis2.xml that makes a gateway a member of
// tomcat.domain on 127.0.0.1 with the given well-known members, and
// returns its path.
func shareAxis2(t *testing.T, dir, name string, wka []string) string {
	t.Helper()
	a, err := carbonconf.LoadAxis2("../carbonnode/testdata/carbon-home/repository/conf/axis2/axis2.xml")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		a.SetClusteringEnabled(true),
		a.SetClusteringParameter("membershipScheme", "wka"),
		a.SetClusteringParameter("domain", "tomcat.domain"),
		a.SetClusteringParameter("localMemberHost", "127.0.0.1"),
		a.SetClusteringParameter("localMemberPort", "4000"),
		a.SetMembers(wka),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	path := filepath.Join(dir, name+"-axis2.xml")
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// startShareGateway runs the gateway's file mode: a cluster member by
// axis2, in learn mode with the learned sessions shared (the default), in
// front of static backends, until the test ends. It returns the site.
func startShareGateway(t *testing.T, ctx context.Context, conf, axis2, key, static string) *site.Site {
	t.Helper()
	o, err := parseFlags([]string{"-lbconf", conf, "-axis2", axis2, "-member-port", "0", "-cluster-key-file", key,
		"-listen", "127.0.0.1:0", "-static", static, "-drain", "0s",
		// The longest wait: under the race detector, with other tests
		// running, the replication lag can pass the default 50 ms.
		"-share-await", "1s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *site.Site, 1)
	o.started = func(s *site.Site) { started <- s }
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- serveFiles(sctx, o, logger, nil) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	select {
	case s := <-started:
		return s
	case err := <-done:
		done <- err
		t.Fatalf("gateway: %v", err)
	}
	return nil
}

// TestTomcatTwoGatewaysShareSessions runs two gateways in learn mode,
// members of one cluster (encrypted) that share what they learn, in front
// of the two Tomcats as backends without routes, so only the shared table
// keeps a session on its node. 20 users by cookie and 20 by links send 20
// requests each, back to back, every request to the other gateway than the
// one before: every session stays on its node with its counter unbroken.
// (A session's second request can reach the other gateway before the
// session did; that gateway waits for it, Sticky.Await.)
func TestTomcatTwoGatewaysShareSessions(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	a, b := tomcatPair(t, ctx)
	dir := t.TempDir()
	conf := filepath.Join(dir, "loadbalancer.conf")
	key := filepath.Join(dir, "cluster.key")
	for path, content := range map[string]string{conf: shareLBConf, key: "0123456789abcdef0123456789abcdef"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	static := "tomcat.domain=" + a.URL() + "," + b.URL()
	g1 := startShareGateway(t, ctx, conf, shareAxis2(t, dir, "g1", nil), key, static)
	g2 := startShareGateway(t, ctx, conf, shareAxis2(t, dir, "g2", []string{g1.Member().Addr().String()}), key, static)
	for _, g := range []*site.Site{g1, g2} {
		select {
		case <-g.Front().Sessions().Ready():
		case <-ctx.Done():
			t.Fatal("a gateway never fetched its sessions")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(g1.Member().MessagePeers()) != 1 || len(g2.Member().MessagePeers()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the gateways never saw each other")
		}
		time.Sleep(10 * time.Millisecond)
	}
	urls := []string{gatewayURL(g1), gatewayURL(g2)}

	client, tr := tomcatClient()
	defer tr.CloseIdleConnections()
	const sessions, requests = 20, 20
	users := tomcatUsers(client, urls[0], sessions)
	pages := make([][]tomcat.Page, len(users))
	errs := make([]error, len(users))
	done := make(chan int, len(users))
	for i, u := range users {
		go func() {
			defer func() { done <- i }()
			for r := range requests {
				u.URL = urls[(i+r)%2] // every request to the other gateway
				p, err := u.Get(ctx)
				if err != nil {
					errs[i] = fmt.Errorf("%s, request %d: %w", userName(i, u), r+1, err)
					return
				}
				pages[i] = append(pages[i], p)
			}
		}()
	}
	for range users {
		<-done
	}
	lost := 0
	for i, u := range users {
		if errs[i] != nil {
			t.Error(errs[i])
			continue
		}
		if err := checkSession(pages[i], 1, u.Rewrite); err != nil {
			lost++
			t.Errorf("%s: %v", userName(i, u), err)
		}
	}
	for _, g := range []*site.Site{g1, g2} {
		st := g.Front().Sessions().Stats()
		t.Logf("%s: sent %d, shed %d, received %d, %d sessions", g.Member().Name(), st.Sent, st.Shed, st.Received, st.Sessions)
	}
	t.Logf("%d users, %d requests each alternating between two gateways: %d of %d sessions lost", len(users), requests, lost, len(users))
}

// gatewayURL is the site's HTTP address by the host name its service
// answers, localhost.
func gatewayURL(s *site.Site) string {
	_, port, _ := net.SplitHostPort(s.Front().Addr().String())
	p, _ := strconv.Atoi(port)
	return fmt.Sprintf("http://localhost:%d", p)
}
