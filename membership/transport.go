package membership

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// countingTransport counts the bytes a node sends, and closes the streams it
// dialled when it shuts down.
type countingTransport struct {
	memberlist.NodeAwareTransport
	packets atomic.Int64 // bytes written as packets
	streams atomic.Int64 // bytes written and read on dialled streams

	mu    sync.Mutex // protects conns and down
	conns map[*countingConn]struct{}
	down  bool
}

// track wraps a dialled stream, or closes it when the transport is down.
func (t *countingTransport) track(c net.Conn) (net.Conn, error) {
	cc := &countingConn{Conn: c, t: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.down {
		c.Close()
		return nil, net.ErrClosed
	}
	if t.conns == nil {
		t.conns = make(map[*countingConn]struct{})
	}
	t.conns[cc] = struct{}{}
	return cc, nil
}

// Shutdown closes the dialled streams still open and shuts the transport
// down.
func (t *countingTransport) Shutdown() error {
	t.mu.Lock()
	t.down = true
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return t.NodeAwareTransport.Shutdown()
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.packets.Add(int64(len(b)))
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.packets.Add(int64(len(b)))
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return t.track(c)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return t.track(c)
}

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
