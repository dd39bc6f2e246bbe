// Package membertest provides an in-memory network on which whole
// hashicorp/memberlist clusters — and therefore whole
// [github.com/carbonlb/carbonlb/membership] clusters — run inside one process
// without sockets, much as net/http/httptest runs HTTP servers.
//
// A [Network] hands out transports bound to addresses of the caller's
// choosing (10.0.0.1:4000, 10.0.0.2:4000, …; nothing is ever sent to those
// addresses, they only name the nodes). Delivery of packets never blocks the
// sender: a packet for a node that is stopped, cut off by a partition, or
// whose receive queue is full is dropped, as a datagram would be. Streams are
// in-memory pipes; dialling a stopped or cut-off node fails, and stopping a
// node closes its open streams and ends its dials in flight. The network
// can lose a fraction of packets, delay packets and stream dials (a dial
// takes a round trip, as a TCP handshake does), split its nodes into sides
// that cannot reach each other, and heal.
//
// Everything a Network does happens on goroutines, timers and channels it
// creates when it is used, so a cluster built on it runs inside a
// testing/synctest bubble with virtual time: a 50-node failure-detection test
// finishes in milliseconds of wall-clock time.
//
// memberlist's own MockNetwork is not a substitute: it delivers on unbuffered
// channels and its Shutdown does nothing, so a packet to a stopped node blocks
// its sender for ever and failure detection stalls; it has no partitions.
//
// A Network and its transports are safe for concurrent use.
package membertest
