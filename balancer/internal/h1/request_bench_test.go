package h1

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkReadRequest reads typicalRequest (ten header fields) into a
// reused Request, and, for comparison, with net/http's http.ReadRequest,
// which makes a new Request each time; both from a reused bufio.Reader.
// The chunked cases read a small chunked body too.
func BenchmarkReadRequest(b *testing.B) {
	chunked := strings.Replace(typicalRequest, "GET ", "POST ", 1)
	chunked = strings.Replace(chunked, "\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n", 1) +
		"10\r\n0123456789abcdef\r\n6\r\nghijkl\r\n0\r\n\r\n"
	for _, bc := range []struct {
		name, raw string
	}{{"typical", typicalRequest}, {"chunked", chunked}} {
		rd := strings.NewReader(bc.raw)
		br := bufio.NewReader(rd)
		buf := make([]byte, 512)
		b.Run(bc.name+"/h1", func(b *testing.B) {
			var r http.Request
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.raw)))
			for b.Loop() {
				rd.Reset(bc.raw)
				br.Reset(rd)
				if err := ReadRequest(br, RequestLimits{}, &r); err != nil {
					b.Fatal(err)
				}
				if err := readBody(NewBody(br, &r, RequestLimits{}), buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/net-http", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.raw)))
			for b.Loop() {
				rd.Reset(bc.raw)
				br.Reset(rd)
				r, err := http.ReadRequest(br)
				if err != nil {
					b.Fatal(err)
				}
				if err := readBody(r.Body, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readBody reads body to its end through buf.
func readBody(body io.Reader, buf []byte) error {
	for {
		_, err := body.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
