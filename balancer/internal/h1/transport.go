package h1

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// Transport is the balancer's HTTP/1.1 client, an http.RoundTripper. A
// request without a body or with a small replayable one of known length —
// the usual GET, and the usual SOAP or form POST, which the balancer
// buffers before it picks a backend — is written and its response read on
// the calling goroutine over a pooled keep-alive connection (TLS for https
// backends): no goroutine per connection and no hand-off between
// goroutines per request, which is where net/http's Transport spends most
// of its time under this load. The rest — bodies of unknown length, over
// MaxBufferedBody or without GetBody (a backend may answer before reading
// them, which needs writing and reading at once), protocol upgrades and
// Expect: 100-continue — goes to Fallback; so does every request when
// Enabled is false.
//
// Connection reuse (docs/balancer.md, "Connection reuse"): a connection
// goes back to the pool only when its response was read exactly to its
// end, the request was written whole, neither side asked to close, and
// nothing more is buffered; before a pooled connection carries a request,
// one non-blocking receive checks that nothing has arrived on it since and
// that the backend has not closed it. A connection that fails the check is
// closed and the next one tried: nothing was written to it.
//
// A request is written again on another connection to the same backend
// only when the connection was a reused one and either no byte of the
// request reached the socket, or the request is idempotent (GET, HEAD,
// OPTIONS, TRACE: net/http's rule) and the backend closed the connection
// before any byte of a response. A POST whose bytes were written is never
// written again. Errors carry what they prove (RequestNotSent,
// ResponseStarted) for the balancer's choice of trying another backend.
//
// The fields must not be changed once the Transport is in use. A
// Transport is safe for concurrent use.
type Transport struct {
	// Dial makes a connection to a backend. A wrapper of the connection
	// it returns must have a NetConn() net.Conn method returning the
	// connection it wraps, for the check before reuse to reach the socket;
	// a connection whose socket cannot be reached is not pooled. Nil
	// means a zero net.Dialer's DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// TLSConfig is the TLS configuration for https backends; ServerName,
	// when empty, is the URL's host, and NextProtos is always http/1.1
	// only. Nil means the defaults.
	TLSConfig *tls.Config

	// HandshakeTimeout bounds a TLS handshake. Zero means no bound but the
	// request's context.
	HandshakeTimeout time.Duration

	// Fallback sends the requests Transport does not send itself; it
	// should have the same dialer and TLS configuration. It must not be
	// nil.
	Fallback *http.Transport

	// MaxIdlePerHost is the number of idle connections kept per backend
	// address. Zero means none: every connection is closed after its
	// response.
	MaxIdlePerHost int

	// IdleTimeout is how long an idle connection is kept; it is closed
	// then even when no request comes to find it. Zero means an idle
	// connection is never reused.
	IdleTimeout time.Duration

	// HeaderTimeout bounds the wait for a response header once the request
	// is written. Zero means no bound but the request's context.
	HeaderTimeout time.Duration

	mu    sync.Mutex // protects the fields below
	idle  map[connKey][]*persistConn
	sweep *time.Timer // pending sweep of expired idle connections, or nil
}

var _ http.RoundTripper = (*Transport)(nil)

// MaxResponseHeader bounds a backend's response header, informational
// responses before it included (net/http's Transport allows 10 MB; nginx,
// with its default buffers, 4 or 8 KB). The balancer gives its Fallback
// the same bound (MaxResponseHeaderBytes).
const MaxResponseHeader = 1 << 20

// MaxBufferedBody is the largest request body Transport sends itself, and
// the largest the balancer buffers.
const MaxBufferedBody = 64 << 10

// max1xxResponses bounds the informational responses before a final one,
// as net/http's Transport does (its max1xxResponses).
const max1xxResponses = 5

// maxTries bounds the exchanges one RoundTrip makes on the connections of
// a backend (each after a reused connection failed in a way that allows
// writing the request again).
const maxTries = 5

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
// end. RequestNotSent and ResponseStarted tell what its errors prove.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	scheme := req.URL.Scheme
	hasBody := req.Body != nil && req.Body != http.NoBody
	// Refused here for both ways out, so that the error is the same, and
	// says that nothing was sent.
	if err := checkOutgoing(req); err != nil {
		if hasBody {
			req.Body.Close()
		}
		return nil, &roundTripError{op: "write request", notSent: true, err: err}
	}
	if !Enabled || (scheme != "http" && scheme != "https") ||
		(hasBody && (req.GetBody == nil || req.ContentLength <= 0 || req.ContentLength > MaxBufferedBody)) ||
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
				return nil, &roundTripError{op: "connect", notSent: !sent, err: err}
			}
			pc, reused = newPersistConn(key, c, ts), false
		}
		if try > 1 && hasBody {
			body, err := req.GetBody()
			if err != nil {
				t.put(pc) // unused
				return nil, &roundTripError{op: "rewind request body", notSent: !sent, err: err}
			}
			r := *req
			r.Body = body
			out = &r
		}
		resp, err := t.exchange(ctx, pc, out, reused)
		if err == nil {
			return resp, nil
		}
		he := err.(*roundTripError)
		he.notSent = he.notSent && !sent
		sent = sent || !he.notSent
		if ctx.Err() != nil || !reused || try >= maxTries {
			return nil, err
		}
		// A reused connection: it may have been closed by the backend
		// while idle, after the check before this try.
		if he.notSent || (rewritable(req.Method) && !he.respStarted && ConnGone(he.err) && !isTimeout(he.err)) {
			continue
		}
		return nil, err
	}
}

// roundTripFallback sends req with the net/http Transport, and marks its
// error when a byte of a response had arrived (httptrace's
// GotFirstResponseByte), for ResponseStarted.
func (t *Transport) roundTripFallback(req *http.Request) (*http.Response, error) {
	var got atomic.Bool
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { got.Store(true) }}
	resp, err := t.Fallback.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err != nil && got.Load() {
		return nil, &roundTripError{op: "read response", respStarted: true, err: err}
	}
	return resp, err
}

// connect dials addr and, for https, completes a TLS handshake that offers
// HTTP/1.1 only, verifying the certificate for host unless the TLS
// configuration names another server. For https it also returns the socket
// under the TLS connection.
func (t *Transport) connect(ctx context.Context, scheme, addr, host string) (net.Conn, *tlsSocket, error) {
	dial := t.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	c, err := dial(ctx, "tcp", addr)
	if err != nil || scheme != "https" {
		return c, nil, err
	}
	var cfg *tls.Config
	if t.TLSConfig != nil {
		cfg = t.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	hctx := ctx
	if t.HandshakeTimeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, t.HandshakeTimeout)
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
// closed and the error is a *roundTripError.
func (t *Transport) exchange(ctx context.Context, pc *persistConn, req *http.Request, reused bool) (*http.Response, error) {
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
		return nil, &roundTripError{op: op, notSent: notSent, respStarted: started, err: err}
	}
	werr := writeRequest(pc.bw, req)
	if werr == nil {
		werr = pc.bw.Flush()
	}
	if werr != nil && (!ConnGone(werr) || pc.written == start) {
		return fail("write request", werr)
	}
	// A backend that closed the connection while the request was written
	// may have answered first (413 to a body it will not read): read that,
	// and close the connection after it.
	if t.HeaderTimeout > 0 {
		// The header wait; once bytes arrive, the dialer's connection may
		// time the reads itself.
		pc.conn.SetReadDeadline(time.Now().Add(t.HeaderTimeout))
	}
	pc.limit = MaxResponseHeader
	for n1xx := 0; ; n1xx++ {
		if _, err := pc.br.Peek(1); err != nil {
			if werr != nil && !started {
				return fail("write request", werr)
			}
			return fail("read response", err)
		}
		started = true
		resp, err := readResponse(pc.br, req)
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
		resp.Body = &respBody{t: t, pc: pc, body: resp.Body, stop: stop, keep: keep}
		return resp, nil
	}
}
