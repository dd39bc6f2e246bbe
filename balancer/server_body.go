package balancer

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/carbonlb/carbonlb/balancer/internal/h1"
)

// maxDiscard is how much of a request body the handler left unread the
// engine reads and drops to keep the connection, as net/http's server
// (its maxPostHandlerReadBytes); with more left it closes the connection.
const maxDiscard = 256 << 10

// serverBody is a request's body as the handler reads it. Read may run
// on another goroutine than the handler's (a Transport's writing the
// request to a backend), and may outlive ServeHTTP: the mutex serialises
// it with what the connection does with the body when the response is
// written and after ServeHTTP (discard it, or end its use).
type serverBody struct {
	c  *conn
	mu sync.Mutex    // serialises Read, discardRest and finish
	rc io.ReadCloser // h1.NewBody's reader; nil for a request without a body

	// Guarded by mu.
	expect bool  // 100 Continue is to be sent at the first Read
	eof    bool  // the body was read to its end
	closed bool  // reads fail: the handler returned, or the rest was dropped
	err    error // the first error but io.EOF
}

func (b *serverBody) reset(c *conn, rc io.ReadCloser, expect bool) {
	b.c, b.rc, b.expect, b.eof, b.closed, b.err = c, rc, expect, rc == nil, false, nil
}

// Read reads the body. The first Read of a request that expects 100
// Continue sends it, unless the response has begun.
func (b *serverBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.eof:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	}
	if b.expect {
		b.expect = false
		if err := b.c.res.sendContinue(); err != nil {
			b.err = err
			return 0, err
		}
	}
	n, err := b.rc.Read(p)
	switch err {
	case nil:
	case io.EOF:
		b.eof = true
		b.c.watch.bodyDone()
	default:
		b.err = err
	}
	return n, err
}

// Close does nothing: the connection ends the body's use when the
// response is done, as net/http's server does.
func (b *serverBody) Close() error { return nil }

// discardRest reads and drops what the handler left of the body, up to
// maxDiscard bytes, before the response's head goes out, so that the
// connection can serve the next request; it reports whether the body's
// end was reached. It does not wait for a reader on another goroutine,
// nor for a body the client was not asked to send (100 Continue).
func (b *serverBody) discardRest() bool {
	if b.rc == nil {
		return true
	}
	if !b.mu.TryLock() {
		return false
	}
	defer b.mu.Unlock()
	if b.eof {
		return true
	}
	if b.closed || b.err != nil || b.expect {
		return false
	}
	c := b.c
	c.rwc.SetReadDeadline(deadline(c.rht))
	err := h1.DiscardBody(b.rc, maxDiscard)
	c.rwc.SetReadDeadline(time.Time{})
	b.closed = true // a late reader must not take the end for the whole body
	if err != nil {
		b.err = err
		return false
	}
	b.eof = true
	c.watch.bodyDone()
	return true
}

// finish ends the body's use once ServeHTTP returned: later reads fail.
// A reader still blocked on the connection is woken. It reports whether
// the body was read to its end, so the connection may serve another
// request.
func (b *serverBody) finish() bool {
	if b.rc == nil {
		return true
	}
	if !b.mu.TryLock() {
		b.c.rwc.SetReadDeadline(aLongTimeAgo)
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	b.closed = true
	return b.eof
}
