package site

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	"github.com/carbonlb/carbonlb/examples/internal/standin"
)

// TestTenantsFile: loadbalancer.conf's tenant ranges route Carbon's
// "/t/<domain>/" requests by the tenant file; a reload applies an edit of
// the file, and a broken file is refused with the running tenants kept.
func TestTenantsFile(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	conf, tenants := filepath.Join(dir, "loadbalancer.conf"), filepath.Join(dir, "tenants")
	write(t, conf, `services {
    appserver {
        hosts as.localhost;
        domains {
            wso2.as1.domain { tenant_range 1-100; }
            wso2.as2.domain { tenant_range 101-200; }
        }
    }
}
`)
	write(t, tenants, "a.com 5\nb.com 150\n")
	static := "wso2.as1.domain=" + node(t, "as1") + ";wso2.as2.domain=" + node(t, "as2")
	s, err := Start(ctx, Config{LBConf: conf, Static: static, TenantsFile: tenants, Logger: slog.New(slog.DiscardHandler)}, listenLoopback(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	nodeFor := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Front().Addr().String()+path, nil)
		req.Host = "as.localhost"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(standin.HeaderNode)
	}
	check := func(when string, want map[string]string) {
		t.Helper()
		for path, node := range want {
			code, got := nodeFor(path)
			if node == "" && code != http.StatusNotFound {
				t.Errorf("%s: %s: %d from %q, want 404", when, path, code, got)
			} else if node != "" && got != node {
				t.Errorf("%s: %s: %d from %q, want %s", when, path, code, got, node)
			}
		}
	}
	check("start", map[string]string{"/t/a.com/x": "as1", "/t/b.com/x": "as2", "/t/c.com/x": ""})
	write(t, tenants, "a.com 150\nb.com 5\nc.com 7\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	check("reload", map[string]string{"/t/a.com/x": "as2", "/t/b.com/x": "as1", "/t/c.com/x": "as1"})
	write(t, tenants, "a.com five\n")
	if err := s.Reload(); err == nil {
		t.Fatal("a broken tenant file was accepted")
	}
	check("refused reload", map[string]string{"/t/a.com/x": "as2", "/t/c.com/x": "as1"})
}
