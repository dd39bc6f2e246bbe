package membertest_test

import (
	"errors"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/carbonlb/carbonlb/membership/membertest"
)

// A partition cuts two nodes apart: a packet between them is dropped and a
// stream cannot be opened, until the network heals. In a test, bind
// membership nodes with Config.Transport = network.Bind instead of creating
// transports by hand.
func ExampleNetwork_Partition() {
	var network membertest.Network
	a, err := network.NewTransport(netip.MustParseAddrPort("10.0.0.1:4000"))
	if err != nil {
		log.Fatal(err)
	}
	defer a.Shutdown()
	b, err := network.NewTransport(netip.MustParseAddrPort("10.0.0.2:4000"))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Shutdown()

	network.Partition([]netip.AddrPort{a.Addr()}, []netip.AddrPort{b.Addr()})
	a.WriteTo([]byte("ping"), "10.0.0.2:4000")
	_, err = a.DialTimeout("10.0.0.2:4000", time.Second)
	fmt.Println("cut off:", errors.Is(err, membertest.ErrUnreachable), network.Stats())

	network.Heal()
	a.WriteTo([]byte("ping"), "10.0.0.2:4000")
	p := <-b.PacketCh()
	fmt.Printf("healed: %s from %s\n", p.Buf, p.From)
	// Output:
	// cut off: true {1 1}
	// healed: ping from 10.0.0.1:4000
}
