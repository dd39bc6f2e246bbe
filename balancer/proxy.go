package balancer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/carbonlb/carbonlb/balancer/internal/h1"
)

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

// ServeHTTP routes r to a backend of its service and copies the response
// back. See the package documentation for the rules.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := b.state.Load()
	start := time.Now()
	t := txn{r: r, start: start}
	if b.access.Load() != nil {
		t.reqID = requestID(r)
	}
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 && !servedByEngine(w) {
		// net/http's server removes a Content-Length sent with
		// Transfer-Encoding before the handler sees it, so every chunked
		// HTTP/1 request it serves ends its connection: after one that
		// had both, the connection must not be read further (RFC 9112,
		// section 6.1), or a front proxy that trusted Content-Length
		// would have a second request smuggled through. The balancer's
		// own engine (Server) knows, and closes exactly then.
		w.Header()["Connection"] = valClose
	}
	host := normHost(r.Host)
	tenant, known := st.tenants.Tenant(host, r.URL.Path)
	s := st.router.route(host, tenant, known)
	if s == nil {
		b.fail(w, &t, http.StatusNotFound, st.router.why(host, tenant, known, tenantDomain(r.URL.Path)))
		return
	}
	t.s = s
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
			b.fail(w, &t, http.StatusForbidden, "forbidden\n")
			return
		}
	}
	if s.MaxBodyBytes > 0 && r.ContentLength > s.MaxBodyBytes {
		if r.ProtoMajor == 1 {
			w.Header()["Connection"] = valClose // the body is not read
		}
		b.fail(w, &t, http.StatusRequestEntityTooLarge, "request body too large\n")
		return
	}
	if b.closedState() {
		b.fail(w, &t, http.StatusServiceUnavailable, "balancer closed\n")
		return
	}
	p := st.pools[s.Pool]
	if p == nil {
		b.fail(w, &t, http.StatusServiceUnavailable, "no backend available\n")
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

	upgrade := b.prepareHeaders(r, st, host, peerStr, peer)

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
		t.body = body
		if r.ContentLength > 0 && r.ContentLength <= h1.MaxBufferedBody && upgrade == "" {
			bp := reqBufs.Get().(*[]byte)
			defer reqBufs.Put(bp)
			if _, err := io.ReadFull(body, (*bp)[:r.ContentLength]); err != nil {
				b.clientFault(w, &t, nil, err)
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
			d = b.decide(s, p, sid, token, now.UnixNano(), tried, len(tried) == 0)
			if d.await {
				// The session may be on its way from another instance.
				if !b.shared.await(r.Context(), p.name, sid, s.Sticky.TTL, s.Sticky.Await) && r.Context().Err() != nil {
					b.clientFault(w, &t, nil, r.Context().Err()) // the client went away
				}
				now = time.Now()
				d = b.decide(s, p, sid, token, now.UnixNano(), tried, false)
			}
			if d.backend == nil && d.full {
				var err error
				if d, err = b.await(r.Context(), s, sid, token, tried); err != nil {
					if err != errQueueTimeout && err != errQueueFull {
						b.clientFault(w, &t, nil, err) // the client went away
					}
					b.fail(w, &t, http.StatusServiceUnavailable, err.Error()+"\n")
					return
				}
			}
		}
		be := d.backend
		if be == nil {
			if lastErr != nil {
				b.fail(w, &t, errStatus(lastErr), http.StatusText(errStatus(lastErr))+"\n")
			} else {
				b.fail(w, &t, http.StatusServiceUnavailable, "no backend available\n")
			}
			return
		}
		held = d
		if len(tried) > 0 {
			s.stat.retries.Add(1)
			t.retries++
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
				b.clientFault(w, &t, be, cerr)
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
			b.fail(w, &t, errStatus(err), http.StatusText(errStatus(err))+"\n")
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
				if nd := b.decide(s, p, sid, token, now.UnixNano(), tried, false); nd.backend != nil {
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
			b.serveUpgrade(w, &t, resp, be, d)
			return
		}
		b.copyResponse(w, &t, resp, p, be, d, sid, body)
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
			d = b.decide(s, p, sid, token, time.Now().UnixNano(), tried, false)
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

func (b *Balancer) closedState() bool {
	return b.isClosed.Load()
}
