package membership

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// errTransportDown is returned by a dial after the transport has shut down.
// It is not a *net.OpError, so memberlist does not read it as a fault of
// the member it dialled.
var errTransportDown = errors.New("membership: transport shut down")

// countingTransport wraps a node's transport. It counts the bytes the node
// sends; it refuses to dial once shut down, so that no member receives an
// empty stream from a node that is stopping; it hands memberlist the
// streams others open through its own channel, remembering which ended
// before their first byte (see emptyStream); and it closes every stream
// still open, dialled or accepted, when it shuts down, so that none of
// memberlist's stream handlers waits out Timing.TCPTimeout after Close.
type countingTransport struct {
	memberlist.NodeAwareTransport
	packets atomic.Int64 // bytes written as packets
	streams atomic.Int64 // bytes written and read on dialled streams

	accepted chan net.Conn  // the streams others opened, for memberlist
	stop     chan struct{}  // closed by Shutdown to end forward
	forward  sync.WaitGroup // the goroutine running forward

	mu    sync.Mutex // protects conns, in and down
	conns map[*countingConn]struct{}
	in    map[*acceptedConn]struct{}
	down  bool
}

// newCountingTransport wraps tr and starts handing its streams on; Shutdown
// stops that.
func newCountingTransport(tr memberlist.NodeAwareTransport) *countingTransport {
	t := &countingTransport{
		NodeAwareTransport: tr,
		accepted:           make(chan net.Conn),
		stop:               make(chan struct{}),
		conns:              make(map[*countingConn]struct{}),
		in:                 make(map[*acceptedConn]struct{}),
	}
	t.forward.Add(1)
	go t.forwardStreams()
	return t
}

// forwardStreams hands the wrapped transport's streams to memberlist until
// Shutdown. Once the transport is down, a stream still arriving is closed:
// the wrapped transport's Shutdown may wait for its listener, which waits
// for its stream to be taken.
func (t *countingTransport) forwardStreams() {
	defer t.forward.Done()
	for {
		select {
		case c := <-t.NodeAwareTransport.StreamCh():
			ac := &acceptedConn{Conn: c, t: t}
			t.mu.Lock()
			down := t.down
			if !down {
				t.in[ac] = struct{}{}
			}
			t.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			select {
			case t.accepted <- ac:
			case <-t.stop:
				ac.Close()
				return
			}
		case <-t.stop:
			return
		}
	}
}

// StreamCh returns the streams others opened to the node.
func (t *countingTransport) StreamCh() <-chan net.Conn { return t.accepted }

// emptyStream reports whether a stream from the address from (as memberlist
// logs it: host:port), still open, ended before its first byte: a member
// that shut down while it dialled, or a port scan. memberlist reads such a
// stream as one with no cluster label.
func (t *countingTransport) emptyStream(from string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.in {
		if c.empty.Load() && c.RemoteAddr() != nil && c.RemoteAddr().String() == from {
			return true
		}
	}
	return false
}

// track wraps a dialled stream, or closes it when the transport is down.
func (t *countingTransport) track(c net.Conn) (net.Conn, error) {
	cc := &countingConn{Conn: c, t: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.down {
		c.Close()
		return nil, errTransportDown
	}
	t.conns[cc] = struct{}{}
	return cc, nil
}

// isDown reports whether Shutdown has been called.
func (t *countingTransport) isDown() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.down
}

// Shutdown closes the streams still open, shuts the wrapped transport down
// and stops handing streams on. It is idempotent.
func (t *countingTransport) Shutdown() error {
	t.mu.Lock()
	if t.down {
		t.mu.Unlock()
		return nil
	}
	t.down = true
	conns, in := t.conns, t.in
	t.conns, t.in = nil, nil
	t.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	for c := range in {
		c.Conn.Close()
	}
	err := t.NodeAwareTransport.Shutdown()
	close(t.stop)
	t.forward.Wait()
	return err
}

// WriteTo sends a packet and counts its bytes.
func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.packets.Add(int64(len(b)))
	return t.NodeAwareTransport.WriteTo(b, addr)
}

// WriteToAddress sends a packet and counts its bytes.
func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.packets.Add(int64(len(b)))
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

// DialTimeout opens a stream whose bytes are counted; it fails once the
// transport is down.
func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.isDown() {
		return nil, errTransportDown
	}
	c, err := t.NodeAwareTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return t.track(c)
}

// DialAddressTimeout is DialTimeout for a memberlist.Address.
func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.isDown() {
		return nil, errTransportDown
	}
	c, err := t.NodeAwareTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return t.track(c)
}

// countingConn is a dialled stream whose bytes are counted.
type countingConn struct {
	net.Conn
	t *countingTransport
}

func (c *countingConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	c.t.streams.Add(int64(k))
	return k, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.t.streams.Add(int64(k))
	return k, err
}

func (c *countingConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.conns, c)
	c.t.mu.Unlock()
	return c.Conn.Close()
}

// acceptedConn is a stream another node opened.
type acceptedConn struct {
	net.Conn
	t     *countingTransport
	read  atomic.Bool // a byte has been read
	empty atomic.Bool // it ended before its first byte
}

func (c *acceptedConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	if k > 0 {
		c.read.Store(true)
	} else if errors.Is(err, io.EOF) && !c.read.Load() {
		c.empty.Store(true)
	}
	return k, err
}

func (c *acceptedConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.in, c)
	c.t.mu.Unlock()
	return c.Conn.Close()
}
