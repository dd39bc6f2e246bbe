package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// h1Transport is the balancer's HTTP/1.1 client. A request without a body or
// with a small replayable one of known length — the usual GET, and the usual
// SOAP or form POST, which ServeHTTP buffers before it picks a backend — is
// written and its response read on the calling goroutine over a pooled
// keep-alive connection (TLS for https backends): no goroutine per
// connection and no hand-off between goroutines per request, which is where
// net/http's Transport spends most of its time under this load. The rest —
// bodies of unknown length, over maxBufferedBody or without GetBody (a
// backend may answer before reading them, which needs writing and reading at
// once), protocol upgrades and Expect: 100-continue — goes to fallback, a
// net/http Transport with the same dialer and TLS configuration; so does
// every request when the package is built with the balancer_stdclient tag
// or for a platform whose sockets it cannot inspect (useH1).
//
// Connection reuse (docs/balancer.md, "Connection reuse"): a connection goes
// back to the pool only when its response was read exactly to its end, the
// request was written whole, neither side asked to close, and nothing more
// is buffered; before a pooled connection carries a request, one
// non-blocking receive checks that nothing has arrived on it since and that
// the backend has not closed it. A connection that fails the check is closed
// and the next one tried: nothing was written to it.
//
// A request is written again on another connection to the same backend only
// when the connection was a reused one and either no byte of the request
// reached the socket, or the request is idempotent (GET, HEAD, OPTIONS,
// TRACE: net/http's rule) and the backend closed the connection before any
// byte of a response. A POST whose bytes were written is never written
// again. Errors carry what they prove (requestNotSent, responseStarted) for
// the balancer's choice of trying another backend.
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
	key     connKey
	conn    net.Conn
	br      *bufio.Reader // reads through the h1Conn, which counts against limit
	bw      *bufio.Writer // writes through the h1Conn, which counts written
	idleAt  time.Time
	limit   int64 // bytes left to read before the response header must have ended
	written int64 // bytes conn.Write accepted, over the connection's life

	raw    syscall.RawConn    // the socket of a plain connection; nil: TLS, or not a socket
	tlsIn  *tlsSocket         // the socket under a TLS connection; nil: plain
	peekFn func(uintptr) bool // pc.peek, bound once
	peekN  int                // the result of the last peek: bytes waiting,
	peekWB bool               // whether it would have blocked (nothing waiting),
	peekOK bool               // and whether it could be made at all
	buf    [1]byte
}

// maxResponseHeader bounds a backend's response header, informational
// responses before it included (net/http's Transport allows 10 MB; nginx,
// with its default buffers, 4 or 8 KB).
const maxResponseHeader = 1 << 20

// max1xxResponses bounds the informational responses before a final one, as
// net/http's Transport does (its max1xxResponses).
const max1xxResponses = 5

// maxTries bounds the exchanges one RoundTrip makes on the connections of a
// backend (each after a reused connection failed in a way that allows
// writing the request again).
const maxTries = 5

// The causes of h1Transport's own errors; they reach callers wrapped in an
// *h1Error, which carries the package prefix.
var (
	errHeaderTooLarge = fmt.Errorf("backend response header larger than %d bytes", maxResponseHeader)
	errTooMany1xx     = fmt.Errorf("backend sent more than %d informational responses", max1xxResponses)
	errSwitched       = errors.New("backend switched protocols on a request that asked for no upgrade")
)

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

// Write writes to the connection and counts the bytes it accepted, so that
// a failed write can tell whether any byte of a request left.
func (pc *h1Conn) Write(p []byte) (int, error) {
	n, err := pc.conn.Write(p)
	pc.written += int64(n)
	return n, err
}

// noLimit is h1Conn.limit while a body is read.
const noLimit = 1<<63 - 1

// maxBufferedBody is the largest request body h1Transport sends itself, and
// the largest ServeHTTP buffers.
const maxBufferedBody = 64 << 10

// h1Error is an error of a RoundTrip, with what it proves about the request:
// requestNotSent and responseStarted read it with errors.As. Its chain holds
// the cause (a *net.OpError whose Timeout tells a timeout, context.Canceled
// when the request's context ended), so errors.Is and errors.As see through
// it. It does not implement net.Error itself, so that errors.As finds the
// cause's.
type h1Error struct {
	op          string // what failed: "dial", "write request", "read response", …
	notSent     bool   // no byte of the request reached the backend
	respStarted bool   // some byte of a response had arrived
	err         error  // the cause
}

// Error says what failed, and why.
func (e *h1Error) Error() string { return "balancer: " + e.op + ": " + e.err.Error() }

// Unwrap returns the cause.
func (e *h1Error) Unwrap() error { return e.err }

// rewritable reports whether a request with method may be written again on
// a new connection after a reused one closed without answering: the
// idempotent methods that net/http's Transport writes again (its
// isReplayable, without its Idempotency-Key extension; RFC 9112 §9.3.1).
func rewritable(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// RoundTrip sends req to the backend its URL names and returns the
// response, whose body returns the connection to the pool once read to its
// end. Its errors are *h1Error, except those of the fallback Transport when
// no byte of a response arrived.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	scheme := req.URL.Scheme
	hasBody := req.Body != nil && req.Body != http.NoBody
	if !useH1 || (scheme != "http" && scheme != "https") ||
		(hasBody && (req.GetBody == nil || req.ContentLength <= 0 || req.ContentLength > maxBufferedBody)) ||
		len(req.Header["Upgrade"]) > 0 || len(req.Header["Expect"]) > 0 {
		return t.roundTripFallback(req)
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
	out := req
	sent := false // some earlier try wrote a byte of the request
	for try := 1; ; try++ {
		pc, reused := t.get(key), true
		if pc == nil {
			c, ts, err := t.connect(ctx, scheme, addr, req.URL.Hostname())
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					err = fmt.Errorf("%w (%v)", cerr, err)
				}
				return nil, &h1Error{op: "connect", notSent: !sent, err: err}
			}
			pc, reused = newH1Conn(key, c, ts), false
		}
		if try > 1 && hasBody {
			body, err := req.GetBody()
			if err != nil {
				t.put(pc) // unused
				return nil, &h1Error{op: "rewind request body", notSent: !sent, err: err}
			}
			r := *req
			r.Body = body
			out = &r
		}
		resp, err := t.exchange(ctx, pc, out, reused)
		if err == nil {
			return resp, nil
		}
		he := err.(*h1Error)
		he.notSent = he.notSent && !sent
		sent = sent || !he.notSent
		if ctx.Err() != nil || !reused || try >= maxTries {
			return nil, err
		}
		// A reused connection: it may have been closed by the backend
		// while idle, after the check before this try.
		if he.notSent || (rewritable(req.Method) && !he.respStarted && connGone(he.err) && !isTimeout(he.err)) {
			continue
		}
		return nil, err
	}
}

// roundTripFallback sends req with the net/http Transport, and marks its
// error when a byte of a response had arrived (httptrace's
// GotFirstResponseByte), for responseStarted.
func (t *h1Transport) roundTripFallback(req *http.Request) (*http.Response, error) {
	var got atomic.Bool
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { got.Store(true) }}
	resp, err := t.fallback.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err != nil && got.Load() {
		return nil, &h1Error{op: "read response", respStarted: true, err: err}
	}
	return resp, err
}

// newH1Conn returns a connection to pool under key; ts is the socket under
// a TLS connection c, or nil.
func newH1Conn(key connKey, c net.Conn, ts *tlsSocket) *h1Conn {
	pc := &h1Conn{key: key, conn: c, tlsIn: ts}
	if ts == nil {
		pc.raw = rawConn(c)
	}
	pc.peekFn = pc.peek
	pc.bw = bufio.NewWriterSize(pc, 4<<10)
	pc.br = bufio.NewReaderSize(pc, 16<<10)
	return pc
}

// rawConn returns the socket of c, through the balancer's wrappers, or nil.
func rawConn(c net.Conn) syscall.RawConn {
	for {
		switch x := c.(type) {
		case *deadlineConn:
			c = x.Conn
		case *tlsSocket:
			c = x.Conn
		case *tls.Conn:
			c = x.NetConn()
		case syscall.Conn:
			rc, err := x.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		default:
			return nil
		}
	}
}

// peek, called by syscall.RawConn.Read, looks without waiting for bytes
// that arrived on the socket, and leaves them there.
func (pc *h1Conn) peek(fd uintptr) bool {
	pc.peekN, pc.peekWB, pc.peekOK = recvNow(fd, pc.buf[:], true)
	return true
}

// reusable reports whether the idle pc can carry a request: nothing is
// buffered, nothing arrived since its last response, and the backend has not
// closed it. For a TLS connection any byte that arrived counts (it may be a
// close_notify alert or a TLS record of a response nobody asked for), and so
// does plaintext the TLS layer holds. It costs one non-blocking receive.
func (pc *h1Conn) reusable() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	if pc.tlsIn != nil {
		return pc.tlsIn.idle(pc.conn)
	}
	if pc.raw == nil {
		return false
	}
	pc.peekOK = false
	if err := pc.raw.Read(pc.peekFn); err != nil || !pc.peekOK {
		return false
	}
	return pc.peekWB // else a byte waits (pc.peekN > 0) or the backend closed (0)
}

// tlsSocket is the connection under a TLS client connection. While idle
// checks, its Read does not wait: a read through the TLS layer then returns
// the plaintext the layer holds, or what arrived on the socket, or
// errWouldBlock when there is neither. It follows the TLS record framing
// (RFC 8446 §5.1: a 5-byte header whose last two bytes are the length) of
// what it passes up, so that idle can tell when the TLS layer holds part of
// a record it read with the end of a response.
type tlsSocket struct {
	net.Conn
	raw     syscall.RawConn
	probing bool
	p       []byte // the buffer of the pending non-blocking receive
	n       int
	wb, ok  bool
	fn      func(uintptr) bool // ts.recv, bound once

	hdr  [5]byte // the header of the record being read, as far as read
	nhdr int     // bytes of hdr read; 0 between records
	rest int     // bytes of the record's body still to come
}

// track follows the record framing over p, the next bytes read.
func (ts *tlsSocket) track(p []byte) {
	for len(p) > 0 {
		if ts.rest > 0 {
			k := min(ts.rest, len(p))
			ts.rest -= k
			p = p[k:]
			continue
		}
		k := copy(ts.hdr[ts.nhdr:], p)
		ts.nhdr += k
		p = p[k:]
		if ts.nhdr == len(ts.hdr) {
			ts.rest, ts.nhdr = int(ts.hdr[3])<<8|int(ts.hdr[4]), 0
		}
	}
}

// newTLSSocket returns c, to be put under a TLS client connection.
func newTLSSocket(c net.Conn) *tlsSocket {
	ts := &tlsSocket{Conn: c, raw: rawConn(c)}
	ts.fn = ts.recv
	return ts
}

// recv, called by syscall.RawConn.Read, receives into ts.p without waiting.
func (ts *tlsSocket) recv(fd uintptr) bool {
	ts.n, ts.wb, ts.ok = recvNow(fd, ts.p, false)
	return true
}

// Read reads from the socket, without waiting while idle checks.
func (ts *tlsSocket) Read(p []byte) (int, error) {
	if !ts.probing {
		n, err := ts.Conn.Read(p)
		ts.track(p[:n])
		return n, err
	}
	ts.p, ts.ok = p, false
	err := ts.raw.Read(ts.fn)
	ts.p = nil
	switch {
	case err != nil:
		return 0, err
	case !ts.ok:
		return 0, io.ErrUnexpectedEOF
	case ts.wb:
		return 0, errWouldBlock
	case ts.n == 0:
		return 0, io.EOF
	}
	ts.track(p[:ts.n])
	return ts.n, nil
}

// idle reports whether the TLS connection c over ts has nothing to read:
// see h1Conn.reusable.
func (ts *tlsSocket) idle(c net.Conn) bool {
	if ts.raw == nil || ts.nhdr > 0 || ts.rest > 0 {
		return false // the TLS layer holds part of a record: bytes past the response
	}
	var b [1]byte
	ts.probing = true
	n, err := c.Read(b[:])
	ts.probing = false
	return n == 0 && errors.Is(err, errWouldBlock)
}

// errWouldBlock is tlsSocket.Read's error when nothing is waiting. It is a
// temporary net.Error, so that the TLS layer does not keep it as the
// connection's error.
var errWouldBlock error = wouldBlockError{}

// wouldBlockError is the type of errWouldBlock.
type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "nothing to read" }
func (wouldBlockError) Timeout() bool   { return true }
func (wouldBlockError) Temporary() bool { return true }

// connect dials addr and, for https, completes a TLS handshake that offers
// HTTP/1.1 only, verifying the certificate for host unless the TLS
// configuration names another server. For https it also returns the socket
// under the TLS connection.
func (t *h1Transport) connect(ctx context.Context, scheme, addr, host string) (net.Conn, *tlsSocket, error) {
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil || scheme != "https" {
		return c, nil, err
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
	ts := newTLSSocket(c)
	tc := tls.Client(ts, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		return nil, nil, err
	}
	return tc, ts, nil
}

// exchange writes req on pc and reads the response header. On error pc is
// closed and the error is an *h1Error.
func (t *h1Transport) exchange(ctx context.Context, pc *h1Conn, req *http.Request, reused bool) (*http.Response, error) {
	// A client that goes away, or a deadline, ends the exchange: closing the
	// connection ends a blocked write or read.
	stop := context.AfterFunc(ctx, func() { pc.conn.Close() })
	start := pc.written
	started := false // a byte of a response arrived
	fail := func(op string, err error) (*http.Response, error) {
		stop()
		pc.conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
		// Over TLS a failed write may have sent part of a record: only a
		// plain connection proves that nothing left.
		notSent := pc.written == start && pc.tlsIn == nil && !started
		return nil, &h1Error{op: op, notSent: notSent, respStarted: started, err: err}
	}
	werr := req.Write(pc.bw)
	if werr == nil {
		werr = pc.bw.Flush()
	}
	if werr != nil && (!connGone(werr) || pc.written == start) {
		return fail("write request", werr)
	}
	// A backend that closed the connection while the request was written
	// may have answered first (413 to a body it will not read): read that,
	// and close the connection after it.
	if t.header > 0 {
		// The header wait; once bytes arrive, deadlineConn times the reads.
		pc.conn.SetReadDeadline(time.Now().Add(t.header))
	}
	pc.limit = maxResponseHeader
	for n1xx := 0; ; n1xx++ {
		if _, err := pc.br.Peek(1); err != nil {
			if werr != nil && !started {
				return fail("write request", werr)
			}
			return fail("read response", err)
		}
		started = true
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return fail("read response", err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return fail("read response", errSwitched)
			}
			if n1xx >= max1xxResponses {
				return fail("read response", errTooMany1xx)
			}
			continue // an informational response (103 Early Hints): the final one follows
		}
		pc.limit = noLimit
		keep := werr == nil && !resp.Close && !req.Close
		if resp.Body == http.NoBody {
			// HEAD, 204, 304: bytes after the header are not this
			// response's; release finds them buffered, or the check before
			// the next use on the socket.
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

// isTimeout reports whether err is a timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// release returns pc to the pool when keep holds, nothing beyond the
// response is buffered, and the cancellation watch could be stopped before it
// fired; otherwise it closes pc.
func (t *h1Transport) release(pc *h1Conn, stop func() bool, keep bool) {
	if !stop() || !keep || pc.br.Buffered() > 0 {
		pc.conn.Close()
		return
	}
	t.put(pc)
}

// get returns an idle connection for key that has not expired and passes
// the check before reuse, or nil. It closes the connections that fail.
func (t *h1Transport) get(key connKey) *h1Conn {
	for {
		pc := t.pop(key)
		if pc == nil || pc.reusable() {
			return pc
		}
		pc.conn.Close()
	}
}

// pop takes the most recently used idle connection for key that has not
// expired, or returns nil.
func (t *h1Transport) pop(key connKey) *h1Conn {
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

// put keeps pc for reuse, or closes it when maxIdle are kept already or its
// socket cannot be checked before reuse.
func (t *h1Transport) put(pc *h1Conn) {
	if pc.raw == nil && (pc.tlsIn == nil || pc.tlsIn.raw == nil) {
		pc.conn.Close()
		return
	}
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

// Read reads the body; at its end the connection goes back to the pool if
// it may (release), on an error it is closed.
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

// Close closes the connection unless the body was read to its end.
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
// the request reached the backend: the dial or the TLS handshake failed, or
// no byte of the request could be written to a plain connection. The request
// may then be sent to another backend whatever its method, provided its body
// can be produced again.
func requestNotSent(err error) bool {
	if he, ok := errors.AsType[*h1Error](err); ok {
		return he.notSent
	}
	// The fallback's errors: a dial error, or a certificate that failed
	// verification during the handshake. Anything else may have come after
	// bytes were written.
	if isDialError(err) {
		return true
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn)
}

// responseStarted reports whether err, returned by a RoundTrip of the
// balancer's transport, came after some byte of a response had arrived: the
// request is then never sent again.
func responseStarted(err error) bool {
	he, ok := errors.AsType[*h1Error](err)
	return ok && he.respStarted
}
