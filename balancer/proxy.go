package balancer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Hop-by-hop headers, removed in both directions (RFC 9110, section 7.6.1).
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection", // non-standard, sent by some clients
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te", // canonicalized "TE"
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

var (
	valHTTP      = []string{"http"}
	valHTTPS     = []string{"https"}
	valEmpty     = []string{""}
	valTrailers  = []string{"trailers"}
	valUpgrade   = []string{"Upgrade"}
	valClose     = []string{"close"}
	errBodyLimit = errors.New("balancer: request body too large")
)

// outRequest holds the outgoing request, its URL and its buffered body
// in one allocation.
type outRequest struct {
	req  http.Request
	url  url.URL
	body bufBody
}

// reqBody wraps the client's request body: it records whether the body was
// read (a streamed body that may have been read is never replayed) and the
// client's fault if reading failed, enforces Service.MaxBodyBytes and
// Service.ClientBodyTimeout, and ignores Close so the Transport cannot close
// it between tries. Read runs on the transport's goroutine; read and fault
// are read by the handler's.
type reqBody struct {
	rc      io.ReadCloser
	ctl     *http.ResponseController // sets the client connection's read deadline; nil: no timeout
	timeout time.Duration            // Service.ClientBodyTimeout
	next    time.Time                // when the read deadline must next be moved; zero: none set
	n       int64
	limit   int64
	read    atomic.Bool
	fault   atomic.Pointer[error] // what went wrong on the client's side
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	if b.ctl != nil {
		// Bound the time to the next bytes. To save a timer update per
		// read, the deadline moves at most every 1/16 of the timeout.
		if now := time.Now(); !now.Before(b.next) {
			if b.ctl.SetReadDeadline(now.Add(b.timeout)) != nil {
				b.ctl = nil // not supported by this ResponseWriter
			} else {
				b.next = now.Add(b.timeout / 16)
			}
		}
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.limit > 0 && b.n > b.limit {
		err = errBodyLimit
	}
	switch err {
	case nil:
	case io.EOF:
		if b.ctl != nil && !b.next.IsZero() {
			// The whole body is in. Lift the deadline: the server's
			// read for the next request (or for the client going away)
			// must not inherit it.
			b.ctl.SetReadDeadline(time.Time{})
			b.next = time.Time{}
		}
	default:
		b.fault.CompareAndSwap(nil, &err)
	}
	return n, err
}

func (b *reqBody) Close() error { return nil }

// clientErr returns the client's fault in reading the body, or nil.
func (b *reqBody) clientErr() error {
	if b == nil {
		return nil
	}
	if e := b.fault.Load(); e != nil {
		return *e
	}
	return nil
}

// bufBody is the buffered body of one try.
type bufBody struct{ bytes.Reader }

func (*bufBody) Close() error { return nil }

// reqBufs holds buffers of maxBufferedBody bytes for request bodies read
// whole before a backend is chosen.
var reqBufs = sync.Pool{New: func() any { b := make([]byte, maxBufferedBody); return &b }}

// ServeHTTP routes r to a backend of its service and copies the response
// back. See the package documentation for the rules.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := b.state.Load()
	start := time.Now()
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// net/http's server removes a Content-Length sent with
		// Transfer-Encoding before the handler sees it, so every chunked
		// HTTP/1 request ends its connection: after one that had both,
		// the connection must not be read further (RFC 9112, section
		// 6.1), or a front proxy that trusted Content-Length would have
		// a second request smuggled through.
		w.Header()["Connection"] = valClose
	}
	host := normHost(r.Host)
	tenant, known := st.tenants.Tenant(host, r.URL.Path)
	s := st.router.route(host, tenant, known)
	if s == nil {
		b.fail(w, r, nil, http.StatusNotFound, "no service for this host\n", start)
		return
	}
	s.stat.requests.Add(1)
	s.stat.active.Add(1)
	defer s.stat.active.Add(-1)

	peerStr, peer := splitPeer(r.RemoteAddr)
	if len(s.AllowCIDRs) > 0 {
		client := peer
		if len(st.trusted) > 0 {
			client = clientAddr(peer, r.Header["X-Forwarded-For"], r.Header["Forwarded"], st.trusted)
		}
		if !s.allowed(client) {
			b.fail(w, r, s, http.StatusForbidden, "forbidden\n", start)
			return
		}
	}
	if s.MaxBodyBytes > 0 && r.ContentLength > s.MaxBodyBytes {
		if r.ProtoMajor == 1 {
			w.Header()["Connection"] = valClose // the body is not read
		}
		b.fail(w, r, s, http.StatusRequestEntityTooLarge, "request body too large\n", start)
		return
	}
	if b.closedState() {
		b.fail(w, r, s, http.StatusServiceUnavailable, "balancer closed\n", start)
		return
	}
	p := st.pools[s.Pool]
	if p == nil {
		b.fail(w, r, s, http.StatusServiceUnavailable, "no backend available\n", start)
		return
	}

	var sid, token string
	switch s.Sticky.Mode {
	case StickyLearn:
		sid = sessionFromCookies(r.Header["Cookie"], s.Sticky.Cookie)
		if sid == "" {
			sid = sessionFromPath(r.URL.Path, s.Sticky.PathParam)
		}
	case StickyInsert:
		token = sessionFromCookies(r.Header["Cookie"], s.Sticky.Insert.Name)
	}

	upgrade := b.prepareHeaders(r, st, peerStr, peer)

	// A small body of known length is read whole before a backend is
	// chosen, as nginx's proxy_request_buffering does: a slow or broken
	// upload holds no backend connection and is never blamed on a
	// backend, and the body can be sent again if a try fails before any
	// of it reached a backend. A larger or chunked body is streamed.
	var body *reqBody
	var buffered []byte
	outBody := r.Body
	if r.Body != nil && r.Body != http.NoBody {
		body = &reqBody{rc: r.Body, limit: s.MaxBodyBytes, timeout: s.ClientBodyTimeout, ctl: http.NewResponseController(w)}
		outBody = body
		if r.ContentLength > 0 && r.ContentLength <= maxBufferedBody && upgrade == "" {
			bp := reqBufs.Get().(*[]byte)
			defer reqBufs.Put(bp)
			if _, err := io.ReadFull(body, (*bp)[:r.ContentLength]); err != nil {
				b.clientFault(w, r, s, nil, err, start)
				return
			}
			buffered = (*bp)[:r.ContentLength]
			delete(r.Header, "Expect") // the body is here: the backend need not ask for it
		}
	}

	rt := st.transports[s.idx]
	var triedBuf [4]*backend
	tried := triedBuf[:0]
	budget := retryBudget{attempts: s.Retry.Attempts, deadline: start.Add(s.Retry.Timeout).UnixNano()}
	now := start
	var lastErr error
	var next *decision // chosen while deciding whether to retry a FailStatuses response
	// held is the try whose backend slot this request holds; it is given
	// back exactly once, whichever way the request ends (a response cut
	// after its header ends the handler with a panic).
	var held decision
	defer func() {
		if held.backend != nil {
			held.backend.release(held.trial)
		}
	}()
	for {
		var d decision
		if next != nil {
			d, next = *next, nil
		} else {
			d = b.decide(s, p, sid, token, now.UnixNano(), tried)
			if d.backend == nil && d.full {
				var err error
				if d, err = b.await(r.Context(), s, sid, token, tried); err != nil {
					if err != errQueueTimeout && err != errQueueFull {
						b.clientFault(w, r, s, nil, err, start) // the client went away
					}
					b.fail(w, r, s, http.StatusServiceUnavailable, err.Error()+"\n", start)
					return
				}
			}
		}
		be := d.backend
		if be == nil {
			if lastErr != nil {
				b.fail(w, r, s, errStatus(lastErr), http.StatusText(errStatus(lastErr))+"\n", start)
			} else {
				b.fail(w, r, s, http.StatusServiceUnavailable, "no backend available\n", start)
			}
			return
		}
		held = d
		if len(tried) > 0 {
			s.stat.retries.Add(1)
		}
		o := &outRequest{}
		o.req = *r
		o.url = url.URL{Scheme: be.scheme, Host: be.host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
		out := &o.req
		out.URL = &o.url
		out.RequestURI = ""
		out.Body = outBody
		out.Close = false
		out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
		out.GetBody = nil
		if buffered != nil {
			o.body.Reset(buffered)
			out.Body = &o.body
			out.GetBody = o.getBody(buffered)
		}

		be.requests.Add(1)
		resp, err := rt.RoundTrip(out)
		if err != nil {
			if cerr := body.clientErr(); cerr != nil || r.Context().Err() != nil {
				// The client broke its side: no backend is to blame.
				b.clientFault(w, r, s, be, cerr, start)
				return
			}
			now = time.Now()
			b.result(s, be, d.trial, err, now)
			be.release(d.trial)
			held = decision{}
			tried = append(tried, be)
			lastErr = err
			if retryable(err, r.Method, body == nil || buffered != nil || !body.read.Load()) && budget.next(now.UnixNano()) {
				continue
			}
			b.fail(w, r, s, errStatus(err), http.StatusText(errStatus(err))+"\n", start)
			b.log().LogAttrs(r.Context(), slog.LevelDebug, "balancer: backend error",
				slog.String("service", s.Name), slog.String("backend", be.id), slog.String("err", err.Error()))
			return
		}
		if len(s.Health.FailStatuses) > 0 && slices.Contains(s.Health.FailStatuses, resp.StatusCode) {
			now = time.Now()
			serr := statusError(resp.StatusCode)
			b.result(s, be, d.trial, serr, now)
			tried = append(tried, be)
			lastErr = serr
			if retryable(serr, r.Method, body == nil || buffered != nil || !body.read.Load()) && budget.next(now.UnixNano()) {
				// Retry only if another backend can take it: else the
				// client gets this response rather than a made-up one.
				if nd := b.decide(s, p, sid, token, now.UnixNano(), tried); nd.backend != nil {
					io.CopyN(io.Discard, resp.Body, 4<<10) // let a small body's connection be reused
					resp.Body.Close()
					be.release(d.trial)
					held = nd
					next = &nd
					continue
				}
			}
		} else {
			b.result(s, be, d.trial, nil, now)
		}
		switch d.outcome {
		case stickyHit:
			s.stat.hits.Add(1)
		case stickyMiss:
			s.stat.misses.Add(1)
		case stickyRepin:
			s.stat.repins.Add(1)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols && upgrade != "" {
			b.serveUpgrade(w, r, resp, s, be, d, start)
			return
		}
		b.copyResponse(w, r, resp, s, p, be, d, sid, body, start)
		return
	}
}

// getBody returns out.GetBody for a buffered body.
func (o *outRequest) getBody(buf []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		return &bufBody{Reader: *bytes.NewReader(buf)}, nil
	}
}

var (
	errQueueFull    = errors.New("no backend available: queue full")
	errQueueTimeout = errors.New("no backend available: timed out in the queue")
)

// await queues a request for which every backend that would do is at its
// connection limit until decide gives it one, the queue timeout passes
// (errQueueTimeout), the queue is full (errQueueFull) or ctx ends. A
// decision without a backend and not full (every backend went down or
// left meanwhile) is returned as it is.
func (b *Balancer) await(ctx context.Context, s *service, sid, token string, tried []*backend) (decision, error) {
	st := b.state.Load()
	p := st.pools[s.Pool]
	if p == nil {
		return decision{}, nil
	}
	q := p.queue
	s.stat.queued.Add(1)
	timer := time.NewTimer(s.Queue.Timeout)
	defer timer.Stop()
	head := false
	for {
		ch := q.add(head, s.Queue.Max)
		if ch == nil {
			q.rejected.Add(1)
			return decision{}, errQueueFull
		}
		// Route again once queued: a slot freed before add would not
		// have woken this request.
		var d decision
		if p = b.state.Load().pools[s.Pool]; p != nil && !b.closedState() {
			d = b.decide(s, p, sid, token, time.Now().UnixNano(), tried)
		}
		if d.backend != nil || !d.full {
			if !q.remove(ch) {
				q.wakeOne() // woken meanwhile: pass the wake-up on
			}
			return d, nil
		}
		select {
		case <-ch:
			head = true
		case <-timer.C:
			if !q.remove(ch) {
				q.wakeOne()
			}
			q.timeouts.Add(1)
			return decision{}, errQueueTimeout
		case <-ctx.Done():
			if !q.remove(ch) {
				q.wakeOne()
			}
			return decision{}, ctx.Err()
		}
	}
}

// clientFault ends a request whose client broke its side of the exchange
// (a malformed or truncated body, a body over MaxBodyBytes, a stall longer
// than ClientBodyTimeout, or the client gone): 400, 413 or 408 with the
// connection closed, or, when the client is gone, no response at all (the
// handler is aborted, as net/http provides) and an access-log record with
// status 499. No backend is blamed; be, if not nil, is the backend the
// request was being sent to.
func (b *Balancer) clientFault(w http.ResponseWriter, r *http.Request, s *service, be *backend, err error, start time.Time) {
	code := clientStatus(err)
	if code == 499 {
		b.logAccess(r, s, be, 499, stickyNone, start, err)
		panic(http.ErrAbortHandler)
	}
	if r.ProtoMajor == 1 {
		w.Header()["Connection"] = valClose // the rest of the body is not read
	}
	b.fail(w, r, s, code, http.StatusText(code)+"\n", start)
}

// clientStatus maps an error reading the client's request body to the
// status the client gets: 413 over MaxBodyBytes, 408 for a stall, 499 (no
// response: the client is gone) for a body cut short, 400 otherwise
// (malformed chunked framing).
func clientStatus(err error) int {
	var ne net.Error
	var mb *http.MaxBytesError
	switch {
	case err == nil:
		return 499
	case errors.Is(err, errBodyLimit) || errors.As(err, &mb):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return http.StatusRequestTimeout
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || connGone(err):
		return 499
	}
	return http.StatusBadRequest
}

func (b *Balancer) closedState() bool {
	return b.isClosed.Load()
}

// splitPeer splits RemoteAddr's host part without allocating.
func splitPeer(ra string) (string, netip.Addr) {
	h := ra
	if i := strings.LastIndexByte(ra, ':'); i >= 0 {
		h = ra[:i]
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	a, _ := netip.ParseAddr(h)
	return h, a
}

// prepareHeaders rewrites r.Header in place for the backend (the handler
// owns the request; the server no longer reads it) and returns the Upgrade
// protocol if the request asks for one.
func (b *Balancer) prepareHeaders(r *http.Request, st *state, peerStr string, peer netip.Addr) string {
	h := r.Header
	var upgrade string
	if c := h["Connection"]; len(c) > 0 {
		for _, v := range c {
			for _, tok := range strings.Split(v, ",") {
				tok = textproto.TrimString(tok)
				if tok == "" {
					continue
				}
				if strings.EqualFold(tok, "upgrade") {
					upgrade = allowedUpgrade(h["Upgrade"], st.upgrades)
				}
				delete(h, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
	te := false
	if v := h["Te"]; len(v) > 0 {
		for _, x := range v {
			te = te || strings.Contains(strings.ToLower(x), "trailers")
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	if te {
		h["Te"] = valTrailers
	}
	if upgrade != "" {
		h["Connection"] = valUpgrade
		h["Upgrade"] = []string{upgrade}
	}
	trusted := len(st.trusted) > 0 && inPrefixes(peer, st.trusted)
	if prior := h["X-Forwarded-For"]; trusted && len(prior) > 0 {
		h["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + peerStr}
	} else if len(prior) == 1 {
		prior[0] = peerStr
	} else {
		h["X-Forwarded-For"] = []string{peerStr}
	}
	if !trusted || len(h["X-Forwarded-Host"]) == 0 {
		h["X-Forwarded-Host"] = []string{r.Host}
	}
	if !trusted || len(h["X-Forwarded-Proto"]) == 0 {
		if r.TLS != nil {
			h["X-Forwarded-Proto"] = valHTTPS
		} else {
			h["X-Forwarded-Proto"] = valHTTP
		}
	}
	h["X-Forwarded-Server"] = st.serverVal
	if !trusted {
		delete(h, "Forwarded") // a client's own claim, as X-Forwarded-For above
	}
	if st.forwarded {
		proto := "http"
		if r.TLS != nil {
			proto = "https"
		}
		node := peerStr
		if peer.Is6() && !peer.Is4In6() {
			node = `"[` + peerStr + `]"`
		}
		v := "for=" + node + ";host=" + quoteForwarded(r.Host) + ";proto=" + proto
		if prior := h["Forwarded"]; trusted && len(prior) > 0 {
			v = strings.Join(prior, ", ") + ", " + v
		}
		h["Forwarded"] = []string{v}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = valEmpty // keep net/http from adding its own
	}
	return upgrade
}

// allowedUpgrade returns the protocols of an Upgrade header that allowed
// (Config.Upgrades, lower case) holds, comma-separated, or "".
func allowedUpgrade(vals, allowed []string) string {
	var out string
	for _, v := range vals {
		for _, tok := range strings.Split(v, ",") {
			tok = textproto.TrimString(tok)
			name, _, _ := strings.Cut(tok, "/") // "websocket", "h2c", "TLS/1.2"
			if tok != "" && slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, name) }) {
				if out != "" {
					out += ", "
				}
				out += tok
			}
		}
	}
	return out
}

func quoteForwarded(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '-' || c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
			return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
		}
	}
	return s
}

// retryable says whether a failed try may be repeated on another backend;
// replayable says that the request has no body, or one that can be sent
// again whole (buffered, or streamed but not read yet). The rules, in
// docs/balancer.md: a request none of which reached a backend is sent
// again whatever its method; an idempotent one (RFC 9110, section 9.2.2)
// also when no byte of a response arrived, or when the response was a
// FailStatuses status; a POST or PATCH whose bytes may have reached a
// backend, never.
func retryable(err error, method string, replayable bool) bool {
	if !replayable {
		return false
	}
	if requestNotSent(err) {
		return true
	}
	if !idempotent(method) {
		return false
	}
	if _, ok := err.(statusError); ok {
		return true
	}
	return !responseStarted(err)
}

// idempotent reports whether a method is idempotent (RFC 9110, section
// 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// statusError is a response status counted as a failure
// (HealthCheck.FailStatuses).
type statusError int

func (e statusError) Error() string {
	return "status " + strconv.Itoa(int(e)) + " " + http.StatusText(int(e))
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func errStatus(err error) int {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// fail answers a request the balancer could not forward.
func (b *Balancer) fail(w http.ResponseWriter, r *http.Request, s *service, code int, msg string, start time.Time) {
	if s != nil {
		s.stat.errors.Add(1)
	}
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(code)
	io.WriteString(w, msg)
	b.logAccess(r, s, nil, code, stickyNone, start, nil)
}

func (b *Balancer) logAccess(r *http.Request, s *service, be *backend, code int, out stickyOutcome, start time.Time, err error) {
	ctx := r.Context()
	if !b.log().Enabled(ctx, slog.LevelDebug) {
		return
	}
	svc, bid := "", ""
	if s != nil {
		svc = s.Name
	}
	if be != nil {
		bid = be.id
	}
	attrs := []slog.Attr{
		slog.String("service", svc), slog.String("backend", bid),
		slog.String("method", r.Method), slog.String("host", r.Host), slog.String("path", r.URL.Path),
		slog.Int("status", code), slog.Duration("duration", time.Since(start)),
		slog.String("sticky", out.String()), slog.String("client", r.RemoteAddr),
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	b.log().LogAttrs(ctx, slog.LevelDebug, "access", attrs...)
}

// removeHop deletes hop-by-hop headers from a response header.
func removeHop(h http.Header) {
	if c := h["Connection"]; len(c) > 0 {
		for _, v := range c {
			for _, tok := range strings.Split(v, ",") {
				if tok = textproto.TrimString(tok); tok != "" {
					delete(h, textproto.CanonicalMIMEHeaderKey(tok))
				}
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// copyResponse sends resp to the client. body is the client's streamed
// request body, or nil.
func (b *Balancer) copyResponse(w http.ResponseWriter, r *http.Request, resp *http.Response, s *service, p *pool, be *backend, d decision, sid string, body *reqBody, start time.Time) {
	defer resp.Body.Close()
	wh := w.Header()
	closeConn := len(wh["Connection"]) > 0 // set by ServeHTTP
	for k, v := range resp.Header {
		wh[k] = v
	}
	removeHop(wh)
	if closeConn {
		wh["Connection"] = valClose
	}
	// Add no header the backend did not send: a nil value keeps net/http's
	// server from sniffing a Content-Type and from adding a Date.
	if _, ok := resp.Header["Content-Type"]; !ok {
		wh["Content-Type"] = nil
	}
	if _, ok := resp.Header["Date"]; !ok {
		wh["Date"] = nil
	}
	switch s.Sticky.Mode {
	case StickyLearn:
		for _, line := range wh["Set-Cookie"] {
			v, ok := sessionFromSetCookie(line, s.Sticky.Cookie)
			if !ok {
				continue
			}
			if v == "" || expiresNow(line) {
				b.sessions.Forget(p.name, v)
				continue
			}
			if v != sid || d.outcome != stickyHit {
				b.pin(p.name, v, be.id, s.Sticky.TTL, start.UnixNano())
			}
		}
	case StickyInsert:
		if d.pin {
			c := s.setCookieKV + *be.token.Load() + s.cookieAttrs
			if ins := s.Sticky.Insert.Secure; ins == SecureAlways || (ins == SecureAuto && r.TLS != nil) {
				c += "; Secure"
			}
			wh["Set-Cookie"] = append(wh["Set-Cookie"], c)
		}
	}
	w.WriteHeader(resp.StatusCode)
	flush := resp.ContentLength == -1 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	var fl *http.ResponseController // finds the Flusher through wrappers that offer Unwrap
	if flush {
		fl = http.NewResponseController(w)
		if fl.Flush() != nil {
			fl = nil
		}
	}
	bp := b.bufs.Get().(*[]byte)
	buf := *bp
	var rerr error
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				break // the client went away
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	b.bufs.Put(bp)
	for k, vv := range resp.Trailer {
		wh[http.TrailerPrefix+k] = vv
	}
	dur := time.Since(start)
	be.lat.add(dur)
	if rerr != nil {
		// The response is cut (a stall longer than Timeouts.Read, a reset):
		// abort the client's connection so it sees an incomplete response
		// rather than a short one. It counts as a backend error unless the
		// client went away; as with nginx, whose max_fails counts only
		// failures up to the response header, it does not count towards
		// MaxFails.
		if r.Context().Err() == nil && body.clientErr() == nil {
			be.failures.Add(1)
			be.mu.Lock()
			be.lastErr = rerr.Error()
			be.mu.Unlock()
		}
		b.logAccess(r, s, be, resp.StatusCode, d.outcome, start, rerr)
		panic(http.ErrAbortHandler)
	}
	b.logAccess(r, s, be, resp.StatusCode, d.outcome, start, nil)
}

// expiresNow reports whether a Set-Cookie line deletes the cookie.
func expiresNow(line string) bool {
	l := strings.ToLower(line)
	return strings.Contains(l, "max-age=0") || strings.Contains(l, "max-age=-")
}

// serveUpgrade relays a protocol switch (WebSocket) both ways.
func (b *Balancer) serveUpgrade(w http.ResponseWriter, r *http.Request, resp *http.Response, s *service, be *backend, d decision, start time.Time) {
	back, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		b.fail(w, r, s, http.StatusBadGateway, "backend switched protocols without a connection\n", start)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		back.Close()
		b.fail(w, r, s, http.StatusInternalServerError, "cannot upgrade this connection\n", start)
		return
	}
	if !b.trackUpgrade(conn, back) {
		conn.Close()
		back.Close()
		return
	}
	defer b.untrackUpgrade(conn, back)
	defer conn.Close()
	defer back.Close()
	h := resp.Header.Clone()
	for _, k := range hopHeaders {
		if k != "Connection" && k != "Upgrade" {
			delete(h, k)
		}
	}
	resp.Header = h
	resp.Body = nil
	if err := resp.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	b.logAccess(r, s, be, http.StatusSwitchingProtocols, d.outcome, start, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyClose(back, brw.Reader)
	}()
	io.Copy(conn, back)
	conn.Close()
	back.Close()
	<-done
}

// copyClose copies until src ends, then half-closes dst if it can.
func copyClose(dst io.Writer, src *bufio.Reader) {
	io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
