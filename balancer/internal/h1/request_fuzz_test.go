package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fuzzLimits are small, so that inputs reach them.
var fuzzLimits = RequestLimits{MaxHeaderBytes: 2048, MaxHeaders: 16}

// stricterHead lists the reasons for which the parser refuses request
// heads that net/http's http.ReadRequest accepts. Each is deliberate; the
// differential check of FuzzReadRequest fails on a refusal for any other
// reason where net/http accepts.
var stricterHead = map[string]string{
	whyLineTooLong:    "net/http's ReadRequest has no size limit (its server wraps the reader)",
	whyHeadTooLarge:   "net/http's ReadRequest has no size limit",
	whyTooManyFields:  "net/http's ReadRequest has no limit on the number of fields",
	whyEmptyLines:     "RFC 9112 2.2 asks to skip at least one; more than four is not a client's slip",
	whyVersionSupport: "net/http's ReadRequest parses any HTTP/x.y; its server refuses what it does not serve",
	whyEmptyTarget:    "net/http takes an empty CONNECT target as an authority without a host",
	whyTargetChar:     "net/http accepts bytes over 0x7e in a target; RFC 9112 3.2 does not",
	whyFragment:       "a fragment is not part of a request-target; servers differ on cutting it",
	whyTargetForm:     "authority-form only for CONNECT, asterisk-form only for OPTIONS (RFC 9112 3.2.3-4)",
	whyScheme:         "absolute-form only for http and https",
	whyUserinfo:       "RFC 9110 4.2.4: userinfo hides the real host",
	whyAuthority:      "the target's host is checked as a Host field is",
	whyObsFold:        "net/http unfolds obs-fold; refusing it is RFC 9112 5.2's safe choice",
	whyNoHost:         "net/http's server refuses it, its ReadRequest does not",
	whyHost:           "net/http's server checks the Host value, more loosely; its ReadRequest does not",
	whyTE10:           "net/http ignores Transfer-Encoding in HTTP/1.0; RFC 9112 6.1 calls the framing faulty",
	whyFieldNameSpace: "net/http keeps such a name as another field (go.dev/issue/34540); RFC 9112 5.1 requires 400",
}

// stricterBody lists the reasons for which the parser refuses chunked
// bodies that net/http's body reader accepts, as stricterHead does heads.
var stricterBody = map[string]string{
	whyChunkWS:         "net/http ignores whitespace after a chunk size; the grammar (RFC 9112 7.1) has none",
	whyChunkExt:        "net/http drops chunk extensions unchecked",
	whyChunkExtSize:    "net/http bounds non-data bytes by a ratio, the parser by a total",
	whyChunkSize:       "net/http takes chunk sizes up to 2^64-1; the parser's bound is int64",
	whyTrailerFields:   "net/http bounds a trailer section by its buffer only",
	whyTrailerTooLarge: "as above, with a larger buffer",
	whyObsFold:         "net/http unfolds obs-fold in a trailer section too",
	whyFieldNameSpace:  "net/http keeps such a trailer name as another field",
	whyChunkLF:         "net/http's trailer reader takes an LF alone as the end of the section; chunked framing is held to CRLF",
}

// laxerThanStd says why the parser accepted the request at the start of
// data that net/http's ReadRequest refused, or "" if it should not have:
// the deliberate differences.
func laxerThanStd(data []byte, r *http.Request) string {
	if data[0] == '\r' || data[0] == '\n' {
		return "empty lines before the request line are skipped (RFC 9112 2.2)"
	}
	end := bytes.Index(data, []byte("\n\r\n"))
	if e := bytes.Index(data, []byte("\n\n")); end < 0 || (e >= 0 && e < end) {
		end = e
	}
	head := strings.ToLower(string(data[:end+1]))
	if n := strings.Count(head, "\ncontent-length:"); n > 1 || (n == 1 && (strings.Contains(r.Header.Get("Content-Length"), ",") ||
		strings.Contains(head[strings.Index(head, "\ncontent-length:"):], ","))) {
		return "equal Content-Length values in a list or in fields are one (RFC 9110 8.6)"
	}
	return ""
}

// laxerBodyThanStd says why the parser accepted the chunked body in data
// that net/http's body reader refused, or "" if it should not have.
func laxerBodyThanStd(data []byte) string {
	if bytes.Contains(data, []byte(" ;")) || bytes.Contains(data, []byte("\t;")) {
		return "whitespace before a chunk extension's semicolon (BWS in RFC 9112 7.1.1)"
	}
	return ""
}

// fuzzOutcome records what the parser made of one request of a stream,
// for comparing deliveries.
type fuzzOutcome struct {
	Summary summary
	Body    string
	Trailer http.Header
	Err     string
}

// fuzzStream reads data as a stream of pipelined requests delivered as d,
// checking the invariants of every accepted request, and returns what
// became of each.
func fuzzStream(t *testing.T, data []byte, d delivery, differential bool) []fuzzOutcome {
	cr := &countReader{r: bytes.NewReader(data)}
	var rd io.Reader = cr
	if d.oneByte {
		rd = iotest.OneByteReader(cr)
	}
	br := bufio.NewReaderSize(rd, d.bufSize)
	var out []fuzzOutcome
	var r http.Request
	for range 64 {
		pos := cr.n - br.Buffered()
		err := ReadRequest(br, fuzzLimits, &r)
		if err == io.EOF {
			if rest := strings.Trim(string(data[pos:]), "\r\n"); rest != "" || len(data)-pos > 2*maxEmptyLines {
				t.Fatalf("io.EOF with %q left", data[pos:])
			}
			return out
		}
		if differential {
			checkStd(t, data[pos:], cr.n-br.Buffered()-pos, &r, err)
		}
		if err != nil {
			if statusOf(err) <= 0 && err != io.ErrUnexpectedEOF {
				t.Fatalf("ReadRequest: unexpected error %v", err)
			}
			return append(out, fuzzOutcome{Err: err.Error()})
		}
		checkRequest(t, data[pos:cr.n-br.Buffered()], &r)
		body := NewBody(br, &r, fuzzLimits)
		b, err := io.ReadAll(body)
		o := fuzzOutcome{Summary: summarize(&r), Body: string(b), Trailer: r.Trailer.Clone()}
		o.Summary.Header = r.Header.Clone()
		if err != nil {
			if statusOf(err) != 400 && err != io.ErrUnexpectedEOF {
				t.Fatalf("body: unexpected error %v", err)
			}
			o.Err = err.Error()
			return append(out, o)
		}
		if r.ContentLength >= 0 && int64(len(b)) != r.ContentLength {
			t.Fatalf("body of %d bytes for Content-Length %d", len(b), r.ContentLength)
		}
		out = append(out, o)
	}
	return out
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// checkRequest checks the invariants of an accepted request whose head,
// with the empty lines before it, is head.
func checkRequest(t *testing.T, head []byte, r *http.Request) {
	te := len(r.TransferEncoding) > 0
	switch {
	case !te && r.ContentLength >= 0:
	case te && r.ContentLength == -1 && len(r.TransferEncoding) == 1 && r.TransferEncoding[0] == "chunked" &&
		r.Header["Content-Length"] == nil:
	default:
		t.Fatalf("framing: ContentLength %d, TransferEncoding %q, Content-Length %q",
			r.ContentLength, r.TransferEncoding, r.Header["Content-Length"])
	}
	if !te && r.ContentLength > 0 && r.Header.Get("Content-Length") != strconv.FormatInt(r.ContentLength, 10) {
		t.Fatalf("Content-Length field %q for ContentLength %d", r.Header["Content-Length"], r.ContentLength)
	}
	if r.ProtoMajor != 1 || r.ProtoMinor > 1 {
		t.Fatalf("version %d.%d", r.ProtoMajor, r.ProtoMinor)
	}
	if r.ProtoMinor == 1 && !bytes.Contains(bytes.ToLower(head), []byte("\nhost:")) {
		t.Fatalf("HTTP/1.1 request without a Host field accepted")
	}
	if len(head) > fuzzLimits.MaxHeaderBytes+2*maxEmptyLines {
		t.Fatalf("head of %d bytes accepted", len(head))
	}
	fields := 0
	for k, vv := range r.Header {
		if k != textproto.CanonicalMIMEHeaderKey(k) || k == "Host" || k == "Transfer-Encoding" {
			t.Fatalf("header key %q", k)
		}
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n\x00") || v != strings.Trim(v, " \t") {
				t.Fatalf("header value %q", v)
			}
		}
		fields += len(vv)
	}
	if fields > fuzzLimits.MaxHeaders {
		t.Fatalf("%d header fields accepted", fields)
	}
}

// checkStd reads the request at the start of data with net/http's
// http.ReadRequest and its body, and fails unless the two parsers agree
// or differ deliberately. r and err are the parser's, which read headLen
// bytes.
func checkStd(t *testing.T, data []byte, headLen int, r *http.Request, err error) {
	std, stdErr := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		re, ok := errors.AsType[*RequestError](err)
		if stdErr != nil {
			return // both refuse
		}
		if !ok {
			t.Fatalf("head ended early (%v) where net/http read a request: %q", err, data)
		}
		if _, deliberate := stricterHead[re.Reason]; !deliberate {
			t.Fatalf("refused (%v) what net/http accepts: %q", err, data)
		}
		return
	}
	if stdErr != nil {
		if why := laxerThanStd(data, r); why == "" {
			t.Fatalf("accepted what net/http refuses (%v): %q", stdErr, data)
		}
		return
	}
	want := summarize(std)
	want.Header = std.Header.Clone()
	delete(want.Header, "Host")
	if cc := want.Header["Cache-Control"]; len(cc) == 1 && cc[0] == "no-cache" && r.Header["Cache-Control"] == nil {
		delete(want.Header, "Cache-Control") // net/http adds it for Pragma: no-cache
	}
	if std.ProtoMinor > 1 {
		want.Proto, want.ProtoMinor = "HTTP/1.1", 1 // a later HTTP/1.x is HTTP/1.1 (RFC 9110 2.5)
	}
	got := summarize(r)
	got.Header = r.Header.Clone()
	if cl := want.Header["Content-Length"]; len(cl) == 1 && len(got.Header["Content-Length"]) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && strconv.FormatInt(n, 10) == got.Header["Content-Length"][0] {
			want.Header["Content-Length"] = got.Header["Content-Length"] // leading zeros dropped
		}
	}
	if r.Close && !std.Close && len(r.TransferEncoding) > 0 && bytes.Contains(bytes.ToLower(data), []byte("\ncontent-length:")) {
		want.Close = true // closed after a request with both Content-Length and Transfer-Encoding (RFC 9112 6.1)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("request differs from net/http's (-net/http +h1):\n%s\ninput %q", diff, data)
	}
	// The parser's body is read from a copy of the input, as the stream
	// goes on from its own reader, into a copy of r's trailers.
	rc := *r
	rc.Trailer = r.Trailer.Clone()
	own, ownErr := io.ReadAll(NewBody(bufio.NewReader(bytes.NewReader(data[headLen:])), &rc, fuzzLimits))
	stdBody, stdBodyErr := io.ReadAll(std.Body)
	switch re, refused := errors.AsType[*RequestError](ownErr); {
	case ownErr == nil && stdBodyErr == nil:
		if !bytes.Equal(own, stdBody) {
			t.Fatalf("body %q, net/http's %q; input %q", own, stdBody, data)
		}
	case ownErr != nil && !refused && stdBodyErr == nil:
		t.Fatalf("body ended early (%v) where net/http read it: %q", ownErr, data)
	case refused && stdBodyErr == nil:
		if _, deliberate := stricterBody[re.Reason]; !deliberate {
			t.Fatalf("body refused (%v) where net/http accepts it: %q", ownErr, data)
		}
	case ownErr == nil && stdBodyErr != nil && stdBodyErr != io.ErrUnexpectedEOF:
		if why := laxerBodyThanStd(data); why == "" {
			t.Fatalf("body accepted where net/http refuses it (%v): %q", stdBodyErr, data)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	for _, tc := range smuggleCases() {
		if len(tc.raw) <= 4<<10 {
			f.Add([]byte(tc.raw))
		}
	}
	f.Add([]byte(typicalRequest + typicalRequest))
	f.Add([]byte("GET /a%20b?q HTTP/1.1\r\nHost: a\r\nCookie: x=1\r\ncookie: y=2\r\n\r\n" +
		"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\nOPTIONS * HTTP/1.0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		first := fuzzStream(t, data, delivery{"buf4096", 4096, false}, true)
		for _, d := range []delivery{{"buf16", 16, false}, {"onebyte", 64, true}} {
			if diff := cmp.Diff(first, fuzzStream(t, data, d, false), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("%s differs from buf4096 (-buf4096 +%s):\n%s", d.name, d.name, diff)
			}
		}
	})
}
