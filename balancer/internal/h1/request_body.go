package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
)

// maxDiscardStep bounds one bufio.Reader.Discard of DiscardBody, whose
// count is an int.
const maxDiscardStep = 1 << 30

// errDiscardLimit is DiscardBody's error for a body with more left than
// it may read.
var errDiscardLimit = errors.New("balancer: request body longer than what may be discarded")

// NewBody returns the reader of r's body as ReadRequest framed it, from
// r.ContentLength and r.TransferEncoding: http.NoBody for none, a reader of
// exactly ContentLength bytes, or a strict decoder of the chunked coding
// (RFC 9112, section 7.1). Reading past the body's end returns io.EOF and
// never reads from br: the next pipelined request stays there. The last
// bytes of a body come with io.EOF when its end is already in br, so that
// a caller knows the body ended without another Read.
//
// A body whose connection ends early fails with io.ErrUnexpectedEOF;
// other errors of br are returned unchanged. The chunked decoder fails
// with a *RequestError (status 400) on malformed framing: a chunk size
// that is not hexadecimal or overflows, whitespace after a chunk size with
// no extension after it, a malformed chunk extension, extensions over 4
// KiB in all, data not followed by CRLF, an LF without CR or a CR without
// LF in a chunk-size line, after chunk data or in the trailer section, a
// trailer section over lim's MaxHeaderBytes or MaxHeaders, and a trailer
// field that ReadRequest would refuse in a header. The trailer fields go
// to r.Trailer as the body ends, but for those a trailer must not carry
// (RFC 9110, section 6.5.1: framing, routing, authentication, request
// modifiers, Content-Type and the like), which are dropped. Every error is
// sticky.
//
// Close marks the body closed: later Reads fail with
// http.ErrBodyReadAfterClose. It reads nothing; DiscardBody skips what a
// handler left. A body is not safe for concurrent use.
func NewBody(br *bufio.Reader, r *http.Request, lim RequestLimits) io.ReadCloser {
	switch {
	case len(r.TransferEncoding) > 0:
		return &chunkedBody{br: br, trailer: &r.Trailer, maxBytes: lim.headerBytes(), maxFields: lim.headers()}
	case r.ContentLength > 0:
		return &lengthBody{br: br, left: r.ContentLength}
	}
	return http.NoBody
}

// DiscardBody reads and drops what is left of body, a reader NewBody
// returned (closed or not), so that the next request starts at br's
// position; it reads at most limit bytes of body data. It returns nil once
// the body's end was reached, an error if the body is longer than limit,
// or the error the body's reader meets. After an error the connection
// must be closed.
func DiscardBody(body io.Reader, limit int64) error {
	switch b := body.(type) {
	case *lengthBody:
		if b.err == nil && b.left > limit {
			return errDiscardLimit
		}
		for b.err == nil && b.left > 0 {
			n, err := b.br.Discard(int(min(b.left, maxDiscardStep)))
			b.left -= int64(n)
			if err != nil {
				b.err = unexpectedEOF(err)
			}
		}
		return endErr(b.err)
	case *chunkedBody:
		for b.err == nil {
			switch b.state {
			case chunkDone:
				b.err = io.EOF
			case chunkData:
				if limit <= 0 {
					return errDiscardLimit
				}
				n, err := b.br.Discard(int(min(b.left, limit, maxDiscardStep)))
				b.left -= int64(n)
				limit -= int64(n)
				if b.left == 0 {
					b.state = chunkEnd
				}
				if err != nil {
					b.err = unexpectedEOF(err)
				}
			default:
				b.advance()
			}
		}
		return endErr(b.err)
	case nil:
		return nil
	}
	if body == http.NoBody {
		return nil
	}
	return errors.New("balancer: DiscardBody of a reader NewBody did not return")
}

// endErr is nil for io.EOF, the end of a body, and err otherwise.
func endErr(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// unexpectedEOF turns io.EOF, the end of the connection inside a body,
// into io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// lengthBody is a body of known length.
type lengthBody struct {
	br     *bufio.Reader
	left   int64 // bytes not yet read
	err    error // sticky: io.EOF at the end
	closed bool
}

// Read reads from the body, never past its end.
func (b *lengthBody) Read(p []byte) (int, error) {
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.err != nil:
		return 0, b.err
	case b.left == 0:
		b.err = io.EOF
		return 0, b.err
	case len(p) == 0:
		return 0, nil
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if err != nil {
		b.err = unexpectedEOF(err)
	} else if b.left == 0 {
		b.err = io.EOF
	}
	return n, b.err
}

// Close marks the body closed; it reads nothing.
func (b *lengthBody) Close() error {
	b.closed = true
	return nil
}
