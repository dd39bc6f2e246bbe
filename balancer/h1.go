package balancer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// h1Transport is the balancer's HTTP/1.1 client. A request without a body or
// with a small one of known length — the usual GET, and the usual SOAP or
// form POST — is written and its response read on the calling goroutine over
// a pooled keep-alive connection (TLS for https backends): no goroutine per
// connection and no hand-off between goroutines per request, which is where
// net/http's Transport spends most of its time under this load. A small body
// is read whole once a connection is ready, then written with the header,
// so it fits the socket buffers and can be written again on a new connection
// if the pooled one turns out closed. The rest — bodies of unknown length or
// over maxBufferedBody (a backend may answer before reading them, which
// needs writing and reading at once), protocol upgrades and Expect:
// 100-continue — goes to fallback, a net/http Transport with the same dialer
// and TLS configuration.
type h1Transport struct {
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	tls       *tls.Config   // for https backends; nil: the defaults
	handshake time.Duration // bound on a TLS handshake (Timeouts.Dial); 0: none
	fallback  *http.Transport
	maxIdle   int           // idle connections kept per backend address
	idleTime  time.Duration // an idle connection older than this is closed
	header    time.Duration // the wait for a response header (Timeouts.Read); 0: none

	mu    sync.Mutex // protects the fields below
	idle  map[connKey][]*h1Conn
	sweep *time.Timer // pending sweep of expired idle connections, or nil
}

// connKey identifies the backend of a pooled connection.
type connKey struct {
	tls  bool
	addr string // host:port
}

// h1Conn is a keep-alive connection to a backend.
type h1Conn struct {
	key    connKey
	conn   net.Conn
	br     *bufio.Reader // reads through the h1Conn, which counts against limit
	bw     *bufio.Writer
	idleAt time.Time
	limit  int64 // bytes left to read before the response header must have ended
}

// maxResponseHeader bounds a backend's response header, informational
// responses before it included (net/http's Transport allows 10 MB; nginx,
// with its default buffers, 4 or 8 KB).
const maxResponseHeader = 1 << 20

// errHeaderTooLarge is the error for a response header over maxResponseHeader.
var errHeaderTooLarge = fmt.Errorf("balancer: backend response header larger than %d bytes", maxResponseHeader)

// Read reads from the connection, at most limit bytes while a response
// header is read.
func (pc *h1Conn) Read(p []byte) (int, error) {
	if pc.limit <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > pc.limit {
		p = p[:pc.limit]
	}
	n, err := pc.conn.Read(p)
	pc.limit -= int64(n)
	return n, err
}

// noLimit is h1Conn.limit while a body is read.
const noLimit = 1<<63 - 1

// errUnusable says that a pooled connection was found closed by the backend
// before it answered a byte: it had been closed while idle. The request,
// whose body if any is buffered, is written again on a new connection.
var errUnusable = errors.New("balancer: idle backend connection closed")

// maxBufferedBody is the largest request body h1Transport sends itself.
const maxBufferedBody = 64 << 10

// bodyBufs holds buffers of maxBufferedBody bytes for request bodies.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, maxBufferedBody); return &b }}

func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	scheme := req.URL.Scheme
	hasBody := req.Body != nil && req.Body != http.NoBody
	if (scheme != "http" && scheme != "https") || (hasBody && (req.ContentLength <= 0 || req.ContentLength > maxBufferedBody)) ||
		len(req.Header["Upgrade"]) > 0 || len(req.Header["Expect"]) > 0 {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	addr := req.URL.Host
	if req.URL.Port() == "" {
		port := "80"
		if scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(req.URL.Hostname(), port)
	}
	key := connKey{tls: scheme == "https", addr: addr}
	var body *[]byte // the request body, read once a connection is ready
	defer func() {
		if body != nil {
			bodyBufs.Put(body)
		}
	}()
	for {
		pc, reused := t.get(key), true
		if pc == nil {
			c, err := t.connect(ctx, scheme, addr, req.URL.Hostname())
			if err != nil {
				return nil, err // the body is unread: the balancer may try another backend
			}
			pc, reused = &h1Conn{key: key, conn: c, bw: bufio.NewWriterSize(c, 4<<10)}, false
			pc.br = bufio.NewReaderSize(pc, 16<<10)
		}
		out := req
		if hasBody {
			if body == nil {
				body = bodyBufs.Get().(*[]byte)
				_, err := io.ReadFull(req.Body, (*body)[:req.ContentLength])
				req.Body.Close()
				if err != nil {
					t.put(pc) // unused
					return nil, fmt.Errorf("balancer: reading the request body: %w", err)
				}
			}
			r := *req
			r.Body = io.NopCloser(bytes.NewReader((*body)[:req.ContentLength]))
			out = &r
		}
		resp, err := t.exchange(ctx, pc, out, reused)
		if errors.Is(err, errUnusable) && ctx.Err() == nil {
			continue
		}
		return resp, err
	}
}

// connect dials addr and, for https, completes a TLS handshake that offers
// HTTP/1.1 only, verifying the certificate for host unless the TLS
// configuration names another server.
func (t *h1Transport) connect(ctx context.Context, scheme, addr, host string) (net.Conn, error) {
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil || scheme != "https" {
		return c, err
	}
	var cfg *tls.Config
	if t.tls != nil {
		cfg = t.tls.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	hctx := ctx
	if t.handshake > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, t.handshake)
		defer cancel()
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// exchange writes req on pc and reads the response header. On error pc is
// closed; the error is errUnusable when pc was reused and failed before any
// byte of a response.
func (t *h1Transport) exchange(ctx context.Context, pc *h1Conn, req *http.Request, reused bool) (*http.Response, error) {
	// A client that goes away, or a deadline, ends the exchange: closing the
	// connection ends a blocked write or read.
	stop := context.AfterFunc(ctx, func() { pc.conn.Close() })
	fail := func(err error, beforeResponse bool) (*http.Response, error) {
		stop()
		pc.conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%w (%v)", cerr, err)
		}
		if reused && beforeResponse && connGone(err) {
			return nil, errUnusable
		}
		return nil, err
	}
	werr := req.Write(pc.bw)
	if werr == nil {
		werr = pc.bw.Flush()
	}
	if werr != nil && !connGone(werr) {
		return fail(werr, true)
	}
	// A backend that closed the connection while the request was written
	// may have answered first (413 to a body it will not read): read that.
	if t.header > 0 {
		// The header wait; once bytes arrive, deadlineConn times the reads.
		pc.conn.SetReadDeadline(time.Now().Add(t.header))
	}
	pc.limit = maxResponseHeader
	for {
		if _, err := pc.br.Peek(1); err != nil {
			if werr != nil {
				err = werr
			}
			return fail(err, true)
		}
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return fail(err, false)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return fail(errors.New("balancer: backend switched protocols on a request that asked for no upgrade"), false)
			}
			continue // an informational response (103 Early Hints): the final one follows
		}
		pc.limit = noLimit
		keep := werr == nil && !resp.Close && !req.Close
		if resp.Body == http.NoBody {
			t.release(pc, stop, keep)
			return resp, nil
		}
		resp.Body = &h1Body{t: t, pc: pc, body: resp.Body, stop: stop, keep: keep}
		return resp, nil
	}
}

// connGone reports whether err says the backend closed the connection.
func connGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// release returns pc to the pool when keep holds and the cancellation
// watch could be stopped before it fired; otherwise it closes pc.
func (t *h1Transport) release(pc *h1Conn, stop func() bool, keep bool) {
	if !stop() || !keep {
		pc.conn.Close()
		return
	}
	t.put(pc)
}

// get returns an idle connection for key that has not expired, or nil.
func (t *h1Transport) get(key connKey) *h1Conn {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.idle[key]
	for len(l) > 0 {
		pc := l[len(l)-1]
		l[len(l)-1] = nil
		l = l[:len(l)-1]
		if now.Sub(pc.idleAt) < t.idleTime {
			t.idle[key] = l
			return pc
		}
		pc.conn.Close()
	}
	delete(t.idle, key)
	return nil
}

// put keeps pc for reuse, or closes it when maxIdle are kept already.
func (t *h1Transport) put(pc *h1Conn) {
	pc.idleAt = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idle == nil {
		t.idle = make(map[connKey][]*h1Conn)
	}
	if len(t.idle[pc.key]) >= t.maxIdle {
		pc.conn.Close()
		return
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTime, t.sweepIdle)
	}
}

// sweepIdle closes the idle connections that expired, and comes back while
// any remain.
func (t *h1Transport) sweepIdle() {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep = nil
	oldest := now
	for key, l := range t.idle {
		kept := l[:0]
		for _, pc := range l {
			if now.Sub(pc.idleAt) >= t.idleTime {
				pc.conn.Close()
				continue
			}
			kept = append(kept, pc)
			if pc.idleAt.Before(oldest) {
				oldest = pc.idleAt
			}
		}
		clear(l[len(kept):])
		if len(kept) == 0 {
			delete(t.idle, key)
		} else {
			t.idle[key] = kept
		}
	}
	if len(t.idle) > 0 {
		t.sweep = time.AfterFunc(oldest.Add(t.idleTime).Sub(now), t.sweepIdle)
	}
}

// CloseIdleConnections closes every idle connection, the fallback's too.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	for _, l := range t.idle {
		for _, pc := range l {
			pc.conn.Close()
		}
	}
	t.idle = nil
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	t.mu.Unlock()
	t.fallback.CloseIdleConnections()
}

// h1Body is a response body that returns its connection to the pool once
// read to the end, and closes it when closed earlier.
type h1Body struct {
	t    *h1Transport
	pc   *h1Conn
	body io.ReadCloser
	stop func() bool
	keep bool
	done bool // the connection was released or closed
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.done = true
		if err == io.EOF {
			b.t.release(b.pc, b.stop, b.keep)
		} else {
			b.stop()
			b.pc.conn.Close()
		}
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.done = true
		b.stop()
		b.pc.conn.Close()
	}
	return nil
}

// requestNotSent reports whether err, returned by a RoundTrip of the
// balancer's transport (h1Transport or its fallback), proves that no byte of
// the request reached the backend: the request may then be sent to another
// backend whatever its method, provided its body can be produced again.
func requestNotSent(err error) bool {
	return isDialError(err)
}

// responseStarted reports whether err, returned by a RoundTrip, came after
// some byte of a response had arrived: the request is then never sent again.
func responseStarted(err error) bool {
	return false
}
