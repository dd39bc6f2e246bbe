package h1

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
)

// checkOutgoing refuses what net/http's Transport refuses before it writes
// a request: a method that is not a token, a header field name that is
// not one, a field value with a control character other than a tab. A
// handler that builds such a request gets an error, and no byte of it
// reaches a backend: a line break in a value would otherwise end the field
// there and start another of the handler's making.
func checkOutgoing(req *http.Request) error {
	if req.Method != "" && !isToken(req.Method) {
		return fmt.Errorf("invalid method %q", req.Method)
	}
	for k, vv := range req.Header {
		if !isToken(k) {
			return fmt.Errorf("invalid header field name %q", k)
		}
		for _, v := range vv {
			if !validFieldValue(v) {
				return fmt.Errorf("invalid header field value for %q", k)
			}
		}
	}
	return nil
}

// validFieldValue reports whether v has no control character but a tab.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// writeRequest writes req, which checkOutgoing accepted, to w as net/http's
// Request.Write does: the same bytes in the same order (the fields sorted
// by name after Host, User-Agent, Connection and Content-Length), and
// closes its body. It does so without formatting through fmt or sorting
// through an allocated slice for the usual request — no body, or a body of
// known length — and hands any other to Request.Write. The head and a
// small body leave in one write once w is flushed.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	host, ok := plainHost(req)
	if !ok {
		return req.Write(w)
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if req.Method == http.MethodConnect || req.URL.Opaque != "" ||
		len(req.TransferEncoding) > 0 || req.Trailer != nil ||
		(hasBody && req.ContentLength <= 0) || (!hasBody && req.ContentLength != 0) {
		return req.Write(w)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	query := req.URL.ForceQuery || req.URL.RawQuery != ""
	if hasCTL(path) || (query && hasCTL(req.URL.RawQuery)) {
		if hasBody {
			req.Body.Close()
		}
		return errCTLInTarget
	}

	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(path)
	if query {
		w.WriteByte('?')
		w.WriteString(req.URL.RawQuery)
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	ua := "Go-http-client/1.1" // net/http's, unless the header holds one, which may be empty
	if v, ok := req.Header["User-Agent"]; ok {
		ua = firstValue(v)
	}
	if ua != "" { // (blanks are trimmed after this test, as net/http does)
		writeField(w, "User-Agent", trimOWS(ua))
	}
	if req.Close && !hasCloseToken(firstValue(req.Header["Connection"])) {
		w.WriteString("Connection: close\r\n")
	}
	if req.ContentLength > 0 || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		w.WriteString("Content-Length: ")
		var digits [20]byte
		w.Write(strconv.AppendInt(digits[:0], req.ContentLength, 10))
		w.WriteString("\r\n")
	}

	// The other fields, sorted by name: on the stack for the usual count.
	var stack [32]string
	keys := stack[:0]
	for k := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) <= len(stack) {
		insertionSort(keys)
	} else {
		slices.Sort(keys)
	}
	for _, k := range keys {
		for _, v := range req.Header[k] {
			writeField(w, k, trimOWS(v))
		}
	}
	clear(keys)
	w.WriteString("\r\n")
	if !hasBody {
		return nil
	}
	return writeBody(w, req.Body, req.ContentLength)
}

// errCTLInTarget is net/http's refusal of a control character in the
// request target.
var errCTLInTarget = fmt.Errorf("can't write control character in Request.URL")

// plainHost returns the Host field net/http would write for req when that
// needs no conversion: the host is ASCII and has no IPv6 zone. An invalid
// host is sent empty, as net/http sends it.
func plainHost(req *http.Request) (string, bool) {
	host := req.Host
	if host == "" {
		if req.URL == nil {
			return "", false
		}
		host = req.URL.Host
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if c >= 0x80 || c == '%' {
			return "", false // Punycode, a zone to remove: net/http's part
		}
		if !hostByte(c) {
			host = ""
			break
		}
	}
	return host, req.URL != nil
}

// hostByte reports whether c may appear in a Host field as net/http
// writes one: letters, digits and "!$&'()*+,-.:;=[]_~" ('%' is left to
// net/http).
func hostByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', '-', '.', ':', ';', '=', '[', ']', '_', '~':
		return true
	}
	return false
}

// hasCTL reports whether s has an ASCII control character.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

func firstValue(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// hasCloseToken reports whether v holds "close" in any case, delimited by
// the value's ends, spaces, tabs or commas: net/http's test before it adds
// Connection: close.
func hasCloseToken(v string) bool {
	const tok = "close"
	boundary := func(c byte) bool { return c == ' ' || c == '\t' || c == ',' }
	for i := 0; i+len(tok) <= len(v); i++ {
		if (i > 0 && !boundary(v[i-1])) || (i+len(tok) < len(v) && !boundary(v[i+len(tok)])) {
			continue
		}
		if asciiEqualFold(v[i:i+len(tok)], tok) {
			return true
		}
	}
	return false
}

// asciiEqualFold reports whether s and lower (lower case) are equal,
// ignoring the case of ASCII letters in s.
func asciiEqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func writeField(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	w.WriteString(v)
	w.WriteString("\r\n")
}

// insertionSort sorts a handful of keys without allocating.
func insertionSort(keys []string) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}

// writeBody copies exactly n bytes of body to w and closes body; a body
// shorter or longer than n is an error, as net/http makes it.
func writeBody(w *bufio.Writer, body io.ReadCloser, n int64) error {
	copied, err := io.CopyN(w, body, n)
	if err == io.EOF {
		err = nil
	}
	if err == nil && copied == n {
		var extra [1]byte
		m, rerr := io.ReadFull(body, extra[:])
		if m > 0 {
			err = fmt.Errorf("http: ContentLength=%d with Body length more than %d", n, n)
		} else if rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			err = rerr
		}
	} else if err == nil {
		err = fmt.Errorf("http: ContentLength=%d with Body length %d", n, copied)
	}
	if cerr := body.Close(); err == nil {
		err = cerr
	}
	return err
}
