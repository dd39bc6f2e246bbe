package balancer

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// txn is one request's account: what the access log, the status counters
// and an Outcome say of it. It lives on ServeHTTP's stack.
type txn struct {
	r       *http.Request
	s       *service // nil until a service is found
	start   time.Time
	retries int      // tries after the first
	body    *reqBody // the client's request body, or nil
	out     int64    // response body bytes written to the client
	reqID   string   // X-Request-ID, with Config.AccessLog
	cut     string   // who cut the response short after its header: "client", "backend" or ""
}

// bytesIn returns the request body bytes read from the client so far.
func (t *txn) bytesIn() int64 {
	if t.body == nil {
		return 0
	}
	return t.body.n.Load()
}

// fail answers a request the balancer could not forward.
func (b *Balancer) fail(w http.ResponseWriter, t *txn, code int, msg string) {
	if t.s != nil {
		t.s.stat.errors.Add(1)
	}
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(code)
	n, _ := io.WriteString(w, msg)
	t.out += int64(n)
	b.logAccess(t, nil, code, stickyNone, nil)
}

// logAccess ends the account of a request answered with code (499: the
// client went away): the status counters, the Outcome a middleware asked
// for, the access log (Config.AccessLog, at Info) and the debug log.
func (b *Balancer) logAccess(t *txn, be *backend, code int, out stickyOutcome, err error) {
	r := t.r
	if t.s != nil {
		t.s.stat.codes.add(code)
	}
	if be != nil {
		be.codes.add(code)
	}
	ctx := r.Context()
	if o, ok := ctx.Value(outcomeKey{}).(*Outcome); ok {
		o.fill(t, be, code, out)
	}
	al := b.access.Load()
	debug := b.log().Enabled(ctx, slog.LevelDebug)
	if al == nil && !debug {
		return
	}
	svc, bid := "", ""
	if t.s != nil {
		svc = t.s.Name
	}
	if be != nil {
		bid = be.id
	}
	attrs := []slog.Attr{
		slog.String("client", r.RemoteAddr), slog.String("host", r.Host),
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", code), slog.Int64("bytes_in", t.bytesIn()), slog.Int64("bytes_out", t.out),
		slog.Duration("duration", time.Since(t.start)),
		slog.String("service", svc), slog.String("backend", bid),
		slog.String("sticky", out.String()), slog.Int("retries", t.retries),
	}
	if t.reqID != "" {
		attrs = append(attrs, slog.String("request_id", t.reqID))
	}
	if t.cut != "" {
		attrs = append(attrs, slog.String("cut", t.cut))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	if al != nil {
		al.LogAttrs(ctx, slog.LevelInfo, "access", attrs...)
	}
	if debug {
		b.log().LogAttrs(ctx, slog.LevelDebug, "access", attrs...)
	}
}

// copyResponse sends resp to the client. body is the client's streamed
// request body, or nil.
func (b *Balancer) copyResponse(w http.ResponseWriter, t *txn, resp *http.Response, p *pool, be *backend, d decision, sid string, body *reqBody) {
	r, s, start := t.r, t.s, t.start
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
			if (v != sid || d.outcome != stickyHit) && (be.route == "" || routeOf(v) != be.route) {
				// (An id that carries this backend's route needs no pin.)
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
	var rerr, werr error
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			var m int
			m, werr = w.Write(buf[:n])
			t.out += int64(m)
			if werr != nil {
				break // the client went away, or stopped reading
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
		t.cut = "client"
		if r.Context().Err() == nil && body.clientErr() == nil {
			t.cut = "backend"
			be.failures.Add(1)
			be.mu.Lock()
			be.lastErr = rerr.Error()
			be.mu.Unlock()
		}
		b.logAccess(t, be, resp.StatusCode, d.outcome, rerr)
		panic(http.ErrAbortHandler)
	}
	if werr != nil {
		// The status was sent and stays the one logged, as nginx logs it;
		// the record says the client cut the response.
		t.cut = "client"
		b.logAccess(t, be, resp.StatusCode, d.outcome, werr)
		return
	}
	b.logAccess(t, be, resp.StatusCode, d.outcome, nil)
}

// serveUpgrade relays a protocol switch (WebSocket) both ways.
func (b *Balancer) serveUpgrade(w http.ResponseWriter, t *txn, resp *http.Response, be *backend, d decision) {
	back, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		b.fail(w, t, http.StatusBadGateway, "backend switched protocols without a connection\n")
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		back.Close()
		b.fail(w, t, http.StatusInternalServerError, "cannot upgrade this connection\n")
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
	b.logAccess(t, be, http.StatusSwitchingProtocols, d.outcome, nil)
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
