package h1

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// smuggleCase is a request-smuggling or framing attack and what the parser
// must make of it: refused with status (by ReadRequest or by the body's
// reader), or accepted with exactly body as its body and rest left in br
// (what would be read as the next request); eof says the body's
// connection ends early (io.ErrUnexpectedEOF).
type smuggleCase struct {
	name   string
	raw    string
	status int
	body   string
	rest   string
	eof    bool
	check  func(r *http.Request) string // further checks of an accepted request; "" when fine
}

// The heads most cases start from.
const (
	post  = "POST /upload HTTP/1.1\r\nHost: example.com\r\n"
	next  = "GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n"
	body5 = "5\r\nhello\r\n0\r\n\r\n" // "hello", chunked
)

// closedWithoutCL checks what RFC 9112, section 6.1, asks of a request
// with both Content-Length and Transfer-Encoding.
func closedWithoutCL(r *http.Request) string {
	if !r.Close || r.Header["Content-Length"] != nil || r.ContentLength != -1 {
		return "Content-Length kept or Close not forced"
	}
	return ""
}

// smuggleCases is the corpus; FuzzReadRequest starts from it too.
func smuggleCases() []smuggleCase {
	return []smuggleCase{
		// Content-Length with Transfer-Encoding: chunked frames the body.
		{name: "CL.TE: TE wins, CL removed, close forced", raw: post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG" + next,
			rest: "G" + next, check: closedWithoutCL},
		{name: "TE.CL: chunked body longer than CL", raw: post + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" + body5 + next,
			body: "hello", rest: next, check: closedWithoutCL},
		{name: "TE with CL that is malformed", raw: post + "Transfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n" + body5, status: 400},
		{name: "TE with leading space", raw: post + "Transfer-Encoding:  chunked\r\n\r\n" + body5 + next, body: "hello", rest: next},
		{name: "TE with tabs", raw: post + "Transfer-Encoding:\tchunked\t\r\n\r\n" + body5 + next, body: "hello", rest: next},
		{name: "TE Chunked in any case", raw: post + "Transfer-Encoding: cHuNkEd\r\n\r\n" + body5, body: "hello"},
		{name: "TE chunked, identity", raw: post + "Transfer-Encoding: chunked, identity\r\n\r\n" + body5, status: 400},
		{name: "TE identity", raw: post + "Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello", status: 400},
		{name: "TE xchunked", raw: post + "Transfer-Encoding: xchunked\r\n\r\n" + body5, status: 400},
		{name: "TE chunked with empty parameter", raw: post + "Transfer-Encoding: chunked;\r\n\r\n" + body5, status: 400},
		{name: "TE chunked with parameter", raw: post + "Transfer-Encoding: chunked;q=1\r\n\r\n" + body5, status: 400},
		{name: "TE quoted", raw: post + "Transfer-Encoding: \"chunked\"\r\n\r\n" + body5, status: 400},
		{name: "TE gzip, chunked", raw: post + "Transfer-Encoding: gzip, chunked\r\n\r\n" + body5, status: 501},
		{name: "TE gzip then chunked fields", raw: post + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + body5, status: 501},
		{name: "TE chunked then gzip fields", raw: post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n" + body5, status: 400},
		{name: "TE chunked twice in a list", raw: post + "Transfer-Encoding: chunked, chunked\r\n\r\n" + body5, status: 400},
		{name: "TE chunked twice in fields", raw: post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + body5, status: 400},
		{name: "TE empty", raw: post + "Transfer-Encoding:\r\nContent-Length: 5\r\n\r\nhello", status: 400},
		{name: "TE empty list element", raw: post + "Transfer-Encoding: ,chunked\r\n\r\n" + body5, status: 400},
		{name: "TE with vertical tab", raw: post + "Transfer-Encoding: chunked\v\r\n\r\n" + body5, status: 400},
		{name: "TE in HTTP/1.0", raw: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", status: 400},

		// Content-Length alone.
		{name: "CL differing fields", raw: post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", status: 400},
		{name: "CL differing list", raw: post + "Content-Length: 5, 6\r\n\r\nhello!", status: 400},
		{name: "CL identical list", raw: post + "Content-Length: 5,5\r\n\r\nhello" + next, body: "hello", rest: next},
		{name: "CL identical fields", raw: post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + next, body: "hello", rest: next},
		{name: "CL equal with leading zeros", raw: post + "Content-Length: 5\r\nContent-Length: 0005\r\n\r\nhello" + next, body: "hello", rest: next},
		{name: "CL plus sign", raw: post + "Content-Length: +5\r\n\r\nhello", status: 400},
		{name: "CL minus sign", raw: post + "Content-Length: -1\r\n\r\n", status: 400},
		{name: "CL space inside", raw: post + "Content-Length: 1 0\r\n\r\nhellohello", status: 400},
		{name: "CL space padded", raw: post + "Content-Length:  5 \r\n\r\nhello" + next, body: "hello", rest: next},
		{name: "CL hex", raw: post + "Content-Length: 0x5\r\n\r\nhello", status: 400},
		{name: "CL trailing junk", raw: post + "Content-Length: 5a\r\n\r\nhello", status: 400},
		{name: "CL overflow", raw: post + "Content-Length: 9223372036854775808\r\n\r\n", status: 400},
		{name: "CL max int64", raw: post + "Content-Length: 9223372036854775807\r\n\r\nabc", eof: true},
		{name: "CL empty", raw: post + "Content-Length:\r\n\r\n", status: 400},
		{name: "CL empty list element", raw: post + "Content-Length: 5,\r\n\r\nhello", status: 400},
		{name: "body shorter than CL", raw: post + "Content-Length: 10\r\n\r\nhello", eof: true},
		{name: "GET with a body", raw: "GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nhi" + next, body: "hi", rest: next},

		// Field syntax around the framing fields.
		{name: "obs-fold of TE", raw: post + "Transfer-Encoding:\r\n chunked\r\n\r\n" + body5, status: 400},
		{name: "obs-fold of CL", raw: post + "Content-Length:\r\n\t5\r\n\r\nhello", status: 400},
		{name: "obs-fold hiding TE", raw: post + "X-Padding: a\r\n Transfer-Encoding: chunked\r\n\r\n" + body5, status: 400},
		{name: "whitespace before the first field", raw: "POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: example.com\r\n\r\n" + body5, status: 400},
		{name: "space before colon", raw: post + "Transfer-Encoding : chunked\r\n\r\n" + body5, status: 400},
		{name: "tab before colon", raw: post + "Content-Length\t: 5\r\n\r\nhello", status: 400},
		{name: "empty field name", raw: post + ": chunked\r\n\r\n", status: 400},
		{name: "field without colon", raw: post + "Transfer-Encoding chunked\r\n\r\n" + body5, status: 400},
		{name: "field name with a separator", raw: post + "Transfer-Encoding(x): chunked\r\n\r\n" + body5, status: 400},
		{name: "NUL in a value", raw: post + "X-A: a\x00b\r\n\r\n", status: 400},
		{name: "NUL in a name", raw: post + "Transfer\x00Encoding: chunked\r\n\r\n" + body5, status: 400},
		{name: "DEL in a value", raw: post + "X-A: a\x7fb\r\n\r\n", status: 400},
		{name: "bare CR in a value", raw: post + "X-A: a\rTransfer-Encoding: chunked\r\n\r\n" + body5, status: 400},
		{name: "bare CR ending a field", raw: post + "Content-Length: 5\r\rTransfer-Encoding: chunked\r\n\r\n" + body5, status: 400},
		{name: "bare CR ending the request line", raw: "GET / HTTP/1.1\rHost: example.com\r\n\r\n", status: 400},
		{name: "bare CR before the request line", raw: "\rGET / HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "bare CR as the empty line", raw: post + "Content-Length: 5\r\n\r\rhello", status: 400},
		{name: "bare LF line ends", raw: "POST / HTTP/1.1\nHost: example.com\nContent-Length: 5\n\nhello" + next, body: "hello", rest: next},
		{name: "too many empty lines first", raw: strings.Repeat("\r\n", 5) + next, status: 400},

		// Host and the request line.
		{name: "two Host fields", raw: "GET / HTTP/1.1\r\nHost: example.com\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "two Host fields differing", raw: "GET / HTTP/1.1\r\nHost: a.example\r\nhost: b.example\r\n\r\n", status: 400},
		{name: "Host missing", raw: "GET / HTTP/1.1\r\n\r\n", status: 400},
		{name: "Host missing with absolute-form", raw: "GET http://example.com/ HTTP/1.1\r\n\r\n", status: 400},
		{name: "Host missing in HTTP/1.0", raw: "GET / HTTP/1.0\r\n\r\n" + next, rest: next},
		{name: "Host with userinfo", raw: "GET / HTTP/1.1\r\nHost: evil@example.com\r\n\r\n", status: 400},
		{name: "Host list", raw: "GET / HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n", status: 400},
		{name: "Host with a path", raw: "GET / HTTP/1.1\r\nHost: example.com/x\r\n\r\n", status: 400},
		{name: "Host with bad port", raw: "GET / HTTP/1.1\r\nHost: example.com:8x\r\n\r\n", status: 400},
		{name: "Host IPv6 without brackets", raw: "GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", status: 400},
		{name: "absolute-form with another Host", raw: "GET http://a.example/p HTTP/1.1\r\nHost: b.example\r\n\r\n" + next, rest: next,
			check: func(r *http.Request) string {
				if r.Host != "a.example" || r.URL.Host != "a.example" || r.Header["Host"] != nil {
					return "Host = " + r.Host + ", want the target's authority"
				}
				return ""
			}},
		{name: "absolute-form with userinfo", raw: "GET http://b.example@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", status: 400},
		{name: "absolute-form other scheme", raw: "GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", status: 400},
		{name: "absolute-form without host", raw: "GET http:///p HTTP/1.1\r\nHost: a.example\r\n\r\n", status: 400},
		{name: "fragment in target", raw: "GET /a#/../admin HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "space in target", raw: "GET /a b HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "two spaces", raw: "GET  / HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "trailing space", raw: "GET / HTTP/1.1 \r\nHost: example.com\r\n\r\n", status: 400},
		{name: "tab separator", raw: "GET\t/ HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "non-ASCII target", raw: "GET /\xc3\xa9 HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "bad escape", raw: "GET /%zz HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "HTTP/2.0", raw: "GET / HTTP/2.0\r\nHost: example.com\r\n\r\n", status: 505},
		{name: "HTTP/0.9 style", raw: "GET /\r\n\r\n", status: 400},
		{name: "HTTP/1.10", raw: "GET / HTTP/1.10\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "lower-case version", raw: "GET / http/1.1\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "CONNECT with a path", raw: "CONNECT /x HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "CONNECT without port", raw: "CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400},
		{name: "asterisk for GET", raw: "GET * HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400},

		// The chunked coding.
		{name: "chunk size overflow", raw: post + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size over int64", raw: post + "Transfer-Encoding: chunked\r\n\r\n8000000000000000\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size with leading zeros", raw: post + "Transfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n000\r\n\r\n" + next, body: "hello", rest: next},
		{name: "chunk size with leading space", raw: post + "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size with sign", raw: post + "Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size 0x", raw: post + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size with trailing junk", raw: post + "Transfer-Encoding: chunked\r\n\r\n5g\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size with trailing space", raw: post + "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size empty", raw: post + "Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk extension with CRLF in quotes", raw: post + "Transfer-Encoding: chunked\r\n\r\n5 ; a=b ;c; d = \"x;\\\"\r\ny\"\r\n", status: 400},
		{name: "chunk extensions valid", raw: post + "Transfer-Encoding: chunked\r\n\r\n5 ; a=b ;c; d = \"x;\\\" y\"\r\nhello\r\n0;last\r\n\r\n" + next,
			body: "hello", rest: next},
		{name: "chunk extension unterminated quote", raw: post + "Transfer-Encoding: chunked\r\n\r\n5;a=\"b\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk extension with LF", raw: post + "Transfer-Encoding: chunked\r\n\r\n5;a\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk extension without name", raw: post + "Transfer-Encoding: chunked\r\n\r\n5;=b\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk extension too long", raw: post + "Transfer-Encoding: chunked\r\n\r\n5;" + strings.Repeat("a", 4096) + "\r\nhello\r\n0\r\n\r\n", status: 400},
		// 41 extensions of 99 bytes, and 37 bytes on the last chunk: 4096.
		{name: "chunk extensions too long in all", raw: post + "Transfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("1;"+strings.Repeat("e", 98)+"\r\nx\r\n", 41) + "0;" + strings.Repeat("e", 37) + "\r\n\r\n", status: 400},
		{name: "chunk extensions at the limit", raw: post + "Transfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("1;"+strings.Repeat("e", 98)+"\r\nx\r\n", 41) + "0;" + strings.Repeat("e", 36) + "\r\n\r\n" + next,
			body: strings.Repeat("x", 41), rest: next},
		{name: "missing CRLF after data", raw: post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n", status: 400},
		{name: "data longer than its size", raw: post + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "LF after data", raw: post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", status: 400},
		{name: "LF-only chunk lines", raw: post + "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", status: 400},
		{name: "bare CR in chunk line", raw: post + "Transfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n", status: 400},
		{name: "LF ending the trailer section", raw: post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n" + next, status: 400},
		{name: "LF ending a trailer field", raw: post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\n\r\n", status: 400},
		{name: "trailers with CL and TE dropped", raw: post + "Transfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" + "5\r\nhello\r\n0\r\n" +
			"Content-Length: 10\r\nTransfer-Encoding: chunked\r\nHost: evil.example\r\nX-Sum: 42\r\n\r\n" + next,
			body: "hello", rest: next,
			check: func(r *http.Request) string {
				if diff := cmp.Diff(http.Header{"X-Sum": {"42"}}, r.Trailer); diff != "" {
					return "trailer (-want +got):\n" + diff
				}
				return ""
			}},
		{name: "trailer obs-fold", raw: post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\r\n 2\r\n\r\n", status: 400},
		{name: "trailer space before colon", raw: post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX-A : 1\r\n\r\n", status: 400},
		{name: "trailer section too large", raw: post + "Transfer-Encoding: chunked\r\n\r\n0\r\n" +
			strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 70) + "\r\n", status: 400},
		{name: "too many trailer fields", raw: post + "Transfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("X-A: 1\r\n", 101) + "\r\n", status: 400},
		{name: "chunked body cut short", raw: post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhel", eof: true},
		{name: "chunked body without last chunk", raw: post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", eof: true},
		{name: "pipelined after chunked body", raw: post + "Transfer-Encoding: chunked\r\n\r\n" + "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" + next + next,
			body: "abcde", rest: next + next},
		{name: "pipelined after empty chunked body", raw: post + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + next, rest: next},

		// Sizes.
		{name: "request line over 64 KiB", raw: "GET /" + strings.Repeat("a", 64<<10) + " HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 414},
		{name: "head over 64 KiB", raw: post + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 66) + "\r\n", status: 431},
		{name: "more than 100 fields", raw: post + strings.Repeat("X-A: 1\r\n", 100) + "\r\n", status: 431},
		{name: "100 fields", raw: post + strings.Repeat("X-A: 1\r\n", 99) + "\r\n" + next, rest: next},
	}
}

// readSmuggle reads the first request of raw as d delivers it, with its
// body, and returns what became of it, in the terms of a smuggleCase.
func readSmuggle(t *testing.T, raw string, d delivery) (got smuggleCase, r *http.Request) {
	br := readerFor(t, raw, d)
	r = new(http.Request)
	err := ReadRequest(br, RequestLimits{}, r)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(NewBody(br, r, RequestLimits{}))
		got.body = string(b)
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		got.eof, got.body = true, ""
	case err != nil:
		got.status, got.body = statusOf(err), ""
		if got.status < 0 {
			t.Fatalf("unexpected error: %v", err)
		}
	default:
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("reading the rest: %v", err)
		}
		got.rest = string(rest)
	}
	return got, r
}

func TestSmugglingCorpus(t *testing.T) {
	for _, tc := range smuggleCases() {
		for _, d := range deliveries {
			t.Run(tc.name+"/"+d.name, func(t *testing.T) {
				got, r := readSmuggle(t, tc.raw, d)
				want := smuggleCase{status: tc.status, body: tc.body, rest: tc.rest, eof: tc.eof}
				if tc.status != 0 || tc.eof {
					want.rest = ""
				}
				opt := cmp.AllowUnexported(smuggleCase{})
				if diff := cmp.Diff(want, got, opt, cmpopts.IgnoreFields(smuggleCase{}, "check")); diff != "" {
					t.Errorf("outcome mismatch (-want +got):\n%s", diff)
				}
				if tc.check != nil && got.status == 0 && !got.eof {
					if msg := tc.check(r); msg != "" {
						t.Error(msg)
					}
				}
			})
		}
	}
}
