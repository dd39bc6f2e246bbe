package membership_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/membership/membertest"
)

// A manager and two workers join through the manager, here on an in-memory
// network; on real hosts leave Transport nil and set AdvertiseAddr.
func Example() {
	var network membertest.Network
	start := func(ip, subDomain, httpsPort string, wka ...string) *membership.Node {
		cfg := membership.DefaultLocalConfig("wso2.esb.domain")
		cfg.BindAddr, cfg.Port = ip, 4000
		cfg.Transport = network.Bind
		cfg.SubDomain = subDomain
		cfg.WKA = wka
		cfg.Properties = map[string]string{membership.PropHTTPSPort: httpsPort}
		cfg.Logger = slog.New(slog.DiscardHandler)
		n, err := membership.Join(context.Background(), cfg)
		if err != nil {
			log.Fatal(err)
		}
		return n
	}
	mgr := start("10.0.0.1", membership.SubDomainMgt, "9443")
	defer mgr.Close()
	w1 := start("10.0.0.2", membership.SubDomainWorker, "9444", "10.0.0.1:4000")
	defer w1.Close()
	w2 := start("10.0.0.3", membership.SubDomainWorker, "9445", "10.0.0.1:4000")
	defer w2.Close()

	// Wait until the manager has seen all three join.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	joined := 0
	mgr.Watch(ctx, func(e membership.Event) {
		if e.Type == membership.Joined {
			if joined++; joined == 3 {
				cancel()
			}
		}
	})
	for _, m := range mgr.Members() {
		fmt.Println(m.Name, m.Pool(), m.Properties[membership.PropHTTPSPort])
	}
	// Output:
	// 10.0.0.1:4000 wso2.esb.domain/mgt 9443
	// 10.0.0.2:4000 wso2.esb.domain/worker 9444
	// 10.0.0.3:4000 wso2.esb.domain/worker 9445
}

func ExampleParseWKA() {
	addrs, err := membership.ParseWKA("10.0.0.[1-3]:4000")
	fmt.Println(addrs, err)
	_, err = membership.ParseWKA("10.0.0.[5-1]:4000")
	fmt.Println(err)
	// Output:
	// [10.0.0.1:4000 10.0.0.2:4000 10.0.0.3:4000] <nil>
	// membership: well-known address "10.0.0.[5-1]:4000": col 9: range start 5 is greater than its end 1
}

func ExampleMember_Pool() {
	m := membership.Member{Domain: "wso2.esb.domain", SubDomain: membership.SubDomainWorker}
	fmt.Println(m.Pool())
	// Output: wso2.esb.domain/worker
}

// printer is a MessageHandler that passes on the messages it receives and
// offers one piece of state.
type printer struct{ got chan string }

func (p printer) HandleMessage(from string, msg []byte) { p.got <- string(msg) }
func (p printer) State(emit func(piece []byte) bool)    { emit([]byte("sessions: 42")) }
func (p printer) MergeState(from string, piece []byte)  { p.got <- "state " + string(piece) }

// Two message peers on 127.0.0.1: one broadcasts a message to the other,
// which then fetches its state.
func ExampleNode_Broadcast() {
	start := func(h printer, wka ...string) *membership.Node {
		cfg := membership.DefaultLocalConfig("wso2.esb.domain")
		cfg.WKA = wka
		cfg.Messages = h
		cfg.Logger = slog.New(slog.DiscardHandler)
		n, err := membership.Join(context.Background(), cfg)
		if err != nil {
			log.Fatal(err)
		}
		return n
	}
	a := start(printer{got: make(chan string, 1)})
	defer a.Close()
	b := printer{got: make(chan string, 1)}
	bn := start(b, a.Addr().String())
	defer bn.Close()

	// Wait until a counts b among its message peers.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.Watch(ctx, func(e membership.Event) {
		if e.Member.Name == bn.Name() && e.Member.Messages {
			cancel()
		}
	})
	if err := a.Broadcast([]byte("session abc is on backend 2")); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-b.got)

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bn.RequestState(ctx, a.Name()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-b.got)
	// Output:
	// session abc is on backend 2
	// state sessions: 42
}
