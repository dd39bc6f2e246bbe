package carbonlb_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/hosts"
	"github.com/carbonlb/carbonlb/membership"
)

// A balancer that is itself a cluster member and learns its pools from the
// cluster, as the WSO2 Elastic Load Balancer does. (Compiled, not run: it
// serves on port 80 until it fails.)
func Example() {
	ctx := context.Background()
	cfg := balancer.DefaultConfig() // sticky on JSESSIONID, 5-minute timeouts, passive health
	esb := balancer.DefaultService("esb", "wso2.esb.domain/worker", "esb.example.com")
	esb.Default = true // and any other host, or a request by IP address
	cfg.Services = []balancer.Service{
		balancer.DefaultService("mgt", "wso2.esb.domain/mgt", "mgt.esb.example.com"),
		esb,
	}
	lb, err := balancer.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer lb.Close()

	resolver, err := hosts.NewResolver(hosts.DefaultResolverConfig()) // /etc/hosts, then DNS, cached
	if err != nil {
		log.Fatal(err)
	}
	defer resolver.Close()
	mc := membership.DefaultConfig("wso2.esb.domain") // the balancer is a member, on port 4000
	mc.AdvertiseAddr = "10.0.0.3"
	mc.WKA = []string{"mgr.esb.example.com:4100", "10.0.0.5:4200"} // the manager and a worker
	mc.Resolve = resolver.LookupAddr
	node, err := membership.Join(ctx, mc)
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	feed, err := carbonlb.NewFeed(lb, carbonlb.FeedConfig{}) // members' httpPort, or httpsPort
	if err != nil {
		log.Fatal(err)
	}
	go feed.Run(ctx, node) // a member came, changed or went: its pool follows
	log.Fatal(http.ListenAndServe(":80", lb))
}

// printer shows what a Feed sets.
type printer struct{}

func (printer) SetBackends(pool string, bes []balancer.Backend) error {
	fmt.Print(pool, ":")
	for _, b := range bes {
		fmt.Print(" ", b.ID, "=", b.URL)
	}
	fmt.Println()
	return nil
}

// Membership events become a balancer's pools: a member's domain and
// sub-domain name its pool, its address and port property its URL. In a
// program the events come from Feed.Run(ctx, node) and the pools go to a
// *balancer.Balancer.
func ExampleFeed() {
	feed, err := carbonlb.NewFeed(printer{}, carbonlb.FeedConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	w1 := membership.Member{Name: "worker-1", Domain: "wso2.esb.domain", SubDomain: "worker",
		Addr: netip.MustParseAddrPort("10.0.0.11:4200"), Properties: map[string]string{membership.PropHTTPPort: "9763"}}
	w2 := w1
	w2.Name, w2.Addr = "worker-2", netip.MustParseAddrPort("[fd00::12]:4300")
	mgr := membership.Member{Name: "manager", Domain: "wso2.esb.domain", SubDomain: "mgt",
		Addr: netip.MustParseAddrPort("10.0.0.10:4100"), Properties: map[string]string{membership.PropHTTPSPort: "9443"}}
	elb := membership.Member{Name: "elb", Domain: "wso2.esb.domain", Addr: netip.MustParseAddrPort("10.0.0.3:4000")}
	for _, e := range []membership.Event{
		{Type: membership.Joined, Member: elb}, // a balancer: no port, no pool set
		{Type: membership.Joined, Member: w1},
		{Type: membership.Joined, Member: w2},
		{Type: membership.Joined, Member: mgr},
		{Type: membership.Updated, Member: w2}, // nothing changed: no pool set
		{Type: membership.Failed, Member: w1},
		{Type: membership.Left, Member: mgr}, // the last manager: its pool is emptied
	} {
		if err := feed.Apply(e); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// wso2.esb.domain/worker: worker-1=http://10.0.0.11:9763
	// wso2.esb.domain/worker: worker-1=http://10.0.0.11:9763 worker-2=http://[fd00::12]:9763
	// wso2.esb.domain/mgt: manager=https://10.0.0.10:9443
	// wso2.esb.domain/worker: worker-2=http://[fd00::12]:9763
	// wso2.esb.domain/mgt:
}

// A loadbalancer.conf becomes balancer services, one per domain, whose pools
// are those a Feed sets.
func ExampleServices() {
	lbc, err := carbonconf.ReadLBConf(strings.NewReader(`loadbalancer { session_timeout 600000; }
services {
    esb {
        hosts esb.example.com;
        domains {
            wso2.esb.domain { sub_domain worker; tenant_range *; min_app_instances 2; }
        }
    }
    mgt {
        hosts mgt.esb.example.com;
        domains {
            wso2.esb.domain { sub_domain mgt; tenant_range *; }
        }
    }
}
`))
	if err != nil {
		log.Fatal(err)
	}
	services, err := carbonlb.Services(lbc)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range services {
		fmt.Println(s.Name, s.Hosts, "->", s.Pool, s.Sticky.Mode, s.Sticky.TTL, "min", s.MinInstances)
	}
	fmt.Println(carbonlb.Pools(services))
	// Output:
	// esb/wso2.esb.domain/worker [esb.example.com] -> wso2.esb.domain/worker learn 10m0s min 2
	// mgt/wso2.esb.domain/mgt [mgt.esb.example.com] -> wso2.esb.domain/mgt learn 10m0s min 0
	// [wso2.esb.domain/worker wso2.esb.domain/mgt]
}

// A Carbon node's files become its membership configuration; its
// well-known members given by name resolve through a hosts.Resolver.
func ExampleMemberConfig() {
	node, err := carbonconf.LoadNode("examples/carbonnode/testdata/carbon-home") // a stock product home
	if err != nil {
		log.Fatal(err)
	}
	offset := 2
	if _, err := node.ConfigureWorker(carbonconf.Setup{ // in memory: seed 001's worker
		Domain: "wso2.esb.domain", LocalMemberHost: "10.0.0.11", LocalMemberPort: 4200,
		WKA: []string{"mgr.esb.example.com:4100", "10.0.0.11:4200"}, HostName: "esb.example.com", Offset: &offset,
	}); err != nil {
		log.Fatal(err)
	}
	resolver, err := hosts.NewResolver(hosts.ResolverConfig{ // or hosts.DefaultResolverConfig()
		Static: map[string][]netip.Addr{"mgr.esb.example.com": {netip.MustParseAddr("10.0.0.10")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer resolver.Close()

	cfg, err := carbonlb.MemberConfig(node, resolver)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Domain, cfg.SubDomain, cfg.AdvertiseAddr, cfg.Port, cfg.WKA)
	for _, k := range slices.Sorted(maps.Keys(cfg.Properties)) {
		fmt.Printf("  %s=%s\n", k, cfg.Properties[k])
	}
	addrs, err := cfg.Resolve(context.Background(), "mgr.esb.example.com")
	fmt.Println("mgr.esb.example.com:", addrs, err)
	// Output:
	// wso2.esb.domain worker 10.0.0.11 4200 [mgr.esb.example.com:4100 10.0.0.11:4200]
	//   backendServerURL=https://esb.example.com:9445/services/
	//   hostName=esb.example.com
	//   httpPort=9765
	//   httpsPort=9445
	//   mgtConsoleURL=https://esb.example.com:9445/
	// mgr.esb.example.com: [10.0.0.10] <nil>
}

// recordPrinter shows what a Zone sets.
type recordPrinter struct{}

func (recordPrinter) Set(name string, addrs ...netip.Addr) error {
	fmt.Println("set", name, addrs)
	return nil
}

func (recordPrinter) Remove(name string) bool {
	fmt.Println("remove", name)
	return true
}

// Membership events become DNS names: each sub-domain's name answers with
// its live members, lb.<zone> with the live balancer instances. In a program
// the events come from Zone.Run(ctx, node) and the records go to a
// *hosts.Server.
func ExampleZone() {
	zone, err := carbonlb.NewZone(recordPrinter{}, carbonlb.ZoneConfig{Zone: "esb.cluster.example.com", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	port := map[string]string{membership.PropHTTPPort: "9763"}
	elb := membership.Member{Name: "elb", Domain: "wso2.esb.domain", Addr: netip.MustParseAddrPort("10.0.0.3:4000")}
	mgr := membership.Member{Name: "manager", Domain: "wso2.esb.domain", SubDomain: "mgt", Addr: netip.MustParseAddrPort("10.0.0.10:4100"), Properties: port}
	w1 := membership.Member{Name: "worker-1", Domain: "wso2.esb.domain", SubDomain: "worker", Addr: netip.MustParseAddrPort("10.0.0.11:4200"), Properties: port}
	w2 := w1
	w2.Name, w2.Addr = "worker-2", netip.MustParseAddrPort("10.0.0.12:4300")
	for _, e := range []membership.Event{
		{Type: membership.Joined, Member: elb},
		{Type: membership.Joined, Member: mgr},
		{Type: membership.Joined, Member: w1},
		{Type: membership.Joined, Member: w2},
		{Type: membership.Failed, Member: w1},
		{Type: membership.Left, Member: mgr},
	} {
		if err := zone.Apply(e); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// set lb.esb.cluster.example.com [10.0.0.3]
	// set mgt.esb.cluster.example.com [10.0.0.10]
	// set worker.esb.cluster.example.com [10.0.0.11]
	// set worker.esb.cluster.example.com [10.0.0.11 10.0.0.12]
	// set worker.esb.cluster.example.com [10.0.0.12]
	// remove mgt.esb.cluster.example.com
}

// Two balancer instances of one cluster share what they learn: a session
// the first learns is routed by the second. In a program each table is a
// balancer's Config.Sessions, and the balancer pins and looks up sessions
// as requests come.
func ExampleSessionSync() {
	quiet := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	var syncs []*carbonlb.SessionSync
	var nodes []*membership.Node
	done := make(chan error, 2)
	for i := range 2 {
		s := carbonlb.NewSessionSync(carbonlb.SessionSyncConfig{Logger: quiet})
		mc := membership.DefaultLocalConfig("wso2.as.domain") // loopback, any free port
		mc.Name, mc.Messages, mc.Logger = fmt.Sprintf("lb-%d", i+1), s, quiet
		if i > 0 {
			mc.WKA = []string{nodes[0].Addr().String()}
		}
		node, err := membership.Join(ctx, mc)
		if err != nil {
			log.Fatal(err)
		}
		go func() { done <- s.Run(ctx, node) }()
		syncs, nodes = append(syncs, s), append(nodes, node)
	}
	<-syncs[1].Ready() // lb-2 has fetched lb-1's table: each knows the other

	// lb-1's balancer learns a session from a backend's Set-Cookie.
	syncs[0].Table().Pin("wso2.as.domain/worker", "8F8B53715988EC6E4223C91F1C9FE5CF", "node-a", 30*time.Minute)
	for range 500 { // a few milliseconds on loopback; at most 5 s
		if backend, ok := syncs[1].Table().Lookup("wso2.as.domain/worker", "8F8B53715988EC6E4223C91F1C9FE5CF", 30*time.Minute); ok {
			fmt.Println("lb-2 routes the session to", backend)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	for _, n := range nodes {
		<-done
		n.Close()
	}
	// Output: lb-2 routes the session to node-a
}
