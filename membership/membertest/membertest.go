package membertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// PacketQueue is the number of packets a transport holds for its node before
// it drops new ones, like a socket's receive buffer.
const PacketQueue = 4096

// streamQueue is the number of accepted streams a transport holds before a
// dial to it fails, like a listen backlog.
const streamQueue = 128

// Network is an in-memory network of memberlist transports. The zero value is
// an empty network with no loss, no latency and no partition, ready to use.
type Network struct {
	mu      sync.Mutex                       // protects the fields below
	nodes   map[netip.AddrPort]*Transport    // bound transports, by address
	side    map[netip.AddrPort]int           // partition side of each address; absent means side 0
	loss    float64                          // fraction of packets dropped
	latency time.Duration                    // delay added to each packet
	dropped atomic.Int64                     // packets dropped, for Stats
	sent    atomic.Int64                     // packets accepted for delivery, for Stats
	bytes   map[netip.AddrPort]*atomic.Int64 // bytes sent per address (packets and streams)
}

// Stats are counters of a Network since it was created.
type Stats struct {
	Packets int64 // packets written by any transport
	Dropped int64 // packets dropped (stopped or cut-off destination, loss, full queue)
}

// Stats returns the network's packet counters.
func (n *Network) Stats() Stats {
	return Stats{Packets: n.sent.Load(), Dropped: n.dropped.Load()}
}

// BytesSent returns the number of bytes the transport bound to addr, and any
// earlier transport bound to the same address, has written as packets and on
// streams.
func (n *Network) BytesSent(addr netip.AddrPort) int64 {
	n.mu.Lock()
	c := n.bytes[addr]
	n.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.Load()
}

// SetLoss makes the network drop each packet with probability p (0 ≤ p ≤ 1).
// Streams are not affected. It returns an error when p is out of range.
func (n *Network) SetLoss(p float64) error {
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("membertest: loss %v is not between 0 and 1", p)
	}
	n.mu.Lock()
	n.loss = p
	n.mu.Unlock()
	return nil
}

// SetLatency delays every packet sent from now on by d, and makes every
// stream dial take a round trip, 2d, as a TCP handshake does; a dial whose
// timeout is shorter fails with a timeout error after the timeout. Data on
// an open stream is not delayed. A negative d is treated as zero.
func (n *Network) SetLatency(d time.Duration) {
	n.mu.Lock()
	n.latency = max(d, 0)
	n.mu.Unlock()
}

// Partition splits the network: the addresses of each listed side can reach
// each other and nothing else; addresses not listed form one more side
// together. Packets across sides are dropped and dials across sides fail;
// streams already open are left alone. A later Partition replaces this one;
// Heal removes it. An address listed on two sides ends up on the last.
func (n *Network) Partition(sides ...[]netip.AddrPort) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.side = make(map[netip.AddrPort]int)
	for i, s := range sides {
		for _, a := range s {
			n.side[a] = i + 1
		}
	}
}

// Heal removes any partition: every node can reach every other again.
func (n *Network) Heal() {
	n.mu.Lock()
	n.side = nil
	n.mu.Unlock()
}

// Bind returns a transport for a node at addr. It has the type of
// membership.Config.Transport, so a membership node can be put on the network
// with cfg.Transport = network.Bind. The error wraps [syscall.EADDRINUSE] when
// another transport is bound to addr and has not shut down, so a caller that
// retries the next port on that error behaves as it would on a real host.
func (n *Network) Bind(addr netip.AddrPort) (memberlist.NodeAwareTransport, error) {
	t, err := n.NewTransport(addr)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// NewTransport is Bind returning the concrete type. addr must be a valid
// address with a non-zero port.
func (n *Network) NewTransport(addr netip.AddrPort) (*Transport, error) {
	if !addr.IsValid() || addr.Port() == 0 {
		return nil, fmt.Errorf("membertest: bind %v: need an address with a non-zero port", addr)
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes == nil {
		n.nodes = make(map[netip.AddrPort]*Transport)
		n.bytes = make(map[netip.AddrPort]*atomic.Int64)
	}
	if _, ok := n.nodes[addr]; ok {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: Addr(addr),
			Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	}
	c := n.bytes[addr]
	if c == nil {
		c = new(atomic.Int64)
		n.bytes[addr] = c
	}
	t := &Transport{
		net:      n,
		addr:     addr,
		bytes:    c,
		packetCh: make(chan *memberlist.Packet, PacketQueue),
		streamCh: make(chan net.Conn, streamQueue),
		conns:    make(map[*conn]struct{}),
		done:     make(chan struct{}),
	}
	n.nodes[addr] = t
	return t, nil
}

// reachable returns the transport at to when from can reach it. n.mu must be
// held.
func (n *Network) reachable(from, to netip.AddrPort) *Transport {
	t := n.nodes[to]
	if t == nil || n.side[from] != n.side[to] {
		return nil
	}
	return t
}

// deliver queues a copy of b for the node at to, or drops it.
func (n *Network) deliver(from, to netip.AddrPort, b []byte) {
	n.sent.Add(1)
	n.mu.Lock()
	t := n.reachable(from, to)
	lost := n.loss > 0 && rand.Float64() < n.loss
	latency := n.latency
	n.mu.Unlock()
	if t == nil || lost {
		n.dropped.Add(1)
		return
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: Addr(from)}
	if latency == 0 {
		n.enqueue(t, p)
		return
	}
	time.AfterFunc(latency, func() {
		n.mu.Lock()
		t := n.reachable(from, to)
		n.mu.Unlock()
		if t == nil {
			n.dropped.Add(1)
			return
		}
		n.enqueue(t, p)
	})
}

// enqueue hands p to t without blocking: a full queue drops it.
func (n *Network) enqueue(t *Transport, p *memberlist.Packet) {
	p.Timestamp = time.Now()
	select {
	case t.packetCh <- p:
	default:
		n.dropped.Add(1)
	}
}

// unbind removes t from the network if it is still the transport at its
// address.
func (n *Network) unbind(t *Transport) {
	n.mu.Lock()
	if n.nodes[t.addr] == t {
		delete(n.nodes, t.addr)
	}
	n.mu.Unlock()
}

// network is the name of the network in net.Addr values.
const network = "membertest"

// Addr is the net.Addr of a node on a Network.
type Addr netip.AddrPort

// Network returns "membertest".
func (a Addr) Network() string { return network }

// String returns the address as host:port.
func (a Addr) String() string { return netip.AddrPort(a).String() }

// ErrUnreachable is returned by a dial to an address where no node is bound,
// whose node has stopped, or which a partition cuts off.
var ErrUnreachable = errors.New("membertest: connection refused")

// Transport is a memberlist.NodeAwareTransport on a Network. It is created by
// Network.Bind or Network.NewTransport and is owned by the memberlist that
// uses it, which calls Shutdown.
type Transport struct {
	net      *Network
	addr     netip.AddrPort
	bytes    *atomic.Int64
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	done chan struct{} // closed by Shutdown

	mu      sync.Mutex         // protects conns and stopped
	conns   map[*conn]struct{} // open stream ends owned by this node
	stopped bool
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Addr returns the address the transport is bound to.
func (t *Transport) Addr() netip.AddrPort { return t.addr }

// FinalAdvertiseAddr returns ip and port when ip is set, otherwise the bound
// address.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip == "" {
		return t.addr.Addr().AsSlice(), int(t.addr.Port()), nil
	}
	a := net.ParseIP(ip)
	if a == nil {
		return nil, 0, fmt.Errorf("membertest: advertise address %q is not an IP address", ip)
	}
	if port == 0 {
		port = int(t.addr.Port())
	}
	return a, port, nil
}

// WriteTo sends a packet to addr (host:port). It never blocks and reports no
// error for a packet that is dropped, as UDP does not.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress is WriteTo for a memberlist.Address.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	to, err := netip.ParseAddrPort(a.Addr)
	if err != nil {
		return time.Time{}, fmt.Errorf("membertest: write to %q: %w", a.Addr, err)
	}
	if t.isStopped() {
		return time.Time{}, fmt.Errorf("membertest: write from %v: transport is shut down", t.addr)
	}
	t.bytes.Add(int64(len(b)))
	t.net.deliver(t.addr, netip.AddrPortFrom(to.Addr().Unmap(), to.Port()), b)
	return time.Now(), nil
}

// PacketCh returns the channel of packets for this node.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh returns the channel of streams dialled to this node.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// DialTimeout opens a stream to addr (host:port). It fails with an error
// wrapping ErrUnreachable when addr cannot be reached: at once, or after the
// round trip of the network's latency; and at once when t shuts down while
// the dial waits for that round trip.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout is DialTimeout for a memberlist.Address.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	to, err := netip.ParseAddrPort(a.Addr)
	if err != nil {
		return nil, fmt.Errorf("membertest: dial %q: %w", a.Addr, err)
	}
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	n := t.net
	n.mu.Lock()
	rtt := 2 * n.latency
	n.mu.Unlock()
	if rtt > 0 {
		wait, err := rtt, error(nil)
		if timeout > 0 && timeout < rtt {
			wait, err = timeout, os.ErrDeadlineExceeded
		}
		// A dial in flight ends when its transport shuts down, as a
		// socket's does when it is closed, so that no goroutine of a
		// stopped node is left waiting out the latency.
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-t.done:
			timer.Stop()
			err = ErrUnreachable
		}
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Source: Addr(t.addr), Addr: Addr(to), Err: err}
		}
	}
	n.mu.Lock()
	dst := n.reachable(t.addr, to)
	n.mu.Unlock()
	if dst == nil || t.isStopped() {
		return nil, &net.OpError{Op: "dial", Net: network, Source: Addr(t.addr), Addr: Addr(to), Err: ErrUnreachable}
	}
	client, server := net.Pipe()
	c := &conn{Conn: client, owner: t, local: t.addr, remote: to}
	s := &conn{Conn: server, owner: dst, local: to, remote: t.addr}
	if !t.track(c) {
		client.Close()
		server.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Source: Addr(t.addr), Addr: Addr(to), Err: ErrUnreachable}
	}
	if !dst.track(s) {
		c.Close()
		server.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Source: Addr(t.addr), Addr: Addr(to), Err: ErrUnreachable}
	}
	select {
	case dst.streamCh <- s:
	default:
		c.Close()
		s.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Source: Addr(t.addr), Addr: Addr(to), Err: ErrUnreachable}
	}
	return c, nil
}

// Shutdown stops the node: it leaves the network, and every stream it has
// open is closed. Packets to its address are dropped from now on. Shutdown is
// idempotent.
func (t *Transport) Shutdown() error {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return nil
	}
	t.stopped = true
	close(t.done)
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	t.net.unbind(t)
	for c := range conns {
		c.Conn.Close()
	}
	return nil
}

func (t *Transport) isStopped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopped
}

// track records c as open on t; it reports false when t has stopped.
func (t *Transport) track(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c *conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// conn is one end of an in-memory stream, with the network's addresses and
// byte counting.
type conn struct {
	net.Conn
	owner         *Transport
	local, remote netip.AddrPort
	closed        atomic.Bool // this end was closed
}

func (c *conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.owner.bytes.Add(int64(n))
	return n, err
}

func (c *conn) Close() error {
	c.closed.Store(true)
	c.owner.untrack(c)
	return c.Conn.Close()
}

// SetDeadline sets the read and write deadlines. Once the other end has
// closed, a pipe refuses deadlines where a TCP socket accepts them; the
// stream behaves as the socket: only a closed end refuses.
func (c *conn) SetDeadline(t time.Time) error { return c.deadline(c.Conn.SetDeadline(t)) }

// SetReadDeadline is SetDeadline for reads.
func (c *conn) SetReadDeadline(t time.Time) error { return c.deadline(c.Conn.SetReadDeadline(t)) }

// SetWriteDeadline is SetDeadline for writes.
func (c *conn) SetWriteDeadline(t time.Time) error { return c.deadline(c.Conn.SetWriteDeadline(t)) }

// deadline drops the pipe's error when only the other end is closed.
func (c *conn) deadline(err error) error {
	if err != nil && !c.closed.Load() {
		return nil
	}
	return err
}

func (c *conn) LocalAddr() net.Addr  { return Addr(c.local) }
func (c *conn) RemoteAddr() net.Addr { return Addr(c.remote) }
