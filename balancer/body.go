package balancer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carbonlb/carbonlb/balancer/internal/h1"
)

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
	n       atomic.Int64             // bytes read
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
	if total := b.n.Add(int64(n)); b.limit > 0 && total > b.limit {
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

// reqBufs holds buffers of h1.MaxBufferedBody bytes for request bodies read
// whole before a backend is chosen.
var reqBufs = sync.Pool{New: func() any { b := make([]byte, h1.MaxBufferedBody); return &b }}

// clientFault ends a request whose client broke its side of the exchange
// (a malformed or truncated body, a body over MaxBodyBytes, a stall longer
// than ClientBodyTimeout, or the client gone): 400, 413 or 408 with the
// connection closed, or, when the client is gone, no response at all (the
// handler is aborted, as net/http provides) and an access-log record with
// status 499. No backend is blamed; be, if not nil, is the backend the
// request was being sent to.
func (b *Balancer) clientFault(w http.ResponseWriter, t *txn, be *backend, err error) {
	code := clientStatus(err)
	if code == 499 {
		b.logAccess(t, be, 499, stickyNone, err)
		panic(http.ErrAbortHandler)
	}
	if t.r.ProtoMajor == 1 {
		w.Header()["Connection"] = valClose // the rest of the body is not read
	}
	b.fail(w, t, code, http.StatusText(code)+"\n")
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
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || h1.ConnGone(err):
		return 499
	}
	return http.StatusBadRequest
}
