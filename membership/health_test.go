package membership_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonlb/carbonlb/membership/membertest"
	"github.com/google/go-cmp/cmp"
)

// TestPortMovedIsLoud: a node that PortRetries moved past a taken port says
// so at Warn, shows both ports in Health, and is named by the port it has
// unless Config.Name names it.
func TestPortMovedIsLoud(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfgName  string
		wantName string
	}{
		{"default name", "", "10.0.0.1:4001"},
		{"given name", "esb1", "esb1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				nw := &membertest.Network{}
				c := newCluster(t)
				defer c.close()
				c.join(1, memConfig(t, nw, 1))
				cfg := memConfig(t, nw, 1, "10.0.0.1:4000") // the same address: 4000 is taken
				cfg.PortRetries = 2
				cfg.Name = tc.cfgName
				rec := &recorder{}
				cfg.Logger = slog.New(rec)
				n := c.join(2, cfg)

				type ports struct{ Addr, Name, Port, ConfiguredPort string }
				h := n.Health()
				got := ports{n.Addr().String(), n.Name(), strconv.Itoa(h.Port), strconv.Itoa(h.ConfiguredPort)}
				want := ports{"10.0.0.1:4001", tc.wantName, "4001", "4000"}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("moved node mismatch (-want +got):\n%s", diff)
				}
				var warned []map[string]string
				for _, r := range rec.records() {
					if a := attrs(r); r.Level == slog.LevelWarn && a["configured"] != "" {
						warned = append(warned, map[string]string{"configured": a["configured"], "port": a["port"]})
					}
				}
				if diff := cmp.Diff([]map[string]string{{"configured": "4000", "port": "4001"}}, warned); diff != "" {
					t.Errorf("Warn lines about the port (-want +got):\n%s", diff)
				}
				if h := c.nodes[1].Health(); h.Port != h.ConfiguredPort {
					t.Errorf("unmoved node: Health() = %+v, want Port equal to ConfiguredPort", h)
				}
			})
		})
	}
}

// TestHealthCountsNamedWKA: well-known members given as host names count in
// Health as the addresses they resolve to; a name that does not resolve
// counts as none, and one that resolves to the node itself is left out.
func TestHealthCountsNamedWKA(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &membertest.Network{}
		c := newCluster(t)
		defer c.close()
		names := map[string][]netip.Addr{
			"mgr.example":  {addr(1).Addr()},
			"wrk.example":  {addr(2).Addr(), addr(5).Addr()}, // nothing runs at .5
			"self.example": {addr(3).Addr()},
		}
		resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
			if a, ok := names[host]; ok {
				return a, nil
			}
			return nil, errors.New("no such host")
		}
		wka := []string{"mgr.example:4000", "wrk.example:4000", "self.example:4000", "gone.example:4000", "10.0.0.1:4000"}
		for i := 1; i <= 3; i++ {
			cfg := memConfig(t, nw, i, wka...)
			cfg.Resolve = resolve
			c.join(i, cfg)
		}
		c.waitUntil(5*time.Second, "3 nodes converge", func() bool { return c.converged(1, 2, 3) })
		type counts struct{ WKA, WKAAlive int }
		h := c.nodes[3].Health()
		// 10.0.0.1 (named and literal, once), .2 and .5; not .3, itself.
		if diff := cmp.Diff(counts{3, 2}, counts{h.WKA, h.WKAAlive}); diff != "" {
			t.Errorf("node 3 Health() WKA counts mismatch (-want +got):\n%s", diff)
		}
		// SetWKA: the rejoin loop, woken at once, resolves the new list.
		if err := c.nodes[3].SetWKA([]string{"wrk.example:4000"}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		h = c.nodes[3].Health()
		if diff := cmp.Diff(counts{2, 1}, counts{h.WKA, h.WKAAlive}); diff != "" {
			t.Errorf("node 3 Health() WKA counts after SetWKA mismatch (-want +got):\n%s", diff)
		}
	})
}
