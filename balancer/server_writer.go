package balancer

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// writeBufSize is the size of a connection's write buffer: the usual
// response head and a small body go out in one write.
const writeBufSize = 4 << 10

// writeBufs holds the write buffers of connections between connections.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize); return &b }}

func getWriteBuf() []byte { return (*writeBufs.Get().(*[]byte))[:0] }

func putWriteBuf(b []byte) {
	if cap(b) > 4*writeBufSize {
		return // grown for a large head: let it go
	}
	b = b[:0]
	writeBufs.Put(&b)
}

// connWriter buffers what is written to a connection. A write larger than
// what the buffer has room for goes out with the buffered bytes in one
// writev. Each system call is bounded by the write timeout, moved
// forward at most every 1/16 of it to spare a timer update per write.
type connWriter struct {
	c       *conn
	buf     []byte
	iov     net.Buffers   // scratch for writev
	err     error         // the first write error: every later write fails
	timeout time.Duration // per write; negative: none
	next    time.Time     // when the deadline must next move forward
	userDL  bool          // the handler set its own write deadline
}

// deadline moves the write deadline forward before a system call.
func (w *connWriter) deadline() {
	if w.timeout < 0 || w.userDL {
		return
	}
	if now := time.Now(); !now.Before(w.next) {
		w.c.rwc.SetWriteDeadline(now.Add(w.timeout))
		w.next = now.Add(w.timeout / 16)
	}
}

// fail records a write error: the client is gone or too slow, so the
// request's context is canceled, as net/http's server does.
func (w *connWriter) fail(err error) error {
	if w.err == nil {
		w.err = err
		w.c.mu.Lock()
		if w.c.cancel != nil {
			w.c.cancel()
		}
		w.c.mu.Unlock()
	}
	return err
}

func (w *connWriter) flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	w.deadline()
	_, err := w.c.rwc.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		return w.fail(err)
	}
	return nil
}

// room makes room for n more bytes in the buffer, if it can.
func (w *connWriter) room(n int) {
	if len(w.buf)+n > cap(w.buf) {
		w.flush()
	}
}

// write writes p after the buffered bytes.
func (w *connWriter) write(p []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf)+len(p) <= cap(w.buf) {
		w.buf = append(w.buf, p...)
		return nil
	}
	if len(p) < cap(w.buf)/2 {
		if err := w.flush(); err != nil {
			return err
		}
		w.buf = append(w.buf, p...)
		return nil
	}
	w.deadline()
	var err error
	if len(w.buf) == 0 {
		_, err = w.c.rwc.Write(p)
	} else {
		w.iov = append(w.iov[:0], w.buf, p)
		_, err = w.iov.WriteTo(w.c.rwc)
		w.iov = w.iov[:0]
	}
	w.buf = w.buf[:0]
	if err != nil {
		return w.fail(err)
	}
	return nil
}

// crlf ends a chunk's data.
var crlf = []byte("\r\n")

// writeChunk writes p as one chunk of the chunked coding after the
// buffered bytes. A chunk too large for the buffer goes out with them, its
// size line and the CRLF after it in one writev, so that a Flush after it
// (a streamed response) has nothing left to write.
func (w *connWriter) writeChunk(p []byte) error {
	if w.err != nil {
		return w.err
	}
	w.room(20)
	w.buf = strconv.AppendUint(w.buf, uint64(len(p)), 16)
	w.buf = append(w.buf, crlf...)
	if len(w.buf)+len(p)+len(crlf) <= cap(w.buf) || len(p) < cap(w.buf)/2 {
		if err := w.write(p); err != nil {
			return err
		}
		w.room(len(crlf))
		w.buf = append(w.buf, crlf...)
		return nil
	}
	w.deadline()
	w.iov = append(w.iov[:0], w.buf, p, crlf)
	_, err := w.iov.WriteTo(w.c.rwc)
	w.iov = w.iov[:0]
	w.buf = w.buf[:0]
	if err != nil {
		return w.fail(err)
	}
	return nil
}

// writeString writes s after the buffered bytes.
func (w *connWriter) writeString(s string) error {
	if w.err != nil {
		return w.err
	}
	for len(s) > 0 {
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return err
			}
		}
		n := min(len(s), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, s[:n]...)
		s = s[n:]
	}
	return nil
}

// response is the engine's http.ResponseWriter. One lives in each
// connection and serves its requests one after the other; like net/http's,
// it must not be used after ServeHTTP returned. Header, WriteHeader and
// Write are for the handler's goroutine; the 100 Continue that a body's
// first Read sends on another goroutine is kept apart by contMu.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header // the handler's; reused, cleared between requests
	status int         // the final status, once wroteHeader
	cl     int64       // the handler's Content-Length, or -1
	// written counts the body bytes the handler wrote (those of a HEAD
	// response too, which are dropped).
	written     int64
	wroteHeader bool // a final status was set
	headSent    bool // the head is in the write buffer, or gone out
	chunked     bool // the body goes out in the chunked coding
	noBody      bool // a HEAD response, or a status without a body
	closeAfter  bool // the connection closes after this response
	keepAlive10 bool // an HTTP/1.0 client asked to keep the connection
	overrun     bool // the handler wrote more than its Content-Length
	fullDuplex  bool // EnableFullDuplex: the body may be read after the head
	emptyCL     bool // the engine adds Content-Length: 0 to a response without a body
	trailers    []string

	mayContinue bool       // the request expects 100 Continue: contMu guards the buffer
	contMu      sync.Mutex // serialises sendContinue and the head
	canContinue bool       // 100 Continue may still be sent; guarded by contMu
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ http.Hijacker       = (*response)(nil)
)

// reset prepares w for r, whose head was just read: what decides the
// connection's fate is taken before the handler edits the header.
func (w *response) reset(r *http.Request) {
	if w.header == nil {
		w.header = make(http.Header)
	} else {
		clear(w.header)
	}
	w.req = r
	w.status, w.cl, w.written = 0, -1, 0
	w.wroteHeader, w.headSent, w.chunked, w.noBody, w.overrun, w.fullDuplex, w.emptyCL = false, false, false, false, false, false, false
	w.trailers = w.trailers[:0]
	w.mayContinue, w.canContinue = false, false
	w.closeAfter = r.Close // Connection: close, HTTP/1.0 without keep-alive, or Content-Length with Transfer-Encoding
	w.keepAlive10 = !r.ProtoAtLeast(1, 1) && !r.Close
	if w.c.bw.userDL {
		// The last handler set its own write deadline: set the Server's
		// again at the next write.
		w.c.bw.userDL, w.c.bw.next = false, time.Time{}
	}
}

// Header returns the response's header, to set before WriteHeader.
func (w *response) Header() http.Header { return w.header }

// WriteHeader sets the status. An informational status (1xx but 101) goes
// out at once with the header as it is, and the header is kept for the
// final response (RFC 8297); none goes to an HTTP/1.0 client.
func (w *response) WriteHeader(code int) {
	if w.c.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("balancer: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if v := w.header["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 && len(v) == 1 && v[0] != "" && v[0][0] != '+' {
			w.cl = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	for _, v := range w.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
			}
		}
	}
}

func (w *response) writeInformational(code int) {
	if !w.req.ProtoAtLeast(1, 1) {
		return
	}
	if w.mayContinue {
		w.contMu.Lock()
		defer w.contMu.Unlock()
		if code == http.StatusContinue {
			w.canContinue = false
		}
	}
	bw := &w.c.bw
	bw.buf = appendStatusLine(bw.buf, true, code)
	bw.buf = appendHeader(bw.buf, w.header, func(k string) bool {
		return k == "Content-Length" || k == "Transfer-Encoding" || strings.HasPrefix(k, http.TrailerPrefix)
	})
	bw.buf = append(bw.buf, "\r\n"...)
	bw.flush()
}

// sendContinue sends 100 Continue, on the goroutine reading the body,
// unless the response has begun.
func (w *response) sendContinue() error {
	w.contMu.Lock()
	defer w.contMu.Unlock()
	if !w.canContinue {
		return nil
	}
	w.canContinue = false
	bw := &w.c.bw
	bw.room(len("HTTP/1.1 100 Continue\r\n\r\n"))
	bw.buf = append(bw.buf, "HTTP/1.1 100 Continue\r\n\r\n"...)
	return bw.flush()
}

// Write writes body bytes, after the head. A response with a
// Content-Length takes no more than that (http.ErrContentLength); a HEAD
// response drops them; a 204 or 304 takes none (http.ErrBodyNotAllowed).
func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.writeHead()
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.noBody {
		return len(p), nil
	}
	var errCL error
	if w.cl >= 0 && w.written > w.cl {
		w.overrun = true
		over := w.written - w.cl
		w.written = w.cl
		if over >= int64(len(p)) {
			return 0, http.ErrContentLength
		}
		p = p[:int64(len(p))-over]
		errCL = http.ErrContentLength
	}
	bw := &w.c.bw
	if w.chunked {
		if err := bw.writeChunk(p); err != nil {
			return 0, err
		}
		return len(p), errCL
	}
	if err := bw.write(p); err != nil {
		return 0, err
	}
	return len(p), errCL
}

// WriteString is Write of a string, without the copy.
func (w *response) WriteString(s string) (int, error) {
	if !w.c.hijacked && !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.c.hijacked && !w.headSent {
		w.writeHead()
	}
	if w.c.hijacked || w.chunked || w.noBody || !bodyAllowedForStatus(w.status) || (w.cl >= 0 && w.written+int64(len(s)) > w.cl) {
		return w.Write([]byte(s))
	}
	w.written += int64(len(s))
	if err := w.c.bw.writeString(s); err != nil {
		return 0, err
	}
	return len(s), nil
}

// Flush sends the head, if it has not gone, and what is buffered.
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush that returns the write error (http.ResponseController).
func (w *response) FlushError() error {
	if w.c.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.writeHead()
	}
	return w.c.bw.flush()
}

// SetReadDeadline sets the deadline of reads of the request body
// (http.ResponseController).
func (w *response) SetReadDeadline(t time.Time) error {
	return w.c.rwc.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline of writes of the response, in place
// of the Server's WriteTimeout (http.ResponseController).
func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.bw.userDL = true
	return w.c.rwc.SetWriteDeadline(t)
}

// EnableFullDuplex lets the handler read the request body after the
// response's head went out: the engine then does not read and drop what
// is left of it when the head is written (http.ResponseController).
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// Hijack hands the connection to the handler, with a bufio.ReadWriter
// whose reader holds what the client sent beyond the request head. The
// Server forgets the connection: Shutdown and Close neither close it nor
// wait for it. What the response had buffered goes out first.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader && !w.headSent {
		w.writeHead()
	}
	if err := c.bw.flush(); err != nil {
		return nil, nil, err
	}
	c.watch.disarm()
	if c.cr.hasByte {
		// The byte the watcher read joins what the reader holds.
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			return nil, nil, errors.New("balancer: hijack: the client's buffered bytes do not fit the reader")
		}
	}
	c.hijacked = true
	c.s.untrack(c)
	c.rwc.SetDeadline(time.Time{})
	putWriteBuf(c.bw.buf)
	c.bw.buf = nil
	br := c.br
	c.br = nil // the handler's now; never back to the pool
	return c.rwc, bufio.NewReadWriter(br, bufio.NewWriter(c.rwc)), nil
}
