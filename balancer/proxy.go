package balancer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
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
	errBodyLimit = errors.New("balancer: request body too large")
)

// outRequest holds the outgoing request and its URL in one allocation.
type outRequest struct {
	req http.Request
	url url.URL
}

// reqBody wraps the client's request body: it records whether the body was
// read (a request whose body may have been read is never replayed),
// enforces Service.MaxBodyBytes, and ignores Close so the Transport cannot
// close it between tries.
type reqBody struct {
	rc    io.ReadCloser
	read  atomic.Bool
	n     int64
	limit int64
	over  atomic.Bool
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.limit > 0 && b.n > b.limit {
		b.over.Store(true)
		return n, errBodyLimit
	}
	return n, err
}

func (b *reqBody) Close() error { return nil }

// ServeHTTP routes r to a backend of its service and copies the response
// back. See the package documentation for the rules.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := b.state.Load()
	start := time.Now()
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

	var body *reqBody
	outBody := r.Body
	if r.Body != nil && r.Body != http.NoBody {
		body = &reqBody{rc: r.Body, limit: s.MaxBodyBytes}
		outBody = body
	}

	rt := st.transports[s.idx]
	var triedBuf [4]*backend
	tried := triedBuf[:0]
	budget := retryBudget{attempts: s.Retry.Attempts, deadline: start.Add(s.Retry.Timeout).UnixNano()}
	now := start
	var lastErr error
	var next *decision // chosen while deciding whether to retry a FailStatuses response
	for {
		var d decision
		if next != nil {
			d, next = *next, nil
		} else {
			d = b.decide(s, p, sid, token, now.UnixNano(), tried)
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

		be.active.Add(1)
		be.requests.Add(1)
		resp, err := rt.RoundTrip(out)
		if err != nil {
			be.active.Add(-1)
			if r.Context().Err() != nil {
				// The client went away; not the backend's fault.
				b.logAccess(r, s, be, 499, d.outcome, start, err)
				return
			}
			if body != nil && body.over.Load() {
				b.fail(w, r, s, http.StatusRequestEntityTooLarge, "request body too large\n", start)
				return
			}
			now = time.Now()
			b.result(s, be, err, now)
			tried = append(tried, be)
			lastErr = err
			if retryable(err, r.Method, body) && budget.next(now.UnixNano()) {
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
			b.result(s, be, serr, now)
			tried = append(tried, be)
			lastErr = serr
			if retryable(serr, r.Method, body) && budget.next(now.UnixNano()) {
				// Retry only if another backend can take it: else the
				// client gets this response rather than a made-up one.
				if nd := b.decide(s, p, sid, token, now.UnixNano(), tried); nd.backend != nil {
					io.CopyN(io.Discard, resp.Body, 4<<10) // let a small body's connection be reused
					resp.Body.Close()
					be.active.Add(-1)
					next = &nd
					continue
				}
			}
		} else {
			b.result(s, be, nil, now)
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
			be.active.Add(-1)
			return
		}
		b.copyResponse(w, r, resp, s, p, be, d, sid, start)
		be.active.Add(-1)
		return
	}
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
					if u := h["Upgrade"]; len(u) > 0 {
						upgrade = u[0]
					}
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

func quoteForwarded(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '-' || c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
			return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
		}
	}
	return s
}

// retryable says whether a failed try may be repeated on another backend.
func retryable(err error, method string, body *reqBody) bool {
	if body != nil && body.read.Load() {
		return false // the body may be gone: never replay it
	}
	if isDialError(err) {
		return true // nothing reached the backend
	}
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

func (b *Balancer) copyResponse(w http.ResponseWriter, r *http.Request, resp *http.Response, s *service, p *pool, be *backend, d decision, sid string, start time.Time) {
	defer resp.Body.Close()
	wh := w.Header()
	for k, v := range resp.Header {
		wh[k] = v
	}
	removeHop(wh)
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
	var fl http.Flusher
	if flush {
		fl, _ = w.(http.Flusher)
		if fl != nil {
			fl.Flush()
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
		if r.Context().Err() == nil {
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
