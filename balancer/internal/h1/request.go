package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// RequestLimits bounds what ReadRequest accepts, and what a chunked body's
// trailer section may hold. Zero fields mean the defaults. A RequestLimits
// is a plain value, safe to share.
type RequestLimits struct {
	// MaxHeaderBytes bounds a request's head: the request line and the
	// header fields, line ends included, up to and including the empty
	// line that ends them (empty lines before the request line are not
	// counted). A head over it is refused with 431, or with 414 when the
	// request line alone is over it. It also bounds a chunked body's
	// trailer section (400). Zero means 64 KiB.
	MaxHeaderBytes int

	// MaxHeaders bounds the number of header fields of a request (431),
	// and of trailer fields of a chunked body (400). Zero means 100.
	MaxHeaders int
}

// The defaults of RequestLimits.
const (
	defaultMaxHeaderBytes = 64 << 10
	defaultMaxHeaders     = 100
)

// maxEmptyLines bounds the empty lines skipped before a request line: RFC
// 9112, section 2.2, asks a server to ignore at least one (some clients
// send one after a POST body); more than a few is not a client's mistake.
const maxEmptyLines = 4

// headerBytes is MaxHeaderBytes or its default.
func (l RequestLimits) headerBytes() int {
	if l.MaxHeaderBytes > 0 {
		return l.MaxHeaderBytes
	}
	return defaultMaxHeaderBytes
}

// headers is MaxHeaders or its default.
func (l RequestLimits) headers() int {
	if l.MaxHeaders > 0 {
		return l.MaxHeaders
	}
	return defaultMaxHeaders
}

// RequestError is a request that ReadRequest refuses, or a chunked body
// whose framing NewBody's reader refuses: Status is the status to answer
// with (400, 414, 431, 501 or 505) and Reason says why, for logs. After one
// the connection must be closed: where the next request would start is not
// known. Callers find it with errors.As.
type RequestError struct {
	Status int    // the status code to answer with
	Reason string // what was wrong, in a few words
}

// Error returns the status and the reason, with the prefix of the package
// balancer, through which the error reaches users.
func (e *RequestError) Error() string {
	return "balancer: request refused with " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) + ": " + e.Reason
}

// refuse returns a *RequestError; its reasons are the constants below, so
// that tests can tell them apart.
func refuse(status int, reason string) *RequestError {
	return &RequestError{Status: status, Reason: reason}
}

// Why a request is refused: the Reason of a RequestError.
const (
	whyEmptyLines     = "too many empty lines before the request line"
	whyBareCR         = "CR not followed by LF"
	whyLineTooLong    = "request line too long"
	whyHeadTooLarge   = "request header too large"
	whyTooManyFields  = "too many header fields"
	whyRequestLine    = "malformed request line"
	whyMethod         = "method is not a token"
	whyEmptyTarget    = "empty request target"
	whyVersion        = "malformed HTTP version"
	whyVersionSupport = "HTTP version not supported"
	whyTargetChar     = "request target has a byte that is not visible ASCII"
	whyFragment       = "request target has a fragment"
	whyTargetForm     = "request target form not allowed for the method"
	whyScheme         = "absolute-form target with a scheme other than http or https"
	whyAuthority      = "malformed authority in request target"
	whyUserinfo       = "userinfo in request target"
	whyEscape         = "malformed percent-encoding in request target"
	whyObsFold        = "line folding (obs-fold) in header"
	whyFieldName      = "malformed header field name"
	whyFieldNameSpace = "whitespace in header field name or before its colon"
	whyFieldValue     = "control character in header field value"
	whyNoHost         = "missing Host header in HTTP/1.1 request"
	whyManyHosts      = "more than one Host header"
	whyHost           = "malformed Host header"
	whyContentLength  = "malformed Content-Length"
	whyLengths        = "differing Content-Length values"
	whyTE10           = "Transfer-Encoding in HTTP/1.0 request"
	whyTEList         = "malformed Transfer-Encoding"
	whyChunkedTwice   = "chunked applied more than once"
	whyChunkedNotLast = "chunked is not the final transfer coding"
	whyCoding         = "transfer coding not implemented"
)

// ReadRequest reads one request head from br into r, reusing r's storage
// so that a connection serving many requests allocates little: r.Header
// is cleared and reused, and *r.URL overwritten. The head's strings all share one allocation, and
// the header values one backing array; header keys are canonical as
// net/http makes them, without allocating for those already canonical or
// common. Nothing is read beyond the head: the body, and any pipelined
// request, stay in br.
//
// ReadRequest sets every exported field that describes a request:
//   - Method, and RequestURI: the target as received;
//   - URL: origin-form, or absolute-form with the http or https scheme;
//     authority-form only for CONNECT, asterisk-form only for OPTIONS;
//   - Proto, ProtoMajor, ProtoMinor: HTTP/1.0, or HTTP/1.1 for any HTTP/1.x
//     from 1.1 up (RFC 9110, section 2.5: a recipient treats a higher minor
//     version as the highest it implements);
//   - Header, without Host and Transfer-Encoding, as net/http leaves it;
//   - Host: the Host field, or for absolute-form and CONNECT the target's
//     authority, which replaces it (RFC 9112, section 3.2.2);
//   - ContentLength: 0 without a body, -1 for chunked;
//   - TransferEncoding: []string{"chunked"} for chunked, else empty;
//   - Trailer: for chunked, a map holding the fields the Trailer field
//     announces, with nil values, which the body's reader fills (the
//     Trailer field then leaves Header, as with net/http); else nil;
//   - Close: Connection: close, HTTP/1.0 without keep-alive, or a request
//     with both Content-Length and Transfer-Encoding.
//
// It sets Body, GetBody, Form, PostForm, MultipartForm, Response and
// Pattern to their zero values (NewBody makes the body), and leaves
// RemoteAddr, TLS and the request's context, which belong to the
// connection.
//
// A request with both Content-Length and Transfer-Encoding is framed by
// its chunked coding, loses its Content-Length field, and has Close set:
// RFC 9112, section 6.1, asks a server to close the connection after
// answering it, as a front proxy that trusted the length would read the
// rest as another request. Close is how the caller learns of it.
//
// ReadRequest returns nil; io.EOF when br ends cleanly before the first
// byte of a request (a keep-alive connection the client closed; empty
// lines before it do not count); io.ErrUnexpectedEOF when br ends inside
// a head; a *RequestError for a request to refuse; or an error of br
// (timeouts, resets) unchanged. After any error but io.EOF the connection
// must be closed. Up to four empty lines (CRLF or LF) before a request
// line are skipped (RFC 9112, section 2.2). A line of the head may end
// with LF alone, which RFC 9112, section 2.2, allows a recipient to
// accept: the head is parsed, never forwarded as received, so no other
// party sees its line ends (a chunked body's framing, which must be
// exact, is held to CRLF). A CR not followed by LF is refused anywhere.
//
// The strings r holds point into one copy of the head: a value kept after
// r is reused keeps that copy alive. ReadRequest must not be called with
// an r that another goroutine still uses.
func ReadRequest(br *bufio.Reader, lim RequestLimits, r *http.Request) error {
	if err := skipEmptyLines(br); err != nil {
		return err
	}
	head, fields, err := readHead(br, lim.headerBytes(), lim.headers())
	if err != nil {
		return err
	}
	if re := parseHead(head, fields, r); re != nil {
		return re
	}
	return nil
}

// skipEmptyLines discards up to maxEmptyLines empty lines at the start of
// br. It returns io.EOF if br ends cleanly there.
func skipEmptyLines(br *bufio.Reader) error {
	for i := 0; ; i++ {
		b, err := br.Peek(1)
		if len(b) == 0 {
			return err // io.EOF: the client closed the connection between requests
		}
		switch b[0] {
		case '\n':
			br.Discard(1)
		case '\r':
			b, err = br.Peek(2)
			if len(b) < 2 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			if b[1] != '\n' {
				return refuse(http.StatusBadRequest, whyBareCR)
			}
			br.Discard(2)
		default:
			return nil
		}
		if i+1 > maxEmptyLines {
			return refuse(http.StatusBadRequest, whyEmptyLines)
		}
	}
}

// headScan finds the end of a head in bytes fed to it in order, counting
// its lines, and refuses it as soon as it can no longer be valid: a CR not
// followed by LF, or a limit passed. Of several faults it reports the one
// found first in the bytes' order, so that how the bytes arrive does not
// change the answer.
type headScan struct {
	maxBytes  int // bytes allowed in the head
	maxFields int // field lines allowed

	n     int  // bytes scanned
	line  int  // bytes of the current line so far, its LF excluded
	first byte // the current line's first byte, once it has one
	lines int  // complete lines
	cr    bool // the last byte scanned is a CR
}

// feed scans p, the bytes after those scanned so far. It returns the
// number of bytes of p up to and including the LF of the empty line that
// ends the head, or -1 if p does not hold it; or the refusal.
func (s *headScan) feed(p []byte) (int, *RequestError) {
	if len(p) > 0 && s.cr && p[0] != '\n' {
		return -1, refuse(http.StatusBadRequest, whyBareCR)
	}
	off := 0
	for off < len(p) {
		seg := p[off:]
		i := bytes.IndexByte(seg, '\n')
		if i >= 0 {
			seg = seg[:i]
		}
		// Where each fault is certain, by position in the head: the byte
		// after a CR that is not LF (a CR may only end the segment:
		// before its LF, or before the next byte fed); the first byte
		// over maxBytes; the LF ending a field line over maxFields.
		const none = 1<<63 - 1
		crAt, bytesAt, fieldsAt := none, none, none
		if j := bytes.IndexByte(seg, '\r'); j >= 0 && j < len(seg)-1 {
			crAt = s.n + j + 1
		}
		segEnd := s.n + len(seg) // the LF's position, if any
		if i >= 0 {
			segEnd++
		}
		if segEnd > s.maxBytes {
			bytesAt = s.maxBytes
		}
		if s.line == 0 && len(seg) > 0 {
			s.first = seg[0]
		}
		lineLen := s.line + len(seg)
		// The empty line ending the head: LF alone, or CRLF. The first
		// line is never empty: skipEmptyLines consumed those.
		empty := lineLen == 0 || (lineLen == 1 && s.first == '\r')
		if i >= 0 && !empty && s.lines > s.maxFields {
			fieldsAt = s.n + len(seg) // the field line numbered s.lines
		}
		switch first := min(crAt, bytesAt, fieldsAt); {
		case first == none:
		case first == crAt:
			return -1, refuse(http.StatusBadRequest, whyBareCR)
		case first == bytesAt && s.lines == 0:
			return -1, refuse(http.StatusRequestURITooLong, whyLineTooLong)
		case first == bytesAt:
			return -1, refuse(http.StatusRequestHeaderFieldsTooLarge, whyHeadTooLarge)
		default:
			return -1, refuse(http.StatusRequestHeaderFieldsTooLarge, whyTooManyFields)
		}
		s.n = segEnd
		if i < 0 {
			s.line = lineLen
			s.cr = len(seg) > 0 && seg[len(seg)-1] == '\r'
			return -1, nil
		}
		off += i + 1
		s.line, s.cr = 0, false
		s.lines++
		if empty && s.lines > 1 {
			return off, nil
		}
	}
	return -1, nil
}

// readHead reads the head at the start of br, up to and including the
// empty line that ends it, and returns it as one string with the number
// of its field lines. A head that fits br's buffer is found there, and
// copied once; a larger one is gathered into a buffer of its own, as far
// as the limits allow.
func readHead(br *bufio.Reader, maxBytes, maxFields int) (string, int, error) {
	s := headScan{maxBytes: maxBytes, maxFields: maxFields}
	var big []byte // the head so far, once it is larger than br's buffer
	for {
		buf, _ := br.Peek(br.Buffered())
		var end int
		var re *RequestError
		if big == nil {
			// buf starts with the head, as nothing was discarded: scan
			// what arrived since the last look.
			if end, re = s.feed(buf[s.n:]); end >= 0 {
				end = s.n
			}
		} else {
			end, re = s.feed(buf)
		}
		if re != nil {
			return "", 0, re
		}
		if end >= 0 {
			var head string
			if big == nil {
				head = string(buf[:end])
			} else {
				head = string(append(big, buf[:end]...))
			}
			br.Discard(end)
			return head, s.lines - 2, nil
		}
		if big == nil && len(buf) >= br.Size() {
			big = make([]byte, 0, min(maxBytes, 2*len(buf)))
		}
		var err error
		if big != nil {
			big = append(big, buf...)
			br.Discard(len(buf))
			_, err = br.Peek(1)
		} else {
			_, err = br.Peek(len(buf) + 1)
		}
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", 0, err
		}
	}
}

// parseHead parses head, the request line and nfields header field lines
// with the empty line after them, into r.
func parseHead(head string, nfields int, r *http.Request) *RequestError {
	reset(r)
	eol := indexLF(head, 0)
	var ti targetInfo
	if re := parseRequestLine(trimCR(head[:eol]), r, &ti); re != nil {
		return re
	}
	var f fieldState
	f.proto10 = r.ProtoMinor == 0
	if re := f.parseFields(head, eol+1, nfields, r.Header); re != nil {
		return re
	}
	return f.frame(r, &ti)
}

// reset clears r's per-request fields, keeping its storage.
func reset(r *http.Request) {
	if r.Header == nil {
		r.Header = make(http.Header)
	} else {
		clear(r.Header)
	}
	if r.URL == nil {
		r.URL = new(url.URL)
	} else {
		*r.URL = url.URL{}
	}
	if r.Trailer != nil {
		clear(r.Trailer)
	}
	r.Method, r.RequestURI, r.Host, r.Pattern = "", "", "", ""
	r.Proto, r.ProtoMajor, r.ProtoMinor = "", 0, 0
	r.Body, r.GetBody, r.ContentLength = nil, nil, 0
	r.TransferEncoding = r.TransferEncoding[:0]
	r.Close = false
	r.Form, r.PostForm, r.MultipartForm = nil, nil, nil
	r.Response = nil
}

// indexLF returns the index of the first LF in s at or after from; the
// head always has one there.
func indexLF(s string, from int) int {
	for i := from; i < len(s); i++ {
		if s[i] == '\n' {
			return i
		}
	}
	return len(s)
}

// trimCR removes the CR of a line's CRLF.
func trimCR(line string) string {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}
