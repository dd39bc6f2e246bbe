package h1

import (
	"bufio"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// respCase is a backend's response and what readResponse must make of it:
// refused (why, a substring of the error), cut short (eof), or read with
// exactly body as its body and rest left in the reader — what would be
// taken for the next response if the connection were used again.
type respCase struct {
	name   string
	method string // of the request; "" is GET
	raw    string
	why    string
	eof    bool
	body   string
	rest   string
	check  func(*http.Response) string // further checks of a response read; "" when fine
}

const (
	ok200  = "HTTP/1.1 200 OK\r\n"
	evil   = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nSet-Cookie: JSESSIONID=EVIL\r\n\r\nevil"
	hello5 = "5\r\nhello\r\n0\r\n\r\n"
)

// want returns a check of a response's ContentLength and Close.
func want(cl int64, closeConn bool) func(*http.Response) string {
	return func(r *http.Response) string {
		if r.ContentLength != cl || r.Close != closeConn {
			return "ContentLength or Close not as framed"
		}
		return ""
	}
}

func respCases() []respCase {
	return []respCase{
		// Framing by length.
		{name: "content-length", raw: ok200 + "Content-Length: 5\r\n\r\nhello" + evil, body: "hello", rest: evil, check: want(5, false)},
		{name: "content-length zero", raw: ok200 + "Content-Length: 0\r\n\r\n" + evil, rest: evil, check: want(0, false)},
		{name: "identical content-lengths", raw: ok200 + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + evil, body: "hello", rest: evil,
			check: func(r *http.Response) string {
				if len(r.Header["Content-Length"]) != 1 {
					return "duplicate Content-Length kept"
				}
				return ""
			}},
		{name: "content-length list", raw: ok200 + "Content-Length: 5, 5\r\n\r\nhello" + evil, body: "hello", rest: evil},
		{name: "differing content-lengths", raw: ok200 + "Content-Length: 5\r\nContent-Length: 4\r\n\r\nhello", why: whyLengths},
		{name: "signed content-length", raw: ok200 + "Content-Length: +5\r\n\r\nhello", why: whyContentLength},
		{name: "negative content-length", raw: ok200 + "Content-Length: -1\r\n\r\nhello", why: whyContentLength},
		{name: "content-length overflow", raw: ok200 + "Content-Length: 99999999999999999999\r\n\r\n", why: whyContentLength},
		{name: "body shorter than its length", raw: ok200 + "Content-Length: 10\r\n\r\nhello", eof: true},
		{name: "head cut short", raw: ok200 + "Content-Length: 10\r\n", eof: true},

		// Framing by chunks.
		{name: "chunked", raw: ok200 + "Transfer-Encoding: chunked\r\n\r\n" + hello5 + evil, body: "hello", rest: evil, check: want(-1, false)},
		{name: "chunked with content-length", raw: ok200 + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + hello5 + evil, body: "hello", rest: evil,
			check: func(r *http.Response) string {
				if !r.Close || r.Header["Content-Length"] != nil || r.ContentLength != -1 {
					return "Content-Length kept or Close not forced"
				}
				return ""
			}},
		{name: "chunked in any case", raw: ok200 + "Transfer-Encoding: Chunked\r\n\r\n" + hello5, body: "hello"},
		{name: "gzip then chunked", raw: ok200 + "Transfer-Encoding: gzip, chunked\r\n\r\n" + hello5, why: whyCoding},
		{name: "chunked then gzip", raw: ok200 + "Transfer-Encoding: chunked, gzip\r\n\r\n" + hello5, why: whyChunkedNotLast},
		{name: "chunked twice", raw: ok200 + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + hello5, why: whyChunkedTwice},
		{name: "chunked with parameters", raw: ok200 + "Transfer-Encoding: chunked;q=1\r\n\r\n" + hello5, why: whyTEList},
		{name: "identity", raw: ok200 + "Transfer-Encoding: identity\r\n\r\nhello", why: whyChunkedNotLast},
		{name: "chunked in HTTP/1.0", raw: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + hello5, why: whyTE10Response},
		{name: "malformed chunk size", raw: ok200 + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", why: whyChunkSize},
		{name: "chunk longer than its size", raw: ok200 + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", why: whyChunkCRLF},
		{name: "chunks cut short", raw: ok200 + "Transfer-Encoding: chunked\r\n\r\n5\r\nhel", eof: true},
		{name: "trailers", raw: ok200 + "Transfer-Encoding: chunked\r\nTrailer: X-Sum, Cookie\r\n\r\n" + "5\r\nhello\r\n0\r\nX-Sum: 1\r\nCookie: a=b\r\n\r\n" + evil,
			body: "hello", rest: evil, check: func(r *http.Response) string {
				if !cmp.Equal(r.Trailer, http.Header{"X-Sum": {"1"}}) || r.Header["Trailer"] != nil {
					return "trailers not as announced and sent, less the forbidden"
				}
				return ""
			}},
		{name: "trailer announcing content-length", raw: ok200 + "Transfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n" + hello5, why: whyTrailerFraming},

		// Framing by the end of the connection.
		{name: "no length", raw: ok200 + "\r\nhello" + evil, body: "hello" + evil, check: want(-1, true)},
		{name: "HTTP/1.0 no length", raw: "HTTP/1.0 200 OK\r\n\r\nhello", body: "hello", check: want(-1, true)},
		{name: "HTTP/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello" + evil, body: "hello", rest: evil, check: want(5, false)},
		{name: "HTTP/1.0 without keep-alive", raw: "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", body: "hello", check: want(5, true)},
		{name: "connection close", raw: ok200 + "Connection: Close\r\nContent-Length: 5\r\n\r\nhello", body: "hello", check: want(5, true)},

		// Responses without a body, whatever their fields say.
		{name: "HEAD", method: "HEAD", raw: ok200 + "Content-Length: 5\r\n\r\n" + evil, rest: evil, check: want(5, false)},
		{name: "HEAD without length", method: "HEAD", raw: ok200 + "\r\n" + evil, rest: evil, check: want(-1, false)},
		{name: "HEAD chunked", method: "HEAD", raw: ok200 + "Transfer-Encoding: chunked\r\n\r\n" + evil, rest: evil},
		{name: "204 with length", raw: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n" + evil, rest: evil, check: want(0, false)},
		{name: "304 chunked", raw: "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n" + evil, rest: evil},
		{name: "103", raw: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + evil, rest: evil},

		// The status line.
		{name: "no reason", raw: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"},
		{name: "empty reason", raw: "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"},
		{name: "reason with tab and obs-text", raw: "HTTP/1.1 200 O\tK \xe9\r\nContent-Length: 0\r\n\r\n"},
		{name: "reason with NUL", raw: "HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n", why: whyReason},
		{name: "HTTP/1.2", raw: "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{name: "HTTP/2.0", raw: "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", why: whyStatusVersion},
		{name: "lower-case version", raw: "http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", why: whyStatusLine},
		{name: "two spaces", raw: "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n", why: whyStatusCode},
		{name: "two digits", raw: "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", why: whyStatusCode},
		{name: "four digits", raw: "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", why: whyStatusCode},
		{name: "below 100", raw: "HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n", why: whyStatusCode},
		{name: "empty line first", raw: "\r\n" + ok200 + "Content-Length: 0\r\n\r\n", why: whyStatusLine},
		{name: "a request instead", raw: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", why: whyStatusLine},

		// The fields.
		{name: "obs-fold", raw: ok200 + "X-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", why: whyObsFold},
		{name: "space before colon", raw: ok200 + "Content-Length : 5\r\n\r\nhello", why: whyFieldNameSpace},
		{name: "invalid name", raw: ok200 + "X(A): 1\r\nContent-Length: 0\r\n\r\n", why: whyFieldName},
		{name: "no colon", raw: ok200 + "X-A 1\r\nContent-Length: 0\r\n\r\n", why: whyFieldName},
		{name: "NUL in value", raw: ok200 + "X-A: 1\x002\r\nContent-Length: 0\r\n\r\n", why: whyFieldValue},
		{name: "bare CR", raw: ok200 + "X-A: 1\r2\r\nContent-Length: 0\r\n\r\n", why: whyBareCR},
		{name: "LF line ends", raw: "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello" + evil, body: "hello", rest: evil},
		{name: "host field kept", raw: ok200 + "Host: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n",
			check: func(r *http.Response) string {
				if !slices.Equal(r.Header["Host"], []string{"a", "b"}) {
					return "Host fields not kept as sent"
				}
				return ""
			}},
		{name: "head over 1 MiB", raw: ok200 + strings.Repeat("X-Pad: "+strings.Repeat("p", 4000)+"\r\n", 300) + "\r\n", why: "response header too large"},
		{name: "more than 1000 fields", raw: ok200 + strings.Repeat("X-A: 1\r\n", 1001) + "\r\n", why: whyResponseTooMany},
		{name: "1000 fields", raw: ok200 + strings.Repeat("X-A: 1\r\n", 999) + "Content-Length: 0\r\n\r\n" + evil, rest: evil},
	}
}

// readResp reads the first response of raw, delivered as d delivers it,
// with its body, and returns what became of it.
func readResp(t *testing.T, tc respCase, d delivery) (got respCase, resp *http.Response) {
	br := readerFor(t, tc.raw, d)
	req := &http.Request{Method: "GET"}
	if tc.method != "" {
		req.Method = tc.method
	}
	resp, err := readResponse(br, req)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(resp.Body)
		got.body = string(b)
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		got.eof, got.body = true, ""
	case err != nil:
		var re *responseError
		if !errors.As(err, &re) {
			t.Fatalf("unexpected error: %v", err)
		}
		got.why, got.body = re.reason, ""
	default:
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("reading the rest: %v", err)
		}
		got.rest = string(rest)
	}
	return got, resp
}

// TestResponseCorpus reads each response of the corpus byte by byte, in
// small pieces and whole: a refusal for its reason, or exactly its body
// and exactly the bytes after it left unread.
func TestResponseCorpus(t *testing.T) {
	for _, tc := range respCases() {
		for _, d := range deliveries {
			t.Run(tc.name+"/"+d.name, func(t *testing.T) {
				got, resp := readResp(t, tc, d)
				wantCase := respCase{why: tc.why, body: tc.body, rest: tc.rest, eof: tc.eof}
				if tc.why != "" || tc.eof {
					wantCase.rest = ""
				}
				if got.why != "" && tc.why != "" && strings.Contains(got.why, tc.why) {
					got.why = tc.why
				}
				if diff := cmp.Diff(wantCase, got, cmp.AllowUnexported(respCase{}), cmp.FilterPath(func(p cmp.Path) bool {
					return p.Last().String() == ".check"
				}, cmp.Ignore())); diff != "" {
					t.Errorf("outcome mismatch (-want +got):\n%s", diff)
				}
				if tc.check != nil && got.why == "" && !got.eof {
					if msg := tc.check(resp); msg != "" {
						t.Error(msg)
					}
				}
			})
		}
	}
}

// FuzzReadResponse reads a response with readResponse and with net/http's
// ReadResponse. readResponse may refuse what net/http reads (it is
// stricter: see respCases), but what it reads, net/http must read alike:
// the same status, fields, length, body and trailers, and the same bytes
// left after it — else the two would disagree on where the response
// ends. It may close a connection net/http would keep (Content-Length
// with chunked), never the reverse.
func FuzzReadResponse(f *testing.F) {
	for _, tc := range respCases() {
		if len(tc.raw) < 4<<10 {
			f.Add(tc.raw, tc.method == "HEAD")
		}
	}
	f.Fuzz(func(t *testing.T, raw string, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		req := &http.Request{Method: method}
		br := bufio.NewReader(strings.NewReader(raw))
		ours, err := readResponse(br, req)
		if err != nil {
			return // refused, or cut short
		}
		ourBody, ourErr := io.ReadAll(ours.Body)
		ourRest, _ := io.ReadAll(br)

		sbr := bufio.NewReader(strings.NewReader(raw))
		std, err := http.ReadResponse(sbr, req)
		if err != nil {
			if lenientContentLength(raw) {
				return // a list of equal lengths, or leading zeros (RFC 9110, section 8.6)
			}
			t.Fatalf("readResponse read what net/http refuses (%v):\n%q", err, raw)
		}
		stdBody, stdErr := io.ReadAll(std.Body)
		stdRest, _ := io.ReadAll(sbr)
		if ourErr != nil {
			return // a stricter body reader
		}
		if stdErr != nil {
			t.Fatalf("body read by readResponse, refused by net/http (%v):\n%q", stdErr, raw)
		}
		if ours.StatusCode != std.StatusCode || string(ourBody) != string(stdBody) || string(ourRest) != string(stdRest) {
			t.Fatalf("readResponse and net/http disagree on\n%q\nstatus %d/%d body %q/%q rest %q/%q", raw,
				ours.StatusCode, std.StatusCode, ourBody, stdBody, ourRest, stdRest)
		}
		if !ours.Close && std.Close {
			t.Fatalf("readResponse keeps a connection net/http closes:\n%q", raw)
		}
		if ours.ContentLength != std.ContentLength && !lenientContentLength(raw) {
			t.Fatalf("ContentLength %d, net/http's %d:\n%q", ours.ContentLength, std.ContentLength, raw)
		}
		oh, sh := maps.Clone(ours.Header), maps.Clone(std.Header)
		delete(oh, "Content-Length")
		delete(sh, "Content-Length")
		if !cmp.Equal(oh, sh, cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })) {
			t.Fatalf("fields differ:\n%q\nours %q\nnet/http %q", raw, oh, sh)
		}
		if len(ours.Trailer) > 0 || len(std.Trailer) > 0 {
			for k, v := range ours.Trailer {
				if !slices.Equal(v, std.Trailer[k]) {
					t.Fatalf("trailer %s: %q, net/http %q:\n%q", k, v, std.Trailer[k], raw)
				}
			}
		}
	})
}

// lenientContentLength reports whether raw has a Content-Length that
// readResponse reads and net/http may not: a list of equal values, or a
// value with leading zeros.
func lenientContentLength(raw string) bool {
	for line := range strings.SplitSeq(raw, "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(name, "Content-Length") {
			continue
		}
		v = strings.Trim(v, " \t\r")
		if strings.Contains(v, ",") || (len(v) > 1 && v[0] == '0') {
			return true
		}
	}
	return false
}

// BenchmarkReadResponse reads a Tomcat page's response head and its small
// body with readResponse, and with net/http's ReadResponse for comparison.
//
//	go test -run '^$' -bench ReadResponse ./balancer/internal/h1/
func BenchmarkReadResponse(b *testing.B) {
	raw := "HTTP/1.1 200 \r\nSet-Cookie: JSESSIONID=0331C764C54C18BE926F5E2F468DB0D0.worker1; Path=/; HttpOnly\r\n" +
		"Cache-Control: no-cache\r\nContent-Type: text/html;charset=UTF-8\r\nContent-Language: en-GB\r\n" +
		"Content-Length: 128\r\nDate: Wed, 02 Dec 2026 10:00:00 GMT\r\nKeep-Alive: timeout=20\r\nConnection: keep-alive\r\n\r\n" +
		strings.Repeat("x", 128)
	req := &http.Request{Method: "GET"}
	sr := strings.NewReader(raw)
	br := bufio.NewReaderSize(sr, 16<<10)
	buf := make([]byte, 1024)
	for _, bc := range []struct {
		name string
		read func() (*http.Response, error)
	}{
		{"own", func() (*http.Response, error) { return readResponse(br, req) }},
		{"net-http", func() (*http.Response, error) { return http.ReadResponse(br, req) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sr.Reset(raw)
				br.Reset(sr)
				resp, err := bc.read()
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := resp.Body.Read(buf); err != nil {
						break
					}
				}
			}
		})
	}
}
