package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
)

// Why a body is refused: the Reason of a RequestError from its reader.
const (
	whyChunkSize       = "chunk size is not 1 to 16 hexadecimal digits within an int64"
	whyChunkLine       = "malformed chunk-size line"
	whyChunkWS         = "whitespace after chunk size without an extension"
	whyChunkExt        = "malformed chunk extension"
	whyChunkExtSize    = "chunk extensions over 4096 bytes"
	whyChunkCRLF       = "chunk data not followed by CRLF"
	whyChunkLF         = "LF without CR in chunked framing"
	whyTrailerTooLarge = "trailer section too large"
	whyTrailerFields   = "too many trailer fields"
)

// maxChunkExt bounds the bytes of all the chunk extensions of a body: they
// carry nothing the balancer uses, and a client could send many of them
// around one-byte chunks.
const maxChunkExt = 4 << 10

// maxChunkDigits bounds a chunk size's hexadecimal digits, leading zeros
// included.
const maxChunkDigits = 16

// chunkState is where a chunked body's decoder is.
type chunkState uint8

const (
	chunkSize chunkState = iota // a chunk-size line is next
	chunkData                   // data of the current chunk is next
	chunkEnd                    // the CRLF after a chunk's data is next
	chunkDone                   // the body ended, trailers included
)

// chunkedBody decodes a body in the chunked coding.
type chunkedBody struct {
	br        *bufio.Reader
	trailer   *http.Header // receives the trailer fields: a request's or a response's Trailer
	maxBytes  int          // bound of the trailer section's bytes
	maxFields int          // bound of its fields
	state     chunkState
	left      int64 // unread data of the current chunk
	ext       int   // bytes of chunk extensions so far
	err       error // sticky: io.EOF at the end
	closed    bool
}

// Read reads decoded data. It blocks at most once for more input: after
// some data is read, it goes on only as far as br holds what comes next.
func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil || len(p) == 0 {
		return 0, b.err
	}
	n := 0
	for b.err == nil {
		if b.state == chunkDone {
			b.err = io.EOF
			break
		}
		if b.state != chunkData {
			if n > 0 && !b.framingBuffered() {
				break
			}
			b.advance()
			continue
		}
		if n == len(p) || (n > 0 && b.br.Buffered() == 0) {
			break
		}
		q := p[n:]
		if int64(len(q)) > b.left {
			q = q[:b.left]
		}
		k, err := b.br.Read(q)
		n += k
		b.left -= int64(k)
		if b.left == 0 {
			b.state = chunkEnd
		}
		if err != nil {
			b.err = unexpectedEOF(err)
		} else if k == 0 {
			break // a reader under br that returned nothing: the caller reads again
		}
	}
	return n, b.err
}

// Close marks the body closed; it reads nothing.
func (b *chunkedBody) Close() error {
	b.closed = true
	return nil
}

// framingBuffered reports whether br holds the framing that comes next,
// so that advance would not wait for the connection.
func (b *chunkedBody) framingBuffered() bool {
	n := b.br.Buffered()
	if b.state == chunkEnd {
		return n >= 2
	}
	buf, _ := b.br.Peek(n)
	eol := bytes.IndexByte(buf, '\n')
	if eol < 0 {
		return false
	}
	for _, c := range buf[:eol] {
		if c != '0' {
			_, hex := hexValue(c)
			if hex {
				return true // a chunk with data
			}
			break
		}
	}
	// The last chunk: its trailer section, up to the empty line, too.
	rest := buf[eol+1:]
	return bytes.HasPrefix(rest, []byte("\r\n")) || bytes.Contains(rest, []byte("\r\n\r\n"))
}

// advance reads the framing that comes next: the CRLF after a chunk's
// data, or a chunk-size line, with the trailer section after the last.
// It sets b.err on failure.
func (b *chunkedBody) advance() {
	if b.state == chunkEnd {
		if b.err = b.readCRLF(); b.err == nil {
			b.state = chunkSize
		}
		return
	}
	size, err := b.readSizeLine()
	switch {
	case err != nil:
		b.err = err
	case size > 0:
		b.left, b.state = size, chunkData
	default:
		if b.err = b.readTrailer(); b.err == nil {
			b.state = chunkDone
		}
	}
}

// readCRLF reads the CRLF after a chunk's data.
func (b *chunkedBody) readCRLF() error {
	c, err := b.br.ReadByte()
	if err != nil {
		return unexpectedEOF(err)
	}
	switch c {
	case '\r':
	case '\n':
		return refuse(http.StatusBadRequest, whyChunkLF)
	default:
		return refuse(http.StatusBadRequest, whyChunkCRLF)
	}
	return b.readLF()
}

// readSizeLine reads a chunk-size line: chunk-size [ chunk-ext ] CRLF.
func (b *chunkedBody) readSizeLine() (int64, error) {
	var size int64
	digits := 0
	for {
		c, err := b.br.ReadByte()
		if err != nil {
			return 0, unexpectedEOF(err)
		}
		v, hex := hexValue(c)
		if !hex {
			if digits == 0 {
				return 0, refuse(http.StatusBadRequest, whyChunkSize)
			}
			return size, b.readExt(c)
		}
		digits++
		if digits > maxChunkDigits || size > (1<<63-1)>>4 {
			return 0, refuse(http.StatusBadRequest, whyChunkSize)
		}
		size = size<<4 | int64(v)
	}
}

// hexValue returns the value of the hexadecimal digit c.
func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// extState is where readExt is in a chunk-size line, after the size.
type extState uint8

const (
	extStart    extState = iota // right after the size: ";", BWS or CRLF
	extBWS                      // whitespace after the size: ";" must follow
	extPreName                  // after ";": BWS, then a name
	extName                     // in a name
	extPostName                 // whitespace after a name: "=" or ";" must follow
	extPreVal                   // after "=": BWS, then a value
	extToken                    // in a token value
	extQuoted                   // in a quoted-string value
	extPair                     // after a backslash in a quoted-string
	extValEnd                   // right after a quoted-string: ";", BWS or CRLF
	extPostVal                  // whitespace after a value: ";" must follow
)

// readExt reads the rest of a chunk-size line from c, the first byte
// after the size: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS
// chunk-ext-val ] ) and CRLF (RFC 9112, section 7.1.1), strictly: no
// whitespace before the CRLF, a quoted-string without controls. The
// extensions are checked and dropped; their bytes count against
// maxChunkExt.
func (b *chunkedBody) readExt(c byte) error {
	st := extStart
	for {
		if c == '\n' {
			return refuse(http.StatusBadRequest, whyChunkLF)
		}
		if c == '\r' {
			switch st {
			case extStart, extName, extToken, extValEnd:
				return b.readLF()
			case extBWS:
				return refuse(http.StatusBadRequest, whyChunkWS)
			}
			return refuse(http.StatusBadRequest, whyChunkExt)
		}
		if b.ext++; b.ext > maxChunkExt {
			return refuse(http.StatusBadRequest, whyChunkExtSize)
		}
		ws := c == ' ' || c == '\t'
		next, ok := st, true
		switch st {
		case extStart, extValEnd:
			switch {
			case c == ';':
				next = extPreName
			case ws && st == extStart:
				next = extBWS
			case ws:
				next = extPostVal
			default:
				if st == extStart {
					return refuse(http.StatusBadRequest, whyChunkLine) // junk after the size
				}
				ok = false
			}
		case extBWS, extPostVal:
			ok = ws || c == ';'
			if c == ';' {
				next = extPreName
			}
		case extPreName:
			ok = ws || isTokenByte(c)
			if !ws {
				next = extName
			}
		case extName, extPostName:
			switch {
			case c == ';':
				next = extPreName
			case c == '=':
				next = extPreVal
			case ws:
				next = extPostName
			default:
				ok = st == extName && isTokenByte(c)
			}
		case extPreVal:
			switch {
			case c == '"':
				next = extQuoted
			case isTokenByte(c):
				next = extToken
			default:
				ok = ws
			}
		case extToken:
			switch {
			case c == ';':
				next = extPreName
			case ws:
				next = extPostVal
			default:
				ok = isTokenByte(c)
			}
		case extQuoted:
			// qdtext: HTAB, SP, VCHAR but DQUOTE and backslash,
			// obs-text (RFC 9110, section 5.6.4).
			switch c {
			case '"':
				next = extValEnd
			case '\\':
				next = extPair
			default:
				ok = c == '\t' || (c >= ' ' && c != 0x7f)
			}
		case extPair:
			ok = c == '\t' || (c >= ' ' && c != 0x7f)
			next = extQuoted
		}
		if !ok {
			return refuse(http.StatusBadRequest, whyChunkExt)
		}
		st = next
		var err error
		if c, err = b.br.ReadByte(); err != nil {
			return unexpectedEOF(err)
		}
	}
}

// readLF reads the LF after a CR.
func (b *chunkedBody) readLF() error {
	c, err := b.br.ReadByte()
	if err != nil {
		return unexpectedEOF(err)
	}
	if c != '\n' {
		return refuse(http.StatusBadRequest, whyBareCR)
	}
	return nil
}

// readTrailer reads the trailer section after the last chunk: field lines
// ended by CRLF, then CRLF (RFC 9112, section 7.1.2). The fields a trailer
// may carry are added to the Trailer once the section has ended.
func (b *chunkedBody) readTrailer() error {
	var got http.Header
	used, fields := 0, 0
	for {
		line, err := b.readTrailerLine(b.maxBytes - used)
		if err != nil {
			return err
		}
		used += len(line) + 2
		if line == "" {
			break
		}
		if fields++; fields > b.maxFields {
			return refuse(http.StatusBadRequest, whyTrailerFields)
		}
		name, value, re := splitField(line)
		if re != nil {
			return re
		}
		if key := fieldKey(name); !forbiddenTrailer(key) {
			if got == nil {
				got = make(http.Header)
			}
			got[key] = append(got[key], value)
		}
	}
	if len(got) > 0 {
		if *b.trailer == nil {
			*b.trailer = make(http.Header, len(got))
		}
		for k, v := range got {
			(*b.trailer)[k] = append((*b.trailer)[k], v...)
		}
	}
	return nil
}

// readTrailerLine reads a line of the trailer section, which with its
// CRLF must fit in budget bytes, and returns it without the CRLF.
func (b *chunkedBody) readTrailerLine(budget int) (string, error) {
	line, err := b.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// Longer than br's buffer: gathered, as far as budget allows.
		acc := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull && len(acc) <= budget {
			line, err = b.br.ReadSlice('\n')
			acc = append(acc, line...)
		}
		line = acc
	}
	if len(line) > budget {
		return "", refuse(http.StatusBadRequest, whyTrailerTooLarge)
	}
	if err != nil {
		return "", unexpectedEOF(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", refuse(http.StatusBadRequest, whyChunkLF)
	}
	return string(line[:len(line)-2]), nil
}

// forbiddenTrailer reports whether a trailer field with the canonical key
// must be dropped: RFC 9110, section 6.5.1, forbids in trailers the fields
// that frame the message, route it, authenticate it, modify the request
// (controls and conditionals), or describe its content, as a recipient
// that merges trailers into the header would be fooled by them.
func forbiddenTrailer(key string) bool {
	switch key {
	case "Authorization", "Cache-Control", "Connection", "Content-Encoding",
		"Content-Length", "Content-Range", "Content-Type", "Cookie", "Expect",
		"Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
		"If-Unmodified-Since", "Keep-Alive", "Max-Forwards", "Pragma",
		"Proxy-Authorization", "Proxy-Connection", "Range", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}
