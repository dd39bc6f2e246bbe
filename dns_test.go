package carbonlb_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/hosts"
	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/membership/membertest"
)

const testZone = "esb.cluster.test"

// serveDNS serves srv over UDP on 127.0.0.1 until the test ends and returns
// its address.
func serveDNS(t *testing.T, srv *hosts.Server) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServePacket(pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-done
	})
	return pc.LocalAddr().String()
}

// query asks server for name's A records over UDP and returns the
// addresses, sorted, or the response code's name when it is not NOERROR.
func query(t *testing.T, server, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	resp, _, err := c.ExchangeContext(t.Context(), m, server)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	if resp.Rcode != dns.RcodeSuccess {
		return []string{dns.RcodeToString[resp.Rcode]}
	}
	var out []string
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

func TestMembershipDNS(t *testing.T) {
	checkLeaks(t)
	srv, err := hosts.NewServer(hosts.ServerConfig{Zone: testZone, TTL: time.Second, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	server := serveDNS(t, srv)
	zone, err := carbonlb.NewZone(srv, carbonlb.ZoneConfig{Zone: testZone, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}

	// Node 1 is a balancer instance that runs the Zone; it is published
	// under lb.<zone> with the others.
	var nw membertest.Network
	lbNode := join(t, testConfig(&nw, 1, ""))
	wka := lbNode.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- zone.Run(ctx, lbNode) }()
	defer func() { cancel(); <-ran }()

	nodes := make(map[int]*membership.Node)
	lbName, mgtName, workerName := "lb."+testZone, "mgt."+testZone, "worker."+testZone
	for _, step := range []struct {
		name string
		do   func(t *testing.T)
		want map[string][]string // name → A records, or the rcode
	}{
		{"the balancer alone", func(*testing.T) {},
			map[string][]string{lbName: {"10.0.0.1"}, mgtName: {"NXDOMAIN"}, workerName: {"NXDOMAIN"}}},
		{"a manager and a worker join", func(t *testing.T) {
			nodes[2] = join(t, testConfig(&nw, 2, "mgt", wka))
			nodes[3] = join(t, testConfig(&nw, 3, "worker", wka))
		}, map[string][]string{lbName: {"10.0.0.1"}, mgtName: {"10.0.0.2"}, workerName: {"10.0.0.3"}}},
		{"a second worker joins", func(t *testing.T) { nodes[4] = join(t, testConfig(&nw, 4, "worker", wka)) },
			map[string][]string{workerName: {"10.0.0.3", "10.0.0.4"}}},
		{"a second balancer joins", func(t *testing.T) { nodes[5] = join(t, testConfig(&nw, 5, "", wka)) },
			map[string][]string{lbName: {"10.0.0.1", "10.0.0.5"}}},
		{"the first worker leaves", func(t *testing.T) { leave(t, nodes[3]) },
			map[string][]string{workerName: {"10.0.0.4"}, mgtName: {"10.0.0.2"}}},
		{"the second worker fails", func(t *testing.T) { nodes[4].Close() },
			map[string][]string{workerName: {"NXDOMAIN"}, mgtName: {"10.0.0.2"}}},
		{"the second balancer fails", func(t *testing.T) { nodes[5].Close() },
			map[string][]string{lbName: {"10.0.0.1"}}},
		{"the worker comes back", func(t *testing.T) { nodes[3] = join(t, testConfig(&nw, 3, "worker", wka)) },
			map[string][]string{workerName: {"10.0.0.3"}}},
	} {
		step.do(t)
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		var names map[string][]netip.Addr
		err := zone.Wait(wctx, func(n map[string][]netip.Addr) bool {
			names = n
			for name, want := range step.want {
				var got []string
				for _, a := range n[name] {
					got = append(got, a.String())
				}
				if want[0] == "NXDOMAIN" {
					want = nil
				}
				if !slices.Equal(got, want) {
					return false
				}
			}
			return true
		})
		wcancel()
		if err != nil {
			t.Fatalf("%s: the zone never held %v (holds %v): %v", step.name, step.want, names, err)
		}
		got := make(map[string][]string)
		for name := range step.want {
			got[name] = query(t, server, name)
		}
		if diff := cmp.Diff(step.want, got); diff != "" {
			t.Errorf("%s: DNS answers (-want +got):\n%s", step.name, diff)
		}
	}
}

// records records the Set and Remove calls of a Zone, and refuses the names
// in refuse.
type records struct {
	calls  []string
	refuse map[string]bool
}

func (r *records) Set(name string, addrs ...netip.Addr) error {
	if r.refuse[name] {
		return hosts.ErrInvalidName
	}
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	r.calls = append(r.calls, "set "+name+" "+strings.Join(s, " "))
	return nil
}

func (r *records) Remove(name string) bool {
	r.calls = append(r.calls, "remove "+name)
	return true
}

func TestZone(t *testing.T) {
	port := httpPort("9763")
	lb1 := member("lb1", "", "10.0.0.1:4000", nil)
	lb1v6 := member("lb1", "", "[fd00::1]:4000", nil)
	w1 := member("w1", "Worker", "10.0.0.2:4000", port)
	w2 := member("w2", "worker", "10.0.0.3:4000", port)
	w2same := member("w2", "worker", "10.0.0.2:4001", port) // a second member on w1's host
	w2down := member("w2", "worker", "10.0.0.3:4000", nil)
	apex := member("a", "", "10.0.0.4:4000", port)
	for _, tc := range []struct {
		name   string
		cfg    carbonlb.ZoneConfig
		events []membership.Event
		want   []string // the calls of the last event
	}{
		{"balancer", carbonlb.ZoneConfig{}, []membership.Event{event(membership.Joined, lb1)}, []string{"set lb.z.test 10.0.0.1"}},
		{"balancers name", carbonlb.ZoneConfig{Balancers: "www.z.test."}, []membership.Event{event(membership.Joined, lb1)}, []string{"set www.z.test 10.0.0.1"}},
		{"IPv6 balancer", carbonlb.ZoneConfig{}, []membership.Event{event(membership.Joined, lb1v6)}, []string{"set lb.z.test fd00::1"}},
		{"sub-domain in lower case", carbonlb.ZoneConfig{}, []membership.Event{event(membership.Joined, w1)}, []string{"set worker.z.test 10.0.0.2"}},
		{"no sub-domain: the apex", carbonlb.ZoneConfig{}, []membership.Event{event(membership.Joined, apex)}, []string{"set z.test 10.0.0.4"}},
		{"one address per host", carbonlb.ZoneConfig{}, []membership.Event{event(membership.Joined, w1), event(membership.Joined, w2same)}, nil},
		{"port withdrawn", carbonlb.ZoneConfig{}, []membership.Event{event(membership.Joined, w1), event(membership.Joined, w2), event(membership.Updated, w2down)},
			[]string{"set worker.z.test 10.0.0.2"}},
		{"unchanged", carbonlb.ZoneConfig{}, []membership.Event{event(membership.Joined, w2), event(membership.Updated, w2)}, nil},
		{"last one leaves", carbonlb.ZoneConfig{}, []membership.Event{event(membership.Joined, w2), event(membership.Left, w2)}, []string{"remove worker.z.test"}},
		{"custom naming", carbonlb.ZoneConfig{Name: func(m membership.Member) string { return m.Name + ".nodes.z.test" }},
			[]membership.Event{event(membership.Joined, w2)}, []string{"set w2.nodes.z.test 10.0.0.3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &records{}
			tc.cfg.Zone, tc.cfg.Logger = "Z.test.", discard
			z, err := carbonlb.NewZone(rec, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tc.events {
				rec.calls = nil
				if err := z.Apply(e); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tc.want, rec.calls); diff != "" {
				t.Errorf("calls of the last event (-want +got):\n%s", diff)
			}
		})
	}
}

func TestZoneRefusedName(t *testing.T) {
	rec := &records{refuse: map[string]bool{"bad_sub.z.test": true}}
	z, err := carbonlb.NewZone(rec, carbonlb.ZoneConfig{Zone: "z.test", Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	bad := member("b", "bad_sub", "10.0.0.9:4000", httpPort("1"))
	if err := z.Apply(event(membership.Joined, bad)); err == nil || !strings.Contains(err.Error(), `carbonlb: DNS name "bad_sub.z.test"`) {
		t.Errorf("Apply of a refused name: %v", err)
	}
	rec.refuse = nil
	rec.calls = nil
	if err := z.Apply(event(membership.Joined, member("l", "", "10.0.0.1:4000", nil))); err != nil {
		t.Fatal(err)
	}
	want := []string{"set bad_sub.z.test 10.0.0.9", "set lb.z.test 10.0.0.1"}
	if diff := cmp.Diff(want, rec.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if err := z.Reset(nil); err != nil {
		t.Fatal(err)
	}
	if got := z.Names(); len(got) != 0 {
		t.Errorf("Names() after Reset(nil) = %v", got)
	}
}

func TestNewZone(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  carbonlb.Records
		cfg  carbonlb.ZoneConfig
		ok   bool
	}{
		{"ok", &records{}, carbonlb.ZoneConfig{Zone: "z.test"}, true},
		{"balancers at the apex", &records{}, carbonlb.ZoneConfig{Zone: "z.test", Balancers: "Z.TEST."}, true},
		{"no zone", &records{}, carbonlb.ZoneConfig{}, false},
		{"balancers outside", &records{}, carbonlb.ZoneConfig{Zone: "z.test", Balancers: "lb.example.com"}, false},
		{"balancers a suffix only", &records{}, carbonlb.ZoneConfig{Zone: "z.test", Balancers: "xz.test"}, false},
		{"nil records", nil, carbonlb.ZoneConfig{Zone: "z.test"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := carbonlb.NewZone(tc.rec, tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("NewZone: %v, want ok %v", err, tc.ok)
			}
		})
	}
}
