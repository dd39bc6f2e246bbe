package balancer

import (
	"context"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/carbonlb/carbonlb/balancer/internal/h1"
)

// transport returns the transport for a service's timeouts. b.mu must be
// held.
func (b *Balancer) transport(t Timeouts) http.RoundTripper {
	if b.custom != nil {
		return b.custom
	}
	if rt := b.rtByTO[t]; rt != nil {
		return rt
	}
	rt := b.newTransport(t, b.cfg.MaxIdleConnsPerHost)
	b.rtByTO[t] = rt
	return rt
}

// retireTransports closes the idle backend connections of the transports
// whose timeouts no service uses any more, so that a reload changing a
// service's timeouts does not leave connections open for IdleConnTimeout.
// A connection a request in flight still uses goes back to its transport
// afterwards and is closed by the next retirement, by IdleConnTimeout or by
// Close. The transport itself is kept for when the timeouts come back.
// b.mu must be held.
func (b *Balancer) retireTransports(services []Service) {
	for t, rt := range b.rtByTO {
		if !slices.ContainsFunc(services, func(s Service) bool { return s.Timeouts == t }) {
			rt.CloseIdleConnections()
		}
	}
}

func (b *Balancer) newTransport(t Timeouts, idle int) *h1.Transport {
	d := &net.Dialer{Timeout: t.Dial, KeepAlive: 30 * time.Second}
	rt, wt := t.Read, t.Write
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil || (rt <= 0 && wt <= 0) {
			return c, err
		}
		return &deadlineConn{Conn: c, read: rt, write: wt}, nil
	}
	var tlsc = b.cfg.TLSClientConfig
	if tlsc != nil {
		tlsc = tlsc.Clone()
	}
	idleTimeout := b.cfg.IdleConnTimeout
	if rt > 0 && idleTimeout > rt/2 {
		// An idle connection's background read carries the read deadline
		// of the response before it; closing idle connections well before
		// it fires keeps a request from taking a connection that is about
		// to fail.
		idleTimeout = max(rt/2, 1) // zero would mean no limit
	}
	return &h1.Transport{
		Dial:             dial,
		TLSConfig:        tlsc,
		HandshakeTimeout: t.Dial,
		MaxIdlePerHost:   idle,
		IdleTimeout:      idleTimeout,
		HeaderTimeout:    t.Read,
		Fallback: &http.Transport{
			DialContext:            dial,
			TLSClientConfig:        tlsc,
			TLSHandshakeTimeout:    t.Dial,
			MaxIdleConnsPerHost:    idle,
			IdleConnTimeout:        idleTimeout,
			ResponseHeaderTimeout:  t.Read,
			ExpectContinueTimeout:  time.Second,
			DisableCompression:     true, // pass bodies through as the backend sent them
			ReadBufferSize:         16 << 10,
			MaxResponseHeaderBytes: h1.MaxResponseHeader, // as h1.Transport's bound
			WriteBufferSize:        16 << 10,
		},
	}
}

// deadlineConn is a backend connection that bounds the time between two
// successive writes (Timeouts.Write, nginx proxy_send_timeout) and between
// two successive reads of a response (Timeouts.Read, nginx
// proxy_read_timeout).
//
// The wait for the response header is left to the transport, which starts
// it once the request is written (h1.Transport sets the read deadline itself
// after writing; the fallback net/http Transport has ResponseHeaderTimeout):
// net/http's background reader is blocked in Read from the moment the
// connection is made or returned to the pool, long before a request is
// sent, so a deadline set at the start of that Read would count a slow
// upload against the response. So a Write clears the read deadline (also
// of a Read in progress), and read deadlines are set only after the
// response's first bytes arrived. The background read of an idle pooled
// connection still carries the deadline of the response before it;
// newTransport closes idle connections before it fires.
//
// To save a timer update per call, a deadline is moved at most every
// 1/16 of its timeout, so a stall may be detected up to 1/16 of the
// timeout early.
type deadlineConn struct {
	net.Conn
	read, write time.Duration

	mu    sync.Mutex // protects the fields below; Read and Write run on different goroutines
	armed bool       // response bytes arrived since the last Write: reads are timed
	rnext time.Time  // when the read deadline must next be moved; zero: none set
	wnext time.Time  // when the write deadline must next be moved
}

// NetConn returns the connection c wraps, for h1.Transport's check of an
// idle connection's socket before reuse.
func (c *deadlineConn) NetConn() net.Conn { return c.Conn }

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.read > 0 {
		c.mu.Lock()
		if c.armed {
			if now := time.Now(); !now.Before(c.rnext) {
				c.Conn.SetReadDeadline(now.Add(c.read))
				c.rnext = now.Add(c.read / 16)
			}
		}
		c.mu.Unlock()
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.read > 0 {
		c.mu.Lock()
		c.armed = true
		c.mu.Unlock()
	}
	return n, err
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.armed || !c.rnext.IsZero() {
		// A new request: the header wait is ResponseHeaderTimeout's.
		c.armed = false
		c.rnext = time.Time{}
		c.Conn.SetReadDeadline(time.Time{})
	}
	if c.write > 0 {
		if now := time.Now(); now.After(c.wnext) {
			c.Conn.SetWriteDeadline(now.Add(c.write))
			c.wnext = now.Add(c.write / 16)
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}
