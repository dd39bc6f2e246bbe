package balancer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync/atomic"
)

// Outcome is what the balancer did with one request, for a middleware that
// wraps the Balancer's handler and wants to know which service and backend
// served it without parsing logs. See WithOutcome.
type Outcome struct {
	// Service and Pool are the service that took the request and its
	// pool; empty when no service matched (404).
	Service, Pool string
	// Backend is the ID of the backend whose response the client got;
	// empty when the balancer answered itself (403, 404, 413, 502, 503,
	// 504, 400, 408) or the client went away first.
	Backend string
	// Sticky is the session outcome: "none", "hit", "miss" or "repin".
	Sticky string
	// Status is the status the client got; 499 when it went away first.
	Status int
	// Retries is the number of tries after the first.
	Retries int
	// BytesIn and BytesOut are the request and response body bytes read
	// from and written to the client.
	BytesIn, BytesOut int64
	// RequestID is the X-Request-ID sent to the backend, when
	// Config.AccessLog is set.
	RequestID string
	// Cut says who cut the response short once its header was sent:
	// "client" (it went away, or stopped reading for longer than the
	// server's write timeout) or "backend" (its body failed: a reset, a
	// stall longer than Timeouts.Read, fewer bytes than it announced).
	// Status is then the status sent, and BytesOut what reached the
	// client. Empty when the response was whole.
	Cut string
}

type outcomeKey struct{}

// WithOutcome returns a shallow copy of r whose context makes the Balancer
// fill the returned Outcome when it serves the request. Read the Outcome
// after ServeHTTP has returned (or panicked with http.ErrAbortHandler, for
// a response cut short); the Balancer writes it on the request's goroutine
// just before it returns.
func WithOutcome(r *http.Request) (*http.Request, *Outcome) {
	o := &Outcome{}
	return r.WithContext(context.WithValue(r.Context(), outcomeKey{}, o)), o
}

func (o *Outcome) fill(t *txn, be *backend, code int, out stickyOutcome) {
	*o = Outcome{Sticky: out.String(), Status: code, Retries: t.retries,
		BytesIn: t.bytesIn(), BytesOut: t.out, RequestID: t.reqID, Cut: t.cut}
	if t.s != nil {
		o.Service, o.Pool = t.s.Name, t.s.Pool
	}
	if be != nil && code != 499 {
		o.Backend = be.id
	}
}

// statusClasses counts responses by status class: [0] 1xx to [4] 5xx.
// A client that went away (499) counts as 4xx, as nginx counts it.
type statusClasses [5]atomic.Uint64

func (c *statusClasses) add(code int) {
	if code >= 100 && code < 600 {
		c[code/100-1].Add(1)
	}
}

// load returns the counts, 1xx first.
func (c *statusClasses) load() [5]uint64 {
	var out [5]uint64
	for i := range c {
		out[i] = c[i].Load()
	}
	return out
}

// requestID returns the request's X-Request-ID, setting a new random one
// (128 bits, hex) when it has none, so that the backend and the access log
// name the request alike.
func requestID(r *http.Request) string {
	if v := r.Header["X-Request-Id"]; len(v) > 0 && v[0] != "" {
		return v[0]
	}
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	r.Header["X-Request-Id"] = []string{id}
	return id
}
