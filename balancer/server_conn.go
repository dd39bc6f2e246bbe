package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/carbonlb/carbonlb/balancer/internal/h1"
)

// lingerTimeout and lingerBytes bound the reading and dropping of what a
// client still sends after the engine closed its side of a connection
// whose input it had not read to the end, so that the client reads the
// response before its TCP stack sees a reset (RFC 9112, section 9.6).
const (
	lingerTimeout = 2 * time.Second
	lingerBytes   = 256 << 10
)

// readBufSize is the size of a connection's bufio.Reader: it holds the
// usual request head whole.
const readBufSize = 4 << 10

// aLongTimeAgo is a deadline in the past: setting it ends a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// readers holds the bufio.Readers of connections between connections.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

// connState is where a connection is in its life.
type connState uint8

const (
	connNew    connState = iota // the TLS handshake, if any
	connIdle                    // waiting for a request
	connActive                  // reading or serving a request
)

// conn is one client connection served by the engine. Its goroutine runs
// serve; Server.Shutdown and Server.Close reach it through closeIfIdle and
// abort.
type conn struct {
	s      *Server
	h      http.Handler
	raw    net.Conn    // the accepted connection
	rwc    net.Conn    // raw, or the TLS connection over it
	tlsCfg *tls.Config // ServeTLS's, nil for Serve

	// Used by the connection's goroutine only, apart from what is said.
	remote    string
	tlsState  *tls.ConnectionState
	base      context.Context
	cr        connReader
	br        *bufio.Reader
	bw        connWriter
	req       http.Request
	url       url.URL
	res       response
	body      serverBody
	watch     watcher
	lim       h1.RequestLimits
	rht, idle time.Duration
	hijacked  bool // the handler took the connection
	linger    bool // input may be left unread: close gently

	mu      sync.Mutex // protects the fields below
	state   connState
	cancel  context.CancelFunc // the request in flight's, or nil
	aborted bool               // Server.Close closed the connection
}

// serve serves the connection's requests until it ends.
func (c *conn) serve() {
	s := c.s
	defer s.untrack(c)
	c.remote = c.raw.RemoteAddr().String()
	c.rht = durationOr(s.ReadHeaderTimeout, defaultReadHeaderTimeout)
	c.idle = durationOr(s.IdleTimeout, defaultIdleTimeout)
	c.lim = h1.RequestLimits{MaxHeaderBytes: s.MaxHeaderBytes}
	c.bw.c = c
	c.bw.timeout = s.WriteTimeout
	if c.bw.timeout == 0 {
		c.bw.timeout = defaultWriteTimeout
	}
	if c.tlsCfg != nil && !c.handshake() {
		return
	}
	c.base = context.WithValue(context.Background(), http.LocalAddrContextKey, c.raw.LocalAddr())
	c.cr.c = c
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(&c.cr)
	c.bw.buf = getWriteBuf()
	c.req.URL = &c.url
	c.res.c = c
	c.watch.c = c
	for c.setState(connIdle) {
		if c.br.Buffered() == 0 && !c.cr.hasByte {
			c.rwc.SetReadDeadline(deadline(c.idle))
			if _, err := c.br.Peek(1); err != nil {
				break // the client closed, or the idle timeout: silently
			}
		}
		if !c.setState(connActive) {
			break
		}
		c.rwc.SetReadDeadline(deadline(c.rht))
		if err := h1.ReadRequest(c.br, c.lim, &c.req); err != nil {
			c.refuse(err)
			break
		}
		if !c.serveRequest() {
			break
		}
	}
	c.close()
}

func durationOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// deadline is the deadline d from now; none for a negative d.
func deadline(d time.Duration) time.Time {
	if d < 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// handshake runs the TLS handshake, bounded by ReadHeaderTimeout, and
// hands a connection that negotiated h2 to HTTP2. It reports whether the
// engine serves the connection.
func (c *conn) handshake() bool {
	tc := tls.Server(c.raw, c.tlsCfg)
	c.mu.Lock()
	c.rwc = tc
	c.mu.Unlock()
	tc.SetDeadline(deadline(c.rht))
	if err := tc.Handshake(); err != nil {
		c.s.log().Debug("balancer: TLS handshake failed", "client", c.remote, "err", err)
		c.raw.Close()
		return false
	}
	tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	if st.NegotiatedProtocol == "h2" && c.s.h2ln != nil {
		c.s.untrack(c)
		c.s.toHTTP2(tc)
		return false
	}
	c.tlsState = &st
	return true
}

// setState moves the connection to st (connIdle or connActive); it
// reports false, and the connection must end, once the Server is down.
func (c *conn) setState(st connState) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted || c.s.isDownFast() {
		return false
	}
	c.state = st
	return true
}

// closeIfIdle closes the connection if it waits for a request (Shutdown).
func (c *conn) closeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == connIdle {
		c.raw.Close()
	}
}

// abort closes the connection and cancels its request (Close).
func (c *conn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborted = true
	if c.cancel != nil {
		c.cancel()
	}
	c.raw.Close()
}

// refuse answers a request ReadRequest refused, or says nothing when the
// client went away or was idle too long in the middle of a head (408).
func (c *conn) refuse(err error) {
	var re *h1.RequestError
	switch {
	case err == io.EOF:
		return
	case errors.As(err, &re):
		c.s.log().Debug("balancer: request refused", "client", c.remote, "status", re.Status, "reason", re.Reason)
		c.answer(re.Status, re.Reason)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.answer(http.StatusRequestTimeout, "request head not received in time")
	}
}

// answer sends a short plain-text response of the engine's own, and
// closes the connection after it.
func (c *conn) answer(code int, reason string) {
	b := c.bw.buf[:0]
	b = appendStatusLine(b, true, code)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(reason)+1), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, reason...)
	b = append(b, '\n')
	c.bw.buf = b
	c.bw.flush()
	c.linger = true
}

// serveRequest serves the request just read and reports whether the
// connection may serve another.
func (c *conn) serveRequest() bool {
	r := &c.req
	c.rwc.SetReadDeadline(time.Time{})
	r.RemoteAddr = c.remote
	r.TLS = c.tlsState
	w := &c.res
	w.reset(r)
	if r.Method == http.MethodConnect {
		// A tunnel is not a load balancer's business, and what follows a
		// CONNECT is not a request.
		c.answer(http.StatusMethodNotAllowed, "CONNECT is not served")
		return false
	}
	expect := false
	if e := r.Header["Expect"]; len(e) > 0 {
		if len(e) != 1 || !strings.EqualFold(e[0], "100-continue") {
			c.answer(http.StatusExpectationFailed, "unsupported expectation")
			return false
		}
		// RFC 9110, section 10.1.1: no 100 Continue to HTTP/1.0, nor for
		// an empty body.
		expect = r.ProtoAtLeast(1, 1) && r.ContentLength != 0
	}
	if r.ContentLength != 0 {
		c.body.reset(c, h1.NewBody(c.br, r, c.lim), expect)
		r.Body = &c.body
		w.mayContinue, w.canContinue = expect, expect
	} else {
		c.body.reset(c, nil, false)
		r.Body = http.NoBody
	}
	ctx, cancel := context.WithCancel(c.base)
	*r = *r.WithContext(ctx)
	c.mu.Lock()
	aborted := c.aborted
	c.cancel = cancel
	c.mu.Unlock()
	if aborted {
		cancel()
		return false
	}
	c.watch.arm(cancel, c.body.rc == nil)
	ok := c.run(w, r)
	c.watch.disarm()
	if c.hijacked {
		cancel()
		return false
	}
	if ok {
		w.finish()
	}
	bodyDone := c.body.finish()
	c.mu.Lock()
	c.cancel = nil
	c.mu.Unlock()
	cancel()
	if !ok || !bodyDone {
		c.linger = true
		return false
	}
	return !w.closeAfter && c.bw.err == nil && !c.watch.gone
}

// run calls the handler; it returns false when the handler panicked.
// http.ErrAbortHandler is how a handler ends a response it cannot
// complete (the Balancer's, when the client went away or the backend's
// response was cut): it is not logged. Other panics are, with the stack,
// as net/http's server does.
func (c *conn) run(w *response, r *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v == http.ErrAbortHandler {
				return
			}
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.log().Error("balancer: panic serving a request", "client", c.remote, "method", r.Method,
				"path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(buf))
		}
	}()
	c.h.ServeHTTP(w, r)
	return true
}

// close ends a connection that was not hijacked: what was written goes
// out, and when input may be left unread, the engine closes its side
// first and drops what still arrives for a while, so that the client
// sees the response rather than a reset.
func (c *conn) close() {
	c.watch.stop()
	if c.hijacked {
		return
	}
	if c.bw.buf != nil {
		c.bw.flush()
	}
	if c.linger && c.bw.err == nil {
		c.lingerClose()
	}
	c.raw.Close()
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
	if c.bw.buf != nil {
		putWriteBuf(c.bw.buf)
		c.bw.buf = nil
	}
}

// lingerClose half-closes the connection and reads what the client still
// sends, within lingerTimeout and lingerBytes.
func (c *conn) lingerClose() {
	type closeWriter interface{ CloseWrite() error }
	cw, ok := c.rwc.(closeWriter)
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.rwc.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, c.rwc, lingerBytes)
}

// connReader is the reader under a connection's bufio.Reader. It hands
// out first the byte the watcher read, if it read one.
type connReader struct {
	c       *conn
	hasByte bool // byteBuf holds a byte the watcher read
	byteBuf [1]byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasByte {
		if len(p) == 0 {
			return 0, nil
		}
		p[0] = r.byteBuf[0]
		r.hasByte = false
		return 1, nil
	}
	return r.c.rwc.Read(p)
}
