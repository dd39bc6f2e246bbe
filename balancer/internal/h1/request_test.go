package h1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// loopbackDeadline bounds every read and write of a test connection.
const loopbackDeadline = 10 * time.Second

// sendLoopback returns the server end of a TCP connection on 127.0.0.1
// whose client end writes raw and then closes its writing side, so that
// the server reads raw and then EOF. The connection is closed, and the
// writer waited for, at the test's end.
func sendLoopback(t testing.TB, raw string) net.Conn {
	t.Helper()
	client, server := stepLoopback(t)
	written := make(chan struct{})
	go func() {
		defer close(written)
		// A reader that refuses a request stops reading, and closing its
		// end ends a write blocked on a full socket buffer.
		if _, err := io.WriteString(client, raw); err == nil {
			client.(*net.TCPConn).CloseWrite()
		}
	}()
	t.Cleanup(func() { // before stepLoopback's: the writer may wait on server
		server.Close()
		<-written
	})
	return server
}

// delivery is a way bytes reach the parser: the size of its bufio.Reader,
// and whether every read of the connection returns one byte.
type delivery struct {
	name    string
	bufSize int
	oneByte bool
}

// deliveries are the ways every corpus case is read: with net/http's
// buffer size, with the smallest buffer bufio allows (every head but the
// shortest is gathered outside br's buffer), and one byte per read.
var deliveries = []delivery{
	{"buf4096", 4096, false},
	{"buf16", 16, false},
	{"onebyte", 4096, true},
}

// readerFor returns the bufio.Reader the parser reads raw from, over a
// loopback connection, as d delivers it.
func readerFor(t testing.TB, raw string, d delivery) *bufio.Reader {
	var rd io.Reader = sendLoopback(t, raw)
	if d.oneByte {
		rd = iotest.OneByteReader(rd)
	}
	return bufio.NewReaderSize(rd, d.bufSize)
}

// summary is the fields ReadRequest sets, for comparisons.
type summary struct {
	Method, RequestURI, Proto string
	ProtoMajor, ProtoMinor    int
	Scheme, URLHost, Path     string
	RawPath, RawQuery         string
	ForceQuery                bool
	Host                      string
	Header                    http.Header
	ContentLength             int64
	TransferEncoding          []string
	Close                     bool
}

// summarize returns r's summary.
func summarize(r *http.Request) summary {
	return summary{
		Method: r.Method, RequestURI: r.RequestURI, Proto: r.Proto,
		ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Scheme: r.URL.Scheme, URLHost: r.URL.Host, Path: r.URL.Path,
		RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery, ForceQuery: r.URL.ForceQuery,
		Host: r.Host, Header: r.Header, ContentLength: r.ContentLength,
		TransferEncoding: r.TransferEncoding, Close: r.Close,
	}
}

// get1 is an HTTP/1.1 GET summary with the fields most cases share.
func get1(target, path string, h http.Header) summary {
	return summary{Method: "GET", RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Path: path, Host: "example.com", Header: h}
}

func TestReadRequestValid(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want summary
		body string
	}{{
		name: "origin-form",
		raw:  "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: get1("/index.html", "/index.html", http.Header{}),
	}, {
		name: "origin-form with query and escapes",
		raw:  "GET /a%20b/%2F?q=1&r=%20 HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: func() summary {
			s := get1("/a%20b/%2F?q=1&r=%20", "/a b//", http.Header{})
			s.RawPath, s.RawQuery = "/a%20b/%2F", "q=1&r=%20"
			return s
		}(),
	}, {
		name: "empty query",
		raw:  "GET /a? HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: func() summary { s := get1("/a?", "/a", http.Header{}); s.ForceQuery = true; return s }(),
	}, {
		name: "absolute-form replaces Host",
		raw:  "GET HTTP://Backend.example:8080/p?x HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: func() summary {
			s := get1("HTTP://Backend.example:8080/p?x", "/p", http.Header{})
			s.Scheme, s.URLHost, s.Host, s.RawQuery = "http", "Backend.example:8080", "Backend.example:8080", "x"
			return s
		}(),
	}, {
		name: "absolute-form without path",
		raw:  "OPTIONS https://[::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
		want: summary{Method: "OPTIONS", RequestURI: "https://[::1]:8443", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Scheme: "https", URLHost: "[::1]:8443", Host: "[::1]:8443", Header: http.Header{}},
	}, {
		name: "authority-form",
		raw:  "CONNECT backend.example:443 HTTP/1.1\r\nHost: backend.example:443\r\n\r\n",
		want: summary{Method: "CONNECT", RequestURI: "backend.example:443", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			URLHost: "backend.example:443", Host: "backend.example:443", Header: http.Header{}},
	}, {
		name: "asterisk-form",
		raw:  "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: summary{Method: "OPTIONS", RequestURI: "*", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Path: "*", Host: "example.com", Header: http.Header{}},
	}, {
		name: "HTTP/1.0 keep-alive without Host",
		raw:  "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
		want: summary{Method: "GET", RequestURI: "/", Proto: "HTTP/1.0", ProtoMajor: 1, ProtoMinor: 0, Path: "/",
			Header: http.Header{"Connection": {"Keep-Alive"}}},
	}, {
		name: "HTTP/1.0 closes by default",
		raw:  "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n",
		want: summary{Method: "GET", RequestURI: "/", Proto: "HTTP/1.0", ProtoMajor: 1, ProtoMinor: 0, Path: "/",
			Host: "example.com", Header: http.Header{}, Close: true},
	}, {
		name: "HTTP/1.1 Connection close among other options",
		raw:  "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: TE, Close\r\nTE: trailers\r\n\r\n",
		want: func() summary {
			s := get1("/", "/", http.Header{"Connection": {"TE, Close"}, "Te": {"trailers"}})
			s.Close = true
			return s
		}(),
	}, {
		name: "HTTP/1.9 is HTTP/1.1",
		raw:  "GET / HTTP/1.9\r\nHost: example.com\r\n\r\n",
		want: get1("/", "/", http.Header{}),
	}, {
		name: "identical Content-Length fields and list",
		raw:  "POST /f HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5, 5\r\ncontent-length:005\r\n\r\nhello",
		want: summary{Method: "POST", RequestURI: "/f", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Path: "/f",
			Host: "example.com", Header: http.Header{"Content-Length": {"5"}}, ContentLength: 5},
		body: "hello",
	}, {
		name: "chunked",
		raw:  "PUT /u HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		want: summary{Method: "PUT", RequestURI: "/u", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Path: "/u",
			Host: "example.com", Header: http.Header{"Expect": {"100-continue"}}, ContentLength: -1,
			TransferEncoding: []string{"chunked"}},
		body: "abc",
	}, {
		name: "whitespace around values",
		raw:  "GET / HTTP/1.1\r\nHost:example.com \r\nX-A: \t a b \t\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
		want: get1("/", "/", http.Header{"X-A": {"a b"}, "X-Empty": {""}, "X-Obs": {"caf\xc3\xa9"}}),
	}, {
		name: "many cookies, keys canonical",
		raw: "GET / HTTP/1.1\r\nhost: example.com\r\ncookie: a=1\r\nCOOKIE: b=2\r\nCookie: c=3; d=4\r\n" +
			"user-agent: t\r\nx-custom-thing: v\r\nX-CUSTOM-THING: w\r\n\r\n",
		want: get1("/", "/", http.Header{"Cookie": {"a=1", "b=2", "c=3; d=4"}, "User-Agent": {"t"},
			"X-Custom-Thing": {"v", "w"}}),
	}, {
		name: "leading empty lines and bare LF line ends",
		raw:  "\r\n\nGET / HTTP/1.1\nHost: example.com\nAccept: */*\r\n\n",
		want: get1("/", "/", http.Header{"Accept": {"*/*"}}),
	}, {
		name: "empty Host",
		raw:  "GET / HTTP/1.1\r\nHost:\r\n\r\n",
		want: func() summary { s := get1("/", "/", http.Header{}); s.Host = ""; return s }(),
	}}
	for _, tt := range tests {
		for _, d := range deliveries {
			t.Run(tt.name+"/"+d.name, func(t *testing.T) {
				br := readerFor(t, tt.raw, d)
				var r http.Request
				if err := ReadRequest(br, RequestLimits{}, &r); err != nil {
					t.Fatalf("ReadRequest: %v", err)
				}
				if diff := cmp.Diff(tt.want, summarize(&r), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("request mismatch (-want +got):\n%s", diff)
				}
				body, err := io.ReadAll(NewBody(br, &r, RequestLimits{}))
				if err != nil || string(body) != tt.body {
					t.Errorf("body = %q, %v; want %q", body, err, tt.body)
				}
				if err := ReadRequest(br, RequestLimits{}, &r); err != io.EOF {
					t.Errorf("ReadRequest after the request = %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestReadRequestReuse(t *testing.T) {
	raw := "POST /one?a HTTP/1.1\r\nHost: one.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n" +
		"X-One: 1\r\n\r\n4\r\nbody\r\n0\r\nX-Sum: 9\r\n\r\n" +
		"GET /two HTTP/1.1\r\nHost: two.example\r\n\r\n" +
		"PUT http://three.example/3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
	want := []struct {
		s       summary
		body    string
		trailer http.Header
	}{{
		s: summary{Method: "POST", RequestURI: "/one?a", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Path: "/one", RawQuery: "a", Host: "one.example", Header: http.Header{"X-One": {"1"}},
			ContentLength: -1, TransferEncoding: []string{"chunked"}, Close: true},
		body: "body", trailer: http.Header{"X-Sum": {"9"}},
	}, {
		s: get1("/two", "/two", http.Header{}),
	}, {
		s: summary{Method: "PUT", RequestURI: "http://three.example/3", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Scheme: "http", URLHost: "three.example", Path: "/3", Host: "three.example",
			Header: http.Header{"Content-Length": {"3"}}, ContentLength: 3},
		body: "abc",
	}}
	want[1].s.Host = "two.example"
	br := readerFor(t, raw, deliveries[0])
	var r http.Request
	h, u := http.Header(nil), r.URL
	for i, w := range want {
		if err := ReadRequest(br, RequestLimits{}, &r); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if i == 0 {
			h, u = r.Header, r.URL
			r.Form = map[string][]string{"stale": {"x"}} // as a handler would leave it
			r.Pattern = "stale"
		} else if !sameMap(h, r.Header) || u != r.URL {
			t.Errorf("request %d: Header or URL not reused", i)
		}
		if diff := cmp.Diff(w.s, summarize(&r), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("request %d mismatch (-want +got):\n%s", i, diff)
		}
		body, err := io.ReadAll(NewBody(br, &r, RequestLimits{}))
		if err != nil || string(body) != w.body {
			t.Errorf("request %d: body = %q, %v; want %q", i, body, err, w.body)
		}
		if diff := cmp.Diff(w.trailer, r.Trailer, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("request %d: trailer mismatch (-want +got):\n%s", i, diff)
		}
		if i > 0 && (r.Form != nil || r.Pattern != "" || r.Body != nil) {
			t.Errorf("request %d: Form %v, Pattern %q, Body %v carried over", i, r.Form, r.Pattern, r.Body)
		}
	}
}

// sameMap reports whether a and b are the same map.
func sameMap(a, b http.Header) bool {
	if a == nil || b == nil {
		return false
	}
	a["X-Same-Map-Probe"] = nil
	_, ok := b["X-Same-Map-Probe"]
	delete(a, "X-Same-Map-Probe")
	return ok
}

func TestReadRequestConnErrors(t *testing.T) {
	t.Run("EOF between requests", func(t *testing.T) {
		br := readerFor(t, "\r\n", deliveries[0])
		var r http.Request
		if err := ReadRequest(br, RequestLimits{}, &r); err != io.EOF {
			t.Errorf("err = %v, want io.EOF", err)
		}
	})
	t.Run("EOF inside a head", func(t *testing.T) {
		for _, d := range deliveries {
			br := readerFor(t, "GET / HTTP/1.1\r\nHost: example.com\r\nX-Long-Field: "+strings.Repeat("v", 100), d)
			var r http.Request
			if err := ReadRequest(br, RequestLimits{}, &r); err != io.ErrUnexpectedEOF {
				t.Errorf("%s: err = %v, want io.ErrUnexpectedEOF", d.name, err)
			}
		}
	})
	t.Run("timeout unchanged", func(t *testing.T) {
		c := sendLoopback(t, "GET / HTTP/1.1\r\n") // the rest never comes
		c.SetReadDeadline(time.Now())
		var r http.Request
		err := ReadRequest(bufio.NewReader(c), RequestLimits{}, &r)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("err = %v, want the connection's timeout", err)
		}
		if _, ok := errors.AsType[*RequestError](err); ok {
			t.Errorf("err = %v is a RequestError", err)
		}
	})
}

func TestRequestLimits(t *testing.T) {
	lim := RequestLimits{MaxHeaderBytes: 100, MaxHeaders: 3}
	line := func(n int) string {
		return "GET /" + strings.Repeat("a", n-len("GET / HTTP/1.1\r\n")) + " HTTP/1.1\r\n"
	}
	head := line(50) + "Host: example.com\r\n"
	head += "X: " + strings.Repeat("b", 100-len(head)-len("X: \r\n\r\n")) + "\r\n\r\n" // exactly 100 bytes
	tests := []struct {
		name   string
		raw    string
		status int
	}{
		{"head at the limit", head, 0},
		{"head over the limit", strings.Replace(head, "X: ", "X: b", 1), 431},
		{"request line at the limit", line(100) + "\r\n", 431},
		{"request line over the limit", line(101), 414},
		{"request line over the limit, unended", line(110)[:101], 414},
		{"fields at the limit", "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n", 0},
		{"fields over the limit", "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n", 431},
	}
	for _, tt := range tests {
		for _, d := range deliveries {
			t.Run(tt.name+"/"+d.name, func(t *testing.T) {
				var r http.Request
				err := ReadRequest(readerFor(t, tt.raw, d), lim, &r)
				if got := statusOf(err); got != tt.status {
					t.Errorf("ReadRequest: %v (status %d), want status %d", err, got, tt.status)
				}
			})
		}
	}
	t.Run("defaults", func(t *testing.T) {
		if (RequestLimits{}).headerBytes() != 64<<10 || (RequestLimits{}).headers() != 100 {
			t.Errorf("defaults = %d bytes, %d fields", RequestLimits{}.headerBytes(), RequestLimits{}.headers())
		}
	})
}

// statusOf returns the status of a *RequestError in err's chain, 0 for
// nil, and -1 for any other error.
func statusOf(err error) int {
	if err == nil {
		return 0
	}
	if re, ok := errors.AsType[*RequestError](err); ok {
		return re.Status
	}
	return -1
}

func TestFieldKey(t *testing.T) {
	names := []string{"accept", "ACCEPT-ENCODING", "x-forwarded-for", "X-Real-IP", "te", "soapaction",
		"upgrade-insecure-requests", "x-unknown-header", "X_Under", "content-type", "Content-Type", "a", "A-"}
	for _, n := range names {
		if got, want := fieldKey(n), textproto.CanonicalMIMEHeaderKey(n); got != want {
			t.Errorf("fieldKey(%q) = %q, want %q", n, got, want)
		}
	}
	// Every common key is canonical, and found from any case.
	for _, k := range []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type", "Cookie", "Date",
		"Expect", "Forwarded", "Host", "If-Match", "If-Modified-Since", "If-None-Match", "Keep-Alive", "Origin",
		"Pragma", "Priority", "Range", "Referer", "Soapaction", "Te", "Traceparent", "Trailer",
		"Transfer-Encoding", "Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id", "X-Requested-With"} {
		if textproto.CanonicalMIMEHeaderKey(k) != k {
			t.Errorf("%q is not canonical", k)
		}
		if got := commonKey([]byte(strings.ToLower(k))); got != k {
			t.Errorf("commonKey(%q) = %q", strings.ToLower(k), got)
		}
		lower := strings.ToUpper(k)
		if n := testing.AllocsPerRun(10, func() { fieldKey(lower) }); n != 0 {
			t.Errorf("fieldKey(%q) allocates %v times", lower, n)
		}
	}
}

// typicalRequest is a browser's request with ten header fields.
const typicalRequest = "GET /shop/cart?item=42&ref=home HTTP/1.1\r\n" +
	"Host: shop.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Referer: https://shop.example.com/\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: JSESSIONID=0123456789ABCDEF0123456789ABCDEF; theme=dark\r\n" +
	"Upgrade-Insecure-Requests: 1\r\n" +
	"Cache-Control: max-age=0\r\n" +
	"\r\n"

func TestReadRequestAllocs(t *testing.T) {
	rd := strings.NewReader(typicalRequest)
	br := bufio.NewReader(rd)
	var r http.Request
	read := func() {
		rd.Reset(typicalRequest)
		br.Reset(rd)
		if err := ReadRequest(br, RequestLimits{}, &r); err != nil {
			t.Fatal(err)
		}
	}
	read() // the Header map and the URL, made once
	// The head's one string, and the header values' backing array.
	if n := testing.AllocsPerRun(100, read); n > 2 {
		t.Errorf("ReadRequest of a typical request into a reused Request: %v allocations, want at most 2", n)
	}
}
