package h1

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/carbonlb/carbonlb/balancer/internal/rawtest"
)

// writeReq is a request for the writer tests, built afresh for each
// writer since a write consumes the body.
type writeReq struct {
	method, host, path, rawPath, query, opaque string
	forceQuery, close                          bool
	header                                     http.Header
	body                                       string // with a body when hasBody
	hasBody                                    bool
	cl                                         int64 // Content-Length; -1: len(body)
	te                                         []string
	trailer                                    http.Header
}

// closeCounter is a body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func (w writeReq) build() (*http.Request, *closeCounter) {
	u := &url.URL{Scheme: "http", Host: "backend:8080", Path: w.path, RawPath: w.rawPath, RawQuery: w.query, Opaque: w.opaque, ForceQuery: w.forceQuery}
	r := &http.Request{Method: w.method, URL: u, Host: w.host, Header: http.Header{}, Close: w.close, TransferEncoding: w.te, Trailer: w.trailer}
	for k, v := range w.header {
		r.Header[k] = append([]string(nil), v...)
	}
	var body *closeCounter
	if w.hasBody {
		body = &closeCounter{Reader: strings.NewReader(w.body)}
		r.Body = body
		r.ContentLength = int64(len(w.body))
	}
	if w.cl >= 0 {
		r.ContentLength = w.cl
	}
	return r, body
}

// compareWrite writes w with writeRequest and with net/http's
// Request.Write, and fails unless both wrote the same bytes, both failed
// or both succeeded, and both closed the body.
func compareWrite(t *testing.T, name string, w writeReq) {
	t.Helper()
	var want bytes.Buffer
	r1, b1 := w.build()
	werr := r1.Write(&want)

	var got bytes.Buffer
	bw := bufio.NewWriterSize(&got, 64)
	r2, b2 := w.build()
	gerr := writeRequest(bw, r2)
	if ferr := bw.Flush(); gerr == nil {
		gerr = ferr
	}
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: net/http's error %v, writeRequest's %v", name, werr, gerr)
	}
	if werr == nil && got.String() != want.String() {
		t.Fatalf("%s: writeRequest wrote\n%q\nnet/http\n%q", name, got.String(), want.String())
	}
	if b1 != nil && (b1.closed == 0) != (b2.closed == 0) {
		t.Fatalf("%s: body closed %d times by net/http, %d by writeRequest", name, b1.closed, b2.closed)
	}
}

func TestWriteRequestMatchesNetHTTP(t *testing.T) {
	many := http.Header{}
	for i := range 40 {
		many[fmt.Sprintf("X-H%02d", 39-i)] = []string{fmt.Sprint(i)}
	}
	common := http.Header{
		"Accept":          {"*/*"},
		"Cookie":          {"JSESSIONID=0331C764C54C18BE926F5E2F468DB0D0"},
		"X-Forwarded-For": {"127.0.0.1"},
		"X-Multi":         {"a", "b", ""},
		"Content-Length":  {"99"}, // never written from the header
		"Host":            {"ignored"},
		"Trailer":         {"X"},
	}
	cases := map[string]writeReq{
		"plain GET":           {method: "GET", host: "app.example.com", path: "/carbon/index.jsp", cl: -1, header: common},
		"empty method":        {host: "h", path: "/", cl: -1},
		"empty path":          {method: "GET", host: "h", cl: -1},
		"query":               {method: "GET", host: "h", path: "/a", query: "x=1&y=%20", cl: -1},
		"force query":         {method: "GET", host: "h", path: "/a", forceQuery: true, cl: -1},
		"escaped path":        {method: "GET", host: "h", path: "/a b/ü", cl: -1},
		"raw path":            {method: "GET", host: "h", path: "/a/b", rawPath: "/a%2Fb", cl: -1},
		"no host":             {method: "GET", path: "/", cl: -1},
		"invalid host":        {method: "GET", host: "a b", path: "/", cl: -1},
		"ipv6 host":           {method: "GET", host: "[::1]:8080", path: "/", cl: -1},
		"zone host":           {method: "GET", host: "[fe80::1%25en0]:8080", path: "/", cl: -1},
		"idn host":            {method: "GET", host: "bücher.example", path: "/", cl: -1},
		"ua set":              {method: "GET", host: "h", path: "/", cl: -1, header: http.Header{"User-Agent": {"  wrk\t", "second"}}},
		"ua empty":            {method: "GET", host: "h", path: "/", cl: -1, header: http.Header{"User-Agent": {""}}},
		"ua nil":              {method: "GET", host: "h", path: "/", cl: -1, header: http.Header{"User-Agent": nil}},
		"ua blank":            {method: "GET", host: "h", path: "/", cl: -1, header: http.Header{"User-Agent": {" \t "}}},
		"close":               {method: "GET", host: "h", path: "/", cl: -1, close: true},
		"close given":         {method: "GET", host: "h", path: "/", cl: -1, close: true, header: http.Header{"Connection": {"keep-alive, Close"}}},
		"close in words":      {method: "GET", host: "h", path: "/", cl: -1, close: true, header: http.Header{"Connection": {"x close\ty"}}},
		"close not a token":   {method: "GET", host: "h", path: "/", cl: -1, close: true, header: http.Header{"Connection": {"closed, xclose"}}},
		"close second value":  {method: "GET", host: "h", path: "/", cl: -1, close: true, header: http.Header{"Connection": {"keep-alive", "close"}}},
		"trimmed values":      {method: "GET", host: "h", path: "/", cl: -1, header: http.Header{"X-A": {"\t v \t"}, "X-B": {" "}}},
		"obs-text value":      {method: "GET", host: "h", path: "/", cl: -1, header: http.Header{"X-A": {"caf\xe9"}}},
		"many fields":         {method: "GET", host: "h", path: "/", cl: -1, header: many},
		"post no body":        {method: "POST", host: "h", path: "/", cl: -1},
		"put no body":         {method: "PUT", host: "h", path: "/", cl: -1},
		"patch no body":       {method: "PATCH", host: "h", path: "/", cl: -1},
		"delete no body":      {method: "DELETE", host: "h", path: "/", cl: -1},
		"post body":           {method: "POST", host: "h", path: "/services/Echo", cl: -1, hasBody: true, body: "<soap/>", header: common},
		"delete body":         {method: "DELETE", host: "h", path: "/", cl: -1, hasBody: true, body: "x"},
		"large body":          {method: "POST", host: "h", path: "/", cl: -1, hasBody: true, body: strings.Repeat("b", 70000)},
		"body short":          {method: "POST", host: "h", path: "/", cl: 10, hasBody: true, body: "12345"},
		"body long":           {method: "POST", host: "h", path: "/", cl: 3, hasBody: true, body: "12345"},
		"length without body": {method: "POST", host: "h", path: "/", cl: 5},
		"chunked":             {method: "POST", host: "h", path: "/", cl: -1, hasBody: true, body: "abc", te: []string{"chunked"}},
		"trailer":             {method: "POST", host: "h", path: "/", cl: -1, hasBody: true, body: "abc", trailer: http.Header{"X-T": nil}},
		"opaque":              {method: "GET", host: "h", opaque: "/raw%2Fpath", cl: -1},
		"connect":             {method: "CONNECT", host: "h:443", cl: -1},
		"ctl in path":         {method: "GET", host: "h", path: "/a\x01b", rawPath: "/a\x01b", cl: -1},
		"ctl in query":        {method: "GET", host: "h", path: "/", query: "a=\x7f", cl: -1, hasBody: true, body: "x"},
	}
	for name, c := range cases {
		compareWrite(t, name, c)
	}
}

func TestCheckOutgoing(t *testing.T) {
	bad := map[string]*http.Request{
		"method with space": {Method: "GET /x", Header: http.Header{}},
		"method with CRLF":  {Method: "GET\r\n", Header: http.Header{}},
		"name with space":   {Method: "GET", Header: http.Header{"X A": {"v"}}},
		"name with colon":   {Method: "GET", Header: http.Header{"X:A": {"v"}}},
		"empty name":        {Method: "GET", Header: http.Header{"": {"v"}}},
		"name with CRLF":    {Method: "GET", Header: http.Header{"X\r\nEvil": {"v"}}},
		"value with CRLF":   {Method: "GET", Header: http.Header{"X-A": {"v\r\nEvil: 1"}}},
		"value with LF":     {Method: "GET", Header: http.Header{"X-A": {"v\nEvil: 1"}}},
		"value with NUL":    {Method: "GET", Header: http.Header{"X-A": {"v\x00"}}},
		"value with DEL":    {Method: "GET", Header: http.Header{"X-A": {"v\x7f"}}},
		"second value":      {Method: "GET", Header: http.Header{"X-A": {"ok", "\r"}}},
	}
	for name, r := range bad {
		if err := checkOutgoing(r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	good := &http.Request{Method: "", Header: http.Header{"X-A": {"\tv w\xff"}, "X-B": nil, "!#$%&'*+-.^_`|~09az": {""}}}
	if err := checkOutgoing(good); err != nil {
		t.Errorf("valid request refused: %v", err)
	}
}

// TestTransportRefusesInjection sends requests that a handler filled with
// a line break through a Transport: each is refused with an error that
// proves nothing was sent, and the backend reads none of them.
func TestTransportRefusesInjection(t *testing.T) {
	be := rawtest.New(t, rawtest.ServeAll)
	tr := newTestTransport(t, nil, 0)
	for name, edit := range map[string]func(*http.Request){
		"value":  func(r *http.Request) { r.Header["X-A"] = []string{"1\r\nX-Evil: 1"} },
		"name":   func(r *http.Request) { r.Header["X-A\r\nX-Evil"] = []string{"1"} },
		"method": func(r *http.Request) { r.Method = "GET / HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET" },
	} {
		req := replayableRequest(context.Background(), "POST", be.URL+"/", "body")
		edit(req)
		_, err := tr.RoundTrip(req)
		if err == nil || !RequestNotSent(err) || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("%s: RoundTrip: %v; want a refusal that proves nothing was sent", name, err)
		}
	}
	// A valid request after them is the first the backend reads.
	req, _ := http.NewRequest("GET", be.URL+"/ok", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := be.Requests(); len(got) != 1 || got[0] != "0 GET /ok" {
		t.Fatalf("the backend read %q; want only the valid request", got)
	}
}

// FuzzWriteRequest checks writeRequest against net/http's Request.Write
// on requests built from the input: the same bytes, the same success.
func FuzzWriteRequest(f *testing.F) {
	f.Add("GET", "app.example.com", "/carbon/index.jsp", "", "Accept\x00*/*\nCookie\x00JSESSIONID=1\n", false, uint8(0), int8(0))
	f.Add("POST", "h:8080", "/services/Echo", "wsdl", "User-Agent\x00 x \nConnection\x00keep-alive, close\n", true, uint8(7), int8(0))
	f.Add("PUT", "[::1]:80", "/a b", "q=\x01", "X\x00\t\n", false, uint8(3), int8(-2))
	f.Add("", "a b", "", "", "User-Agent\x00\n", true, uint8(0), int8(5))
	f.Fuzz(func(t *testing.T, method, host, path, query, fields string, closeConn bool, bodyLen uint8, clDelta int8) {
		w := writeReq{method: method, host: host, path: path, query: query, close: closeConn, header: http.Header{}, cl: -1}
		for _, line := range strings.Split(fields, "\n") {
			k, v, ok := strings.Cut(line, "\x00")
			if ok {
				w.header[k] = append(w.header[k], v)
			}
		}
		if bodyLen > 0 {
			w.hasBody, w.body = true, strings.Repeat("b", int(bodyLen))
			if clDelta != 0 {
				w.cl = max(1, int64(bodyLen)+int64(clDelta))
			}
		}
		r, _ := w.build()
		if checkOutgoing(r) != nil {
			return // refused before any writer runs
		}
		compareWrite(t, "fuzz", w)
	})
}

// BenchmarkWriteRequest writes the balancer's usual request to a backend
// (a GET with the fields a browser and the balancer set) with
// writeRequest, and with net/http's Request.Write for comparison.
//
//	go test -run '^$' -bench WriteRequest ./balancer/internal/h1/
func BenchmarkWriteRequest(b *testing.B) {
	req, _ := http.NewRequest("GET", "http://10.0.0.1:9763/carbon/admin/index.jsp?x=1", nil)
	req.Host = "mgt.example.com"
	req.Header = http.Header{
		"Accept":             {"text/html,application/xhtml+xml"},
		"Accept-Language":    {"en-GB,en;q=0.9"},
		"Cookie":             {"JSESSIONID=0331C764C54C18BE926F5E2F468DB0D0"},
		"User-Agent":         {"Mozilla/5.0 (X11; Linux x86_64)"},
		"X-Forwarded-For":    {"192.0.2.7"},
		"X-Forwarded-Host":   {"mgt.example.com"},
		"X-Forwarded-Proto":  {"https"},
		"X-Forwarded-Server": {"lb.example.com"},
	}
	bw := bufio.NewWriterSize(io.Discard, 4<<10)
	for _, bc := range []struct {
		name  string
		write func() error
	}{
		{"own", func() error { return writeRequest(bw, req) }},
		{"net-http", func() error { return req.Write(bw) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.write(); err != nil {
					b.Fatal(err)
				}
				bw.Flush()
			}
		})
	}
}
