package wire_test

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/examples/internal/wire"
	"github.com/carbonlb/carbonlb/membership"
)

// A loadbalancer.conf becomes balancer services, one per domain.
func ExampleServices() {
	lbc, err := carbonconf.ReadLBConf(strings.NewReader(`services {
    esb {
        hosts esb.example.com;
        domains {
            wso2.esb.domain { sub_domain worker; tenant_range *; }
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
		panic(err)
	}
	services, err := wire.Services(lbc)
	if err != nil {
		panic(err)
	}
	for _, s := range services {
		fmt.Println(s.Name, s.Hosts, "->", s.Pool, s.Sticky.Mode)
	}
	// Output:
	// esb/wso2.esb.domain/worker [esb.example.com] -> wso2.esb.domain/worker learn
	// mgt/wso2.esb.domain/mgt [mgt.esb.example.com] -> wso2.esb.domain/mgt learn
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

// Membership events become a balancer's pools. In a program the events come
// from Feed.Run(ctx, node) and the pools go to a *balancer.Balancer.
func ExampleFeed() {
	f := wire.NewFeed(printer{}, "http", slog.New(slog.DiscardHandler))
	w1 := membership.Member{Name: "worker-1", Domain: "wso2.esb.domain", SubDomain: "worker",
		Addr: netip.MustParseAddrPort("10.0.0.11:4200"), Properties: map[string]string{membership.PropHTTPPort: "9763"}}
	w2 := w1
	w2.Name, w2.Addr = "worker-2", netip.MustParseAddrPort("10.0.0.12:4300")
	f.Apply(membership.Event{Type: membership.Joined, Member: w1})
	f.Apply(membership.Event{Type: membership.Joined, Member: w2})
	f.Apply(membership.Event{Type: membership.Failed, Member: w1})
	// Output:
	// wso2.esb.domain/worker: worker-1=http://10.0.0.11:9763
	// wso2.esb.domain/worker: worker-1=http://10.0.0.11:9763 worker-2=http://10.0.0.12:9763
	// wso2.esb.domain/worker: worker-2=http://10.0.0.12:9763
}
