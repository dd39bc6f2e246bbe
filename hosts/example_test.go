package hosts_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/carbonlb/carbonlb/hosts"
	"github.com/miekg/dns"
)

// The seed's host mapping: the management and service host names point at
// the load balancer, the database name at the database server.
func ExampleFile_Set() {
	f, err := hosts.Parse(strings.NewReader("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost # loopback\n"))
	if err != nil {
		log.Fatal(err)
	}
	lb := netip.MustParseAddr("192.168.1.10")
	for _, name := range []string{"mgt.as.example.com", "as.example.com"} {
		if err := f.Set(name, lb); err != nil {
			log.Fatal(err)
		}
	}
	if err := f.Set("carbondb.mysql.example.com", netip.MustParseAddr("192.168.1.20")); err != nil {
		log.Fatal(err)
	}
	f.WriteTo(os.Stdout)
	fmt.Println(f.Lookup("AS.example.com."))
	// Output:
	// 127.0.0.1	localhost
	// ::1	localhost ip6-localhost # loopback
	// 192.168.1.10	mgt.as.example.com as.example.com
	// 192.168.1.20	carbondb.mysql.example.com
	// [192.168.1.10]
}

func ExampleResolver_LookupAddr() {
	dir, err := os.MkdirTemp("", "hosts-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := dir + "/hosts"
	if err := os.WriteFile(path, []byte("10.0.0.5 wka1.cluster.example\n"), 0o644); err != nil {
		log.Fatal(err)
	}

	r, err := hosts.NewResolver(hosts.ResolverConfig{
		Static:    map[string][]netip.Addr{"db.cluster.example": {netip.MustParseAddr("10.0.0.20")}},
		HostsFile: path,
		// Servers: []string{"10.0.0.2:53"}, or ResolvConf: "/etc/resolv.conf"
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	// LookupAddr fits anywhere a func(context.Context, string) ([]netip.Addr, error) is expected.
	var resolve func(context.Context, string) ([]netip.Addr, error) = r.LookupAddr
	for _, host := range []string{"10.0.0.1", "db.cluster.example", "WKA1.cluster.example.", "nope.cluster.example"} {
		addrs, err := resolve(context.Background(), host)
		fmt.Println(host, addrs, err)
	}
	// Output:
	// 10.0.0.1 [10.0.0.1] <nil>
	// db.cluster.example [10.0.0.20] <nil>
	// WKA1.cluster.example. [10.0.0.5] <nil>
	// nope.cluster.example [] hosts: lookup nope.cluster.example: no such host
}

func ExampleServer() {
	s, err := hosts.NewServer(hosts.ServerConfig{Zone: "cluster.example", TTL: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	// Publish the healthy balancer instances under one stable name.
	s.Set("lb.cluster.example", netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11"))

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	defer func() {
		s.Shutdown(context.Background())
		<-done
	}()

	m := new(dns.Msg)
	m.SetQuestion("lb.cluster.example.", dns.TypeA)
	resp, _, err := new(dns.Client).Exchange(m, pc.LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	for _, rr := range resp.Answer {
		fmt.Println(rr.(*dns.A).A)
	}
	m.SetQuestion("gone.cluster.example.", dns.TypeA)
	resp, _, err = new(dns.Client).Exchange(m, pc.LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dns.RcodeToString[resp.Rcode])
	// Output:
	// 10.0.0.10
	// 10.0.0.11
	// NXDOMAIN
}

func ExampleLocalAddr() {
	// In production: hosts.LocalAddr(`{{ GetPrivateIP }}`) or
	// hosts.LocalAddr(`{{ GetInterfaceIP "eth0" }}`).
	a, err := hosts.LocalAddr("10.0.0.5")
	fmt.Println(a, err)
	_, err = hosts.LocalAddr("10.0.0.5 10.0.0.6")
	fmt.Println(err)
	// Output:
	// 10.0.0.5 <nil>
	// hosts: local address "10.0.0.5 10.0.0.6": the template yields 2 addresses (10.0.0.5 10.0.0.6), expected one
}
