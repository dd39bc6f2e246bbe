package carbonlb_test

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/hosts"
	"github.com/carbonlb/carbonlb/membership"
)

func TestServices(t *testing.T) {
	f, err := os.Open("carbonconf/testdata/loadbalancer/wso2-lb-common-test-loadbalancer.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lbc, err := carbonconf.ReadLBConf(f)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := carbonlb.Services(lbc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := balancer.DefaultConfig()
	cfg.Services = svcs
	lb, err := balancer.New(cfg)
	if err != nil {
		t.Fatalf("the services do not make a valid balancer: %v", err)
	}
	lb.Close()
	first := svcs[0]
	if first.Name != "appserver/wso2.as1.domain/worker" || first.Pool != "wso2.as1.domain/worker" || first.TenantRange != "1-5" {
		t.Errorf("first service %+v", first)
	}
}

func TestServicesInline(t *testing.T) {
	lbc, err := carbonconf.ReadLBConf(strings.NewReader(`loadbalancer { session_timeout 90000; }
services {
    appserver {
        hosts management.appserver.localhost;
        domains {
            wso2.appserver.domain { min_app_instances 1; sub_domain mgt; tenant_range *; }
            wso2.appserver.other { }
        }
    }
}
`))
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := carbonlb.Services(lbc)
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Name, Pool, TenantRange string
		Hosts                   []string
		MinInstances            int
		Mode                    balancer.StickyMode
		TTL                     time.Duration
		Default                 bool
	}
	var got []summary
	for _, s := range svcs {
		got = append(got, summary{s.Name, s.Pool, s.TenantRange, s.Hosts, s.MinInstances, s.Sticky.Mode, s.Sticky.TTL, s.Default})
	}
	hosts := []string{"management.appserver.localhost"}
	want := []summary{
		{"appserver/wso2.appserver.domain/mgt", "wso2.appserver.domain/mgt", "*", hosts, 1, balancer.StickyLearn, 90 * time.Second, false},
		{"appserver/wso2.appserver.other", "wso2.appserver.other", "", hosts, 0, balancer.StickyLearn, 90 * time.Second, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"wso2.appserver.domain/mgt", "wso2.appserver.other"}, carbonlb.Pools(svcs)); diff != "" {
		t.Errorf("Pools (-want +got):\n%s", diff)
	}
}

func TestServicesErrors(t *testing.T) {
	for _, tc := range []struct{ name, conf, want string }{
		{"bad session_timeout", "loadbalancer { session_timeout soon; }\nservices { a { hosts a; domains { d { } } } }\n", "session_timeout"},
		{"negative session_timeout", "loadbalancer { session_timeout -1; }\nservices { a { hosts a; domains { d { } } } }\n", "session_timeout"},
		{"no services", "loadbalancer { }\n", "no service with a domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lbc, err := carbonconf.ReadLBConf(strings.NewReader(tc.conf))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := carbonlb.Services(lbc); err == nil || !strings.HasPrefix(err.Error(), "carbonlb: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Services: %v, want an error about %s", err, tc.want)
			}
		})
	}
}

// carbonHome is the stock product home of the carbonnode example.
const carbonHome = "examples/carbonnode/testdata/carbon-home"

func TestMemberConfig(t *testing.T) {
	n, err := carbonconf.LoadNode(carbonHome)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carbonlb.MemberConfig(n, nil); err == nil || !strings.Contains(err.Error(), "clustering is not enabled") {
		t.Fatalf("stock files: %v", err)
	}
	offset := 3
	if _, err := n.ConfigureManager(carbonconf.Setup{Domain: "wso2.esb.domain", LocalMemberHost: "127.0.0.1", LocalMemberPort: 4100,
		WKA: []string{"127.0.0.1:4200", "127.0.0.[2-3]:4300", "wrk.esb.test:4400"}, HostName: "esb.localhost", MgtHostName: "mgt.esb.localhost", Offset: &offset}); err != nil {
		t.Fatal(err)
	}

	t.Run("mapping", func(t *testing.T) {
		cfg, err := carbonlb.MemberConfig(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			membership.PropBackendServerURL: "https://esb.localhost:9446/services/",
			membership.PropMgtConsoleURL:    "https://esb.localhost:9446/",
			membership.PropHTTPPort:         "9766",
			membership.PropHTTPSPort:        "9446",
			membership.PropHostName:         "esb.localhost",
		}
		if diff := cmp.Diff(want, cfg.Properties); diff != "" {
			t.Errorf("properties (-want +got):\n%s", diff)
		}
		if cfg.Domain != "wso2.esb.domain" || cfg.SubDomain != "mgt" || cfg.Port != 4100 || cfg.AdvertiseAddr != "127.0.0.1" || cfg.BindAddr != "127.0.0.1" ||
			!cmp.Equal(cfg.WKA, []string{"127.0.0.1:4200", "127.0.0.[2-3]:4300", "wrk.esb.test:4400"}) {
			t.Errorf("config %+v", cfg)
		}
		if cfg.Resolve != nil {
			t.Error("Resolve set without a resolver")
		}
	})

	t.Run("jvmRoute", func(t *testing.T) {
		if err := n.Catalina.SetJVMRoute("node-a"); err != nil {
			t.Fatal(err)
		}
		cfg, err := carbonlb.MemberConfig(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Properties[carbonlb.PropRoute]; got != "node-a" {
			t.Errorf("route property %q, want node-a", got)
		}
	})

	t.Run("resolver", func(t *testing.T) {
		r, err := hosts.NewResolver(hosts.ResolverConfig{Static: map[string][]netip.Addr{"wrk.esb.test": {netip.MustParseAddr("10.1.2.3")}}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cfg, err := carbonlb.MemberConfig(n, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cfg.Resolve(context.Background(), "wrk.esb.test")
		if err != nil || !cmp.Equal(got, []netip.Addr{netip.MustParseAddr("10.1.2.3")}, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })) {
			t.Errorf("Resolve(wrk.esb.test) = %v, %v", got, err)
		}
	})

	t.Run("host name as localMemberHost", func(t *testing.T) {
		m, err := carbonconf.LoadNode(carbonHome)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.ConfigureWorker(carbonconf.Setup{Domain: "d", LocalMemberHost: "node1.esb.test", LocalMemberPort: 4200,
			WKA: []string{"127.0.0.1:4100"}, HostName: "esb.localhost"}); err != nil {
			t.Fatal(err)
		}
		r, err := hosts.NewResolver(hosts.ResolverConfig{Static: map[string][]netip.Addr{"node1.esb.test": {netip.MustParseAddr("127.0.0.1")}}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cfg, err := carbonlb.MemberConfig(m, r)
		if err != nil {
			t.Fatalf("MemberConfig: %v", err)
		}
		if cfg.AdvertiseAddr != "node1.esb.test" || cfg.BindAddr != "node1.esb.test" {
			t.Errorf("AdvertiseAddr %q, BindAddr %q; want the host name", cfg.AdvertiseAddr, cfg.BindAddr)
		}
		// membership.Join looks the name up with the resolver.
		cfg.Port, cfg.PortRetries, cfg.WKA = 0, 0, nil
		cfg.Timing = membership.LocalTiming()
		node, err := membership.Join(context.Background(), cfg)
		if err != nil {
			t.Fatalf("Join: %v", err)
		}
		defer node.Close()
		if got := node.Addr().Addr(); got != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("Join advertises %v, want 127.0.0.1", got)
		}
	})
}
