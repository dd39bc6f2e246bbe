package h1

import (
	"math"
	"net/http"
	"net/textproto"
	"strings"
)

// fieldState is what the header fields say about a message's framing and
// connection, gathered while they are parsed.
type fieldState struct {
	proto10  bool // the message is HTTP/1.0
	response bool // the fields are a response's: Host is a field like others

	hosts int    // Host fields seen
	host  string // the first one's value

	clSeen bool  // a Content-Length field was seen
	cl     int64 // its value

	te        bool // a Transfer-Encoding field was seen
	chunked   int  // times chunked was listed
	lastChunk bool // the last coding listed was chunked
	other     bool // a coding other than chunked was listed
	teBad     bool // an element of the list is not a bare token

	close, keepAlive bool // Connection tokens seen
}

// parseFields parses the header field lines of head from offset pos (the
// start of the line after the request line) to the empty line, into h.
// nfields is the number of field lines, for the values' backing array.
func (f *fieldState) parseFields(head string, pos, nfields int, h http.Header) *RequestError {
	var vals []string // one backing array for the first value of every key
	if nfields > 0 {
		vals = make([]string, nfields)
	}
	nv := 0
	for {
		eol := indexLF(head, pos)
		line := trimCR(head[pos:eol])
		pos = eol + 1
		if line == "" {
			return nil
		}
		if c := head[pos]; c == ' ' || c == '\t' {
			// The next line folds into this one: refused as such, before
			// this one's value is judged without its continuation.
			return refuse(http.StatusBadRequest, whyObsFold)
		}
		name, value, re := splitField(line)
		if re != nil {
			return re
		}
		key := fieldKey(name)
		switch key {
		case "Host":
			if f.response {
				break
			}
			// Kept out of Header, as net/http does: r.Host holds it.
			f.hosts++
			if f.hosts > 1 {
				return refuse(http.StatusBadRequest, whyManyHosts)
			}
			if !validHost(value, false) {
				return refuse(http.StatusBadRequest, whyHost)
			}
			f.host = value
			continue
		case "Content-Length":
			digits, n, ok := parseContentLength(value)
			if !ok {
				return refuse(http.StatusBadRequest, whyContentLength)
			}
			if f.clSeen {
				if n != f.cl {
					return refuse(http.StatusBadRequest, whyLengths)
				}
				continue // an identical duplicate: one field is kept
			}
			f.clSeen, f.cl = true, n
			value = digits
		case "Transfer-Encoding":
			// Kept out of Header, as net/http does: TransferEncoding
			// holds it.
			f.parseTE(value)
			continue
		case "Connection":
			f.parseConnection(value)
		}
		if prev, ok := h[key]; ok {
			h[key] = append(prev, value)
			continue
		}
		vals[nv] = value
		h[key] = vals[nv : nv+1 : nv+1]
		nv++
	}
}

// splitField splits a field line (without its line end) into its name and
// its value without the whitespace around it (RFC 9112, section 5).
func splitField(line string) (name, value string, re *RequestError) {
	if line[0] == ' ' || line[0] == '\t' {
		// obs-fold, or whitespace between the request line and the first
		// field. RFC 9112, sections 2.2 and 5.2, allow folding it into
		// the previous value; readers that do and readers that do not
		// see different fields, so it is refused.
		return "", "", refuse(http.StatusBadRequest, whyObsFold)
	}
	colon := strings.IndexByte(line, ':')
	if colon <= 0 || !isToken(line[:colon]) {
		if colon > 0 && isToken(strings.Map(dropBlank, line[:colon])) {
			// Whitespace in a name, or between it and the colon, which
			// RFC 9112, section 5.1, requires refusing: readers that
			// strip it and readers that keep it see different fields.
			return "", "", refuse(http.StatusBadRequest, whyFieldNameSpace)
		}
		// No colon, an empty name, or a name with other bytes.
		return "", "", refuse(http.StatusBadRequest, whyFieldName)
	}
	value = trimOWS(line[colon+1:])
	for i := 0; i < len(value); i++ {
		// field-vchar, SP and HTAB; obs-text is allowed, NUL, CR, LF,
		// DEL and the other controls are not (RFC 9110, section 5.5).
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return "", "", refuse(http.StatusBadRequest, whyFieldValue)
		}
	}
	return line[:colon], value, nil
}

// dropBlank is a strings.Map function that drops spaces and tabs.
func dropBlank(r rune) rune {
	if r == ' ' || r == '\t' {
		return -1
	}
	return r
}

// trimOWS removes spaces and tabs around s.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseContentLength parses a Content-Length value: 1*DIGIT, or a list of
// them that are all equal (RFC 9110, section 8.6, lets a recipient take
// such a list as one value). It returns the first element without its
// leading zeros, and the value. Signs, spaces inside a number, other
// bytes, empty elements and values over an int64 are refused.
func parseContentLength(v string) (digits string, n int64, ok bool) {
	first := true
	for el := range strings.SplitSeq(v, ",") {
		el = trimOWS(el)
		if el == "" {
			return "", 0, false
		}
		var m int64
		for i := 0; i < len(el); i++ {
			c := el[i]
			if !isDigit(c) || m > (math.MaxInt64-int64(c-'0'))/10 {
				return "", 0, false
			}
			m = m*10 + int64(c-'0')
		}
		if first {
			n, first = m, false
			digits = strings.TrimLeft(el, "0")
			if digits == "" {
				digits = "0"
			}
		} else if m != n {
			return "", 0, false
		}
	}
	return digits, n, true
}

// parseTE takes in the codings of a Transfer-Encoding field, in order
// after those of earlier fields (RFC 9112, section 6.1). Only their
// order and names matter; frame decides.
func (f *fieldState) parseTE(v string) {
	f.te = true
	for el := range strings.SplitSeq(v, ",") {
		el = trimOWS(el)
		// An empty element, a coding with parameters ("chunked;x=y",
		// or the malformed "chunked;") and a quoted string are refused:
		// no coding the balancer implements has parameters, and readers
		// differ on what such a list means.
		switch {
		case !isToken(el):
			f.teBad = true
		case strings.EqualFold(el, "chunked"):
			f.chunked++
			f.lastChunk = true
		default:
			f.other = true
			f.lastChunk = false
		}
	}
}

// parseConnection notes the close and keep-alive options of a Connection
// field (RFC 9110, section 7.6.1; case-insensitive).
func (f *fieldState) parseConnection(v string) {
	for el := range strings.SplitSeq(v, ",") {
		el = trimOWS(el)
		f.close = f.close || strings.EqualFold(el, "close")
		f.keepAlive = f.keepAlive || strings.EqualFold(el, "keep-alive")
	}
}

// frame checks what the fields said and sets r's Host, framing and
// Close; ti is what the request line said.
func (f *fieldState) frame(r *http.Request, ti *targetInfo) *RequestError {
	if f.hosts == 0 && !f.proto10 {
		// RFC 9112, section 3.2: even with an authority in the target.
		return refuse(http.StatusBadRequest, whyNoHost)
	}
	r.Host = f.host
	if ti.absolute {
		r.Host = ti.authority
	}
	r.Close = f.close || (f.proto10 && !f.keepAlive)
	if !f.te {
		r.ContentLength = 0
		r.Trailer = nil
		if f.clSeen {
			r.ContentLength = f.cl
		}
		return nil
	}
	switch why := f.teFault(); why {
	case "":
	case whyCoding:
		return refuse(http.StatusNotImplemented, why)
	default:
		return refuse(http.StatusBadRequest, why)
	}
	if f.clSeen {
		// RFC 9112, section 6.3: Transfer-Encoding overrides
		// Content-Length, which is removed before the request goes
		// further; and section 6.1: the connection closes after it.
		delete(r.Header, "Content-Length")
		r.Close = true
	}
	r.ContentLength = -1
	r.TransferEncoding = append(r.TransferEncoding[:0], "chunked")
	if r.Trailer == nil {
		// Made now, so that shallow copies of r share the map the body's
		// reader fills.
		r.Trailer = make(http.Header)
	}
	// As net/http does: the fields the client announces are keys of
	// r.Trailer with nil values until the body ends, and the field
	// itself is removed. Those a trailer must not carry are left out,
	// as their values will be.
	announceTrailers(r.Header, r.Trailer)
	return nil
}

// teFault says what makes the Transfer-Encoding fields seen unusable, or
// "" when they say chunked, once and last.
func (f *fieldState) teFault() string {
	switch {
	case f.proto10:
		// RFC 9112, section 6.1: an HTTP/1.0 message with
		// Transfer-Encoding has faulty framing, whatever else it says.
		return whyTE10
	case f.teBad:
		return whyTEList
	case f.chunked > 1:
		return whyChunkedTwice
	case !f.lastChunk:
		// RFC 9112, section 6.3: the body's length cannot be known.
		return whyChunkedNotLast
	case f.other:
		// Chunked over a coding the balancer does not decode (RFC 9112,
		// section 6.1).
		return whyCoding
	}
	return ""
}

// announceTrailers moves the names a Trailer field of h announces into
// trailer, with nil values, and removes the field; the names a trailer
// must not carry are left out. It reports whether one of them names a
// field that frames a message (Content-Length, Transfer-Encoding,
// Trailer).
func announceTrailers(h, trailer http.Header) (framing bool) {
	tr, ok := h["Trailer"]
	if !ok {
		return false
	}
	delete(h, "Trailer")
	for _, v := range tr {
		for el := range strings.SplitSeq(v, ",") {
			if el = trimOWS(el); !isToken(el) {
				continue
			}
			switch k := fieldKey(el); {
			case k == "Content-Length" || k == "Transfer-Encoding" || k == "Trailer":
				framing = true
			case !forbiddenTrailer(k):
				trailer[k] = nil
			}
		}
	}
	return framing
}

// fieldKey returns the canonical form of name, a token, as
// textproto.CanonicalMIMEHeaderKey makes it: name itself when it is
// canonical already, a constant for the common fields in any case, and a
// new string only for the other names that are not canonical.
func fieldKey(name string) string {
	upper := true
	canonical := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (upper && 'a' <= c && c <= 'z') || (!upper && 'A' <= c && c <= 'Z') {
			canonical = false
			break
		}
		upper = c == '-'
	}
	if canonical {
		return name
	}
	var buf [32]byte
	if len(name) <= len(buf) {
		for i := 0; i < len(name); i++ {
			c := name[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		if k := commonKey(buf[:len(name)]); k != "" {
			return k
		}
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// commonKey returns the canonical key of the common request field whose
// name in lower case is lower, or "". The switch on string(lower) does
// not allocate.
func commonKey(lower []byte) string {
	switch string(lower) {
	case "accept":
		return "Accept"
	case "accept-charset":
		return "Accept-Charset"
	case "accept-encoding":
		return "Accept-Encoding"
	case "accept-language":
		return "Accept-Language"
	case "authorization":
		return "Authorization"
	case "cache-control":
		return "Cache-Control"
	case "connection":
		return "Connection"
	case "content-encoding":
		return "Content-Encoding"
	case "content-length":
		return "Content-Length"
	case "content-type":
		return "Content-Type"
	case "cookie":
		return "Cookie"
	case "date":
		return "Date"
	case "expect":
		return "Expect"
	case "forwarded":
		return "Forwarded"
	case "host":
		return "Host"
	case "if-match":
		return "If-Match"
	case "if-modified-since":
		return "If-Modified-Since"
	case "if-none-match":
		return "If-None-Match"
	case "keep-alive":
		return "Keep-Alive"
	case "origin":
		return "Origin"
	case "pragma":
		return "Pragma"
	case "priority":
		return "Priority"
	case "range":
		return "Range"
	case "referer":
		return "Referer"
	case "soapaction":
		return "Soapaction"
	case "te":
		return "Te"
	case "traceparent":
		return "Traceparent"
	case "trailer":
		return "Trailer"
	case "transfer-encoding":
		return "Transfer-Encoding"
	case "upgrade":
		return "Upgrade"
	case "upgrade-insecure-requests":
		return "Upgrade-Insecure-Requests"
	case "user-agent":
		return "User-Agent"
	case "via":
		return "Via"
	case "x-forwarded-for":
		return "X-Forwarded-For"
	case "x-forwarded-host":
		return "X-Forwarded-Host"
	case "x-forwarded-proto":
		return "X-Forwarded-Proto"
	case "x-real-ip":
		return "X-Real-Ip"
	case "x-request-id":
		return "X-Request-Id"
	case "x-requested-with":
		return "X-Requested-With"
	}
	return ""
}
