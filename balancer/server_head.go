package balancer

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/carbonlb/carbonlb/balancer/internal/h1"
)

// writeHead puts the response's head in the write buffer: the status
// line, the handler's header (no header of the engine's own but
// Content-Length: 0, Transfer-Encoding: chunked and Connection, the
// framing and the connection's fate), as net/http's server frames a
// response, but that it adds no Date, no Content-Type and computes no
// Content-Length.
func (w *response) writeHead() {
	w.headSent = true
	r, h, code := w.req, w.header, w.status
	c := w.c
	is11 := r.ProtoAtLeast(1, 1)
	isHEAD := r.Method == http.MethodHead
	bodyOK := bodyAllowedForStatus(code)
	w.noBody = isHEAD || !bodyOK

	if w.mayContinue {
		w.contMu.Lock()
		defer w.contMu.Unlock()
		if w.canContinue {
			// The client was not asked for its body: it may never send
			// it, and what follows cannot be a request.
			w.canContinue = false
			w.closeAfter = true
		}
	}
	if headerHasToken(h["Connection"], "close") || c.s.isDownFast() {
		w.closeAfter = true
	}
	if !w.closeAfter && !w.fullDuplex && !c.body.discardRest() {
		w.closeAfter = true // the body is too long to drop, or another goroutine reads it
	}

	te := h["Transfer-Encoding"]
	hasTE := len(te) > 0
	if w.cl >= 0 && hasTE {
		w.cl = -1 // Transfer-Encoding wins, as with net/http
	}
	skipCL := false
	switch {
	case !bodyOK:
		skipCL = true // net/http's server drops it for 1xx, 204 and 304
	case isHEAD:
	case w.cl >= 0:
	case hasTE && len(te) == 1 && strings.EqualFold(te[0], "identity"):
		w.closeAfter = true // delimited by the connection's end
	case is11:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: delimited by the connection's end
	}
	if w.keepAlive10 && !w.closeAfter && !isHEAD && bodyOK && w.cl < 0 {
		w.closeAfter = true
	}
	var conn string // the Connection header of the engine's own
	switch {
	case w.closeAfter && code == http.StatusSwitchingProtocols:
	case w.closeAfter && is11 && !headerHasToken(h["Connection"], "close"):
		conn = "close"
	case w.keepAlive10 && !w.closeAfter && len(h["Connection"]) == 0:
		conn = "keep-alive"
	}
	bw := &c.bw
	bw.buf = appendStatusLine(bw.buf, is11, code)
	bw.buf = appendHeader(bw.buf, h, func(k string) bool {
		switch k {
		case "Transfer-Encoding":
			return true
		case "Content-Length":
			return skipCL || w.chunked
		case "Content-Type":
			return code == http.StatusNotModified
		case "Connection":
			return conn != ""
		}
		return strings.HasPrefix(k, http.TrailerPrefix)
	})
	if w.emptyCL {
		bw.buf = append(bw.buf, "Content-Length: 0\r\n"...)
	}
	if w.chunked {
		bw.buf = append(bw.buf, "Transfer-Encoding: chunked\r\n"...)
	}
	if conn != "" {
		bw.buf = append(bw.buf, "Connection: "...)
		bw.buf = append(bw.buf, conn...)
		bw.buf = append(bw.buf, "\r\n"...)
	}
	bw.buf = append(bw.buf, "\r\n"...)
}

// finish completes the response when the handler returned: the head if
// it has not gone, the end of a chunked body with its trailers, and what
// is buffered. A body shorter or longer than its Content-Length closes
// the connection: the client cannot find where the next response starts.
func (w *response) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		if w.written == 0 && w.cl < 0 && len(w.header["Transfer-Encoding"]) == 0 &&
			bodyAllowedForStatus(w.status) && w.req.Method != http.MethodHead {
			// Nothing was written: an empty body of known length, as
			// net/http's server sends it.
			w.cl, w.emptyCL = 0, true
		}
		w.writeHead()
	}
	bw := &w.c.bw
	if w.chunked {
		bw.room(5)
		bw.buf = append(bw.buf, "0\r\n"...)
		bw.buf = appendTrailers(bw.buf, w.header, w.trailers)
		bw.buf = append(bw.buf, "\r\n"...)
	}
	if w.cl >= 0 && !w.noBody && (w.overrun || w.written != w.cl) {
		w.closeAfter = true
	}
	bw.flush()
}

// bodyAllowedForStatus reports whether a response with status code may
// have a body (RFC 9110, sections 6.4.1 and 15).
func bodyAllowedForStatus(code int) bool {
	return !(code >= 100 && code <= 199) && code != http.StatusNoContent && code != http.StatusNotModified
}

// appendStatusLine appends "HTTP/1.x code reason\r\n".
func appendStatusLine(b []byte, is11 bool, code int) []byte {
	if is11 {
		b = append(b, "HTTP/1.1 "...)
	} else {
		b = append(b, "HTTP/1.0 "...)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

// appendHeader appends the fields of h that skip does not name. A field
// whose name is not a token is dropped, as net/http's server drops it; CR
// and LF in a value become spaces, so that no value can end the head.
func appendHeader(b []byte, h http.Header, skip func(string) bool) []byte {
	for k, vv := range h {
		if len(vv) > 0 && !skip(k) {
			b = appendField(b, k, vv)
		}
	}
	return b
}

// appendTrailers appends the trailer fields: those declared in the
// Trailer header, and those set with http.TrailerPrefix.
func appendTrailers(b []byte, h http.Header, declared []string) []byte {
	for _, k := range declared {
		b = appendField(b, k, h[k])
	}
	for k, vv := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			b = appendField(b, name, vv)
		}
	}
	return b
}

// appendField appends a line for each of the values of the field name,
// or nothing when name is not a token.
func appendField(b []byte, name string, values []string) []byte {
	if !h1.ValidFieldName(name) {
		return b
	}
	for _, v := range values {
		b = append(b, name...)
		b = append(b, ": "...)
		b = appendFieldValue(b, v)
		b = append(b, "\r\n"...)
	}
	return b
}

// appendFieldValue appends v trimmed, with CR and LF made spaces.
func appendFieldValue(b []byte, v string) []byte {
	v = strings.TrimSpace(v)
	if strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch == '\r' || ch == '\n' {
			ch = ' '
		}
		b = append(b, ch)
	}
	return b
}

// headerHasToken reports whether the comma-separated values hold tok,
// case-insensitively.
func headerHasToken(vals []string, tok string) bool {
	for _, v := range vals {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(part), tok) {
				return true
			}
		}
	}
	return false
}
