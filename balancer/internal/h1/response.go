package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
)

// responseError is a backend's response that the client refuses to read:
// its framing or its head is malformed, so where it ends, and where the
// next response would start, is not known. The balancer answers 502 and
// closes the connection.
type responseError struct {
	reason string
}

func (e *responseError) Error() string { return "malformed response: " + e.reason }

// Why a response is refused, beyond the reasons its fields share with a
// request's.
const (
	whyStatusLine      = "malformed status line"
	whyStatusVersion   = "status line version is not HTTP/1.x"
	whyStatusCode      = "status code is not three digits from 100"
	whyReason          = "control character in reason phrase"
	whyResponseTooMany = "too many header fields"
	whyTrailerFraming  = "Trailer announces a framing field"
	whyTE10Response    = "Transfer-Encoding in HTTP/1.0 response"
)

// maxResponseFields bounds the field lines of a response head: HAProxy
// allows 101 (tune.http.maxhdr), a Tomcat page sends a dozen; more are a
// backend gone wrong, or one trying the balancer's memory.
const maxResponseFields = 1000

// asResponseError turns a refusal of the shared head and field code into
// a response's.
func asResponseError(re *RequestError) error {
	reason := re.Reason
	switch reason {
	case whyHeadTooLarge:
		reason = "response header too large"
	case whyLineTooLong:
		reason = "status line too long"
	case whyTooManyFields:
		reason = whyResponseTooMany
	}
	return &responseError{reason: reason}
}

// readResponse reads the head of a response to req from br, as strictly
// as ReadRequest reads a request (RFC 9112), and frames its body:
//   - the status line is HTTP/1.x, one space, three digits from 100 to
//     999, then nothing or one space and a reason phrase without control
//     characters but tabs;
//   - the fields are refused for obs-fold, whitespace before a colon,
//     invalid name bytes, control characters in values, a bare CR, more
//     than maxResponseFields or a head over MaxResponseHeader;
//   - Content-Length fields must agree (an identical duplicate is kept
//     once); Transfer-Encoding must be chunked, once and last, and never
//     in an HTTP/1.0 response (RFC 9112, section 6.1); with both, chunked
//     frames the body, Content-Length is removed and the connection is
//     closed after the response (a response without a body keeps both);
//   - a response to HEAD, a 1xx, 204 or 304 has no body whatever its
//     fields say; else chunked, Content-Length, or the rest of the
//     connection (Close set).
//
// The response it returns is shaped as net/http's ReadResponse shapes
// one: Header without Transfer-Encoding (and without Trailer when
// chunked: Trailer holds the announced names with nil values until the
// body ends), TransferEncoding, ContentLength (-1 when unknown; for HEAD,
// what Content-Length says), Close, Body. The body readers never read past
// the response's end. The strings of the head share one allocation.
// Errors: io.ErrUnexpectedEOF when br ends inside a head, br's own errors,
// or a *responseError.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	head, nfields, err := readHead(br, MaxResponseHeader, maxResponseFields)
	if err != nil {
		if re, ok := errors.AsType[*RequestError](err); ok {
			return nil, asResponseError(re)
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	eol := indexLF(head, 0)
	line := trimCR(head[:eol])
	resp := &http.Response{Request: req, Header: make(http.Header, nfields)}
	if err := parseStatusLine(line, resp); err != nil {
		return nil, err
	}
	f := fieldState{response: true, proto10: resp.ProtoMinor == 0}
	if re := f.parseFields(head, eol+1, nfields, resp.Header); re != nil {
		return nil, asResponseError(re)
	}
	if err := frameResponse(&f, resp, br); err != nil {
		return nil, err
	}
	return resp, nil
}

// parseStatusLine parses line into resp's Proto, ProtoMajor, ProtoMinor,
// StatusCode and Status.
func parseStatusLine(line string, resp *http.Response) error {
	// "HTTP/1.1 200" is the shortest.
	if len(line) < len("HTTP/1.1 200") || !strings.HasPrefix(line, "HTTP/") || line[8] != ' ' {
		return &responseError{reason: whyStatusLine}
	}
	if line[5] != '1' || line[6] != '.' || !isDigit(line[7]) {
		return &responseError{reason: whyStatusVersion}
	}
	code := 0
	for _, c := range []byte(line[9:12]) {
		if !isDigit(c) {
			return &responseError{reason: whyStatusCode}
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return &responseError{reason: whyStatusCode}
	}
	if len(line) > 12 {
		if line[12] != ' ' {
			return &responseError{reason: whyStatusCode}
		}
		for i := 13; i < len(line); i++ {
			if c := line[i]; (c < ' ' && c != '\t') || c == 0x7f {
				return &responseError{reason: whyReason}
			}
		}
	}
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = line[:8], 1, int(line[7]-'0')
	resp.StatusCode, resp.Status = code, line[9:]
	return nil
}

// frameResponse checks what the fields said, and sets resp's framing,
// Close and Body.
func frameResponse(f *fieldState, resp *http.Response, br *bufio.Reader) error {
	resp.Close = f.close || (f.proto10 && !f.keepAlive)
	if f.close && !f.proto10 {
		delete(resp.Header, "Connection") // as net/http leaves it: Close says it
	}
	bodiless := resp.Request != nil && resp.Request.Method == http.MethodHead ||
		resp.StatusCode < 200 || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	if f.te {
		switch why := f.teFault(); why {
		case "":
		case whyTE10:
			return &responseError{reason: whyTE10Response}
		default:
			return &responseError{reason: why}
		}
		if f.clSeen && !bodiless {
			// RFC 9112, section 6.3: chunked overrides Content-Length,
			// which goes; and the connection is not used again, as a
			// reader that trusted the length would have read otherwise.
			// (A response without a body keeps both, as net/http keeps
			// them: neither frames anything.)
			delete(resp.Header, "Content-Length")
			f.clSeen = false
			resp.Close = true
		}
		// As net/http does: the fields announced as trailers are keys
		// of Trailer with nil values until the body ends, and Trailer
		// leaves the header; as net/http refuses it, a trailer cannot
		// frame.
		if _, ok := resp.Header["Trailer"]; ok {
			resp.Trailer = make(http.Header)
			if announceTrailers(resp.Header, resp.Trailer) {
				return &responseError{reason: whyTrailerFraming}
			}
		}
	}
	switch {
	case bodiless:
		resp.Body = http.NoBody
		resp.ContentLength = 0
		if resp.Request != nil && resp.Request.Method == http.MethodHead {
			resp.ContentLength = -1
			if f.clSeen {
				resp.ContentLength = f.cl
			}
		}
		if f.te {
			resp.TransferEncoding = []string{"chunked"}
		}
	case f.te:
		resp.ContentLength = -1
		resp.TransferEncoding = []string{"chunked"}
		resp.Body = &respChunked{chunkedBody{br: br, trailer: &resp.Trailer, maxBytes: MaxResponseHeader, maxFields: maxResponseFields}}
	case f.clSeen:
		resp.ContentLength = f.cl
		resp.Body = http.NoBody
		if f.cl > 0 {
			resp.Body = &lengthBody{br: br, left: f.cl}
		}
	default:
		resp.ContentLength = -1
		resp.Close = true
		resp.Body = &closeBody{br: br}
	}
	return nil
}

// respChunked is a response's chunked body: its framing errors are the
// response's.
type respChunked struct {
	chunkedBody
}

func (b *respChunked) Read(p []byte) (int, error) {
	n, err := b.chunkedBody.Read(p)
	if re, ok := err.(*RequestError); ok {
		b.err = asResponseError(re)
		err = b.err
	}
	return n, err
}

// closeBody is a body that the end of the connection ends.
type closeBody struct {
	br     *bufio.Reader
	err    error // sticky: io.EOF at the end
	closed bool
}

func (b *closeBody) Read(p []byte) (int, error) {
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.err != nil:
		return 0, b.err
	}
	n, err := b.br.Read(p)
	b.err = err
	return n, err
}

func (b *closeBody) Close() error {
	b.closed = true
	return nil
}
