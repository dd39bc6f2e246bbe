// Package loopback holds what the example programs that run a whole cluster
// on one host (quickstart, ha) share: a membership timing for a busy machine
// and the resolver of their well-known members' names.
package loopback

import (
	"net/netip"
	"time"

	"github.com/carbonlb/carbonlb/hosts"
	"github.com/carbonlb/carbonlb/membership"
)

// Timing is membership.LocalTiming made to tolerate a busy machine
// (end-to-end tests under the race detector, sharing two cores with other
// test binaries) without taking a live member for a failed one: probes
// every second with an 800ms timeout, and a longer suspicion. A crashed
// member is still gone from every list in a few seconds, so a
// demonstration on one host takes seconds.
func Timing() membership.Timing {
	t := membership.LocalTiming()
	t.ProbeInterval = time.Second
	t.ProbeTimeout = 800 * time.Millisecond
	t.SuspicionMult = 4
	t.TCPTimeout = 2 * time.Second
	return t
}

// Resolver returns the resolver of the programs' well-known members: names
// maps each host name to its address, as the host entries the Carbon guides
// add to /etc/hosts on every node would, without touching the system's
// files. Other names are not found. The caller closes it.
func Resolver(names map[string]netip.Addr) (*hosts.Resolver, error) {
	static := make(map[string][]netip.Addr, len(names))
	for name, a := range names {
		static[name] = []netip.Addr{a}
	}
	return hosts.NewResolver(hosts.ResolverConfig{Static: static})
}
