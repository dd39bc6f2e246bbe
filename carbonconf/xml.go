package carbonconf

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/carbonlb/carbonlb/carbonconf/internal/textedit"
)

// This file holds the lossless XML layer shared by axis2.xml, carbon.xml and
// catalina-server.xml. The document keeps its input bytes; the parser records
// the byte span of every element, attribute value, text run and comment, and
// every edit splices new bytes into the old ones and parses the result again.
// An unedited document therefore writes back byte-identical by construction.
// docs/carbonconf.md explains why this is a small tokenizer of our own rather
// than encoding/xml's Decoder.

type xkind uint8

const (
	xElement xkind = iota
	xText
	xComment
	xCDATA
	xPI
	xDoctype
)

// xnode is one node of a parsed document. Offsets index xdoc.src.
type xnode struct {
	kind       xkind
	start, end int // the whole node, markup included

	// Elements only.
	name         string
	attrs        []xattr
	tagEnd       int // just after the '>' of the start tag
	contentStart int // == tagEnd
	contentEnd   int // the '<' of the end tag; == tagEnd when self-closing
	selfClosing  bool
	children     []*xnode
	parent       *xnode
}

// xattr is one attribute; valStart and valEnd delimit the value inside its
// quotes.
type xattr struct {
	name             string
	nameStart        int
	valStart, valEnd int
	end              int // after the closing quote
}

// xdoc is a parsed document and the bytes it came from.
type xdoc struct {
	file   string
	src    []byte
	root   *xnode
	top    []*xnode // every top-level node, root included
	latin1 bool     // declared ISO-8859-1 or windows-1252: one byte a character
	enc    xenc     // the declared encoding
	// entities are the general entities the DOCTYPE's internal subset
	// declares; anyEntity is true when a DOCTYPE may declare entities this
	// reader does not see (an external subset, a parameter entity), so
	// that no reference can be called undefined.
	entities  map[string]bool
	anyEntity bool
	crlf      bool  // the document's line ending is CRLF
	lines     []int // offset of the start of each line
}

// parseFragment parses src, a piece of d such as a comment's content, in
// d's encoding and with d's entities.
func (d *xdoc) parseFragment(src []byte) (*xdoc, error) {
	f := &xdoc{src: src, latin1: d.latin1, enc: d.enc, entities: d.entities, anyEntity: d.anyEntity}
	f.lines = lineStarts(src)
	p := &xparser{d: f, src: src}
	if err := p.parse(); err != nil {
		return nil, err
	}
	if err := p.checkChars(); err != nil {
		return nil, err
	}
	return f, nil
}

// xenc is a declared encoding.
type xenc uint8

const (
	encUTF8   xenc = iota // UTF-8, also when nothing is declared
	encASCII              // US-ASCII
	encLatin1             // ISO-8859-1
	encCP1252             // windows-1252
)

// parseXML parses src into a document. The returned error is a *ParseError.
// Past the structure it checks the text as XML 1.0 does (§2.2, §4.1):
// every byte in the declared encoding, no character XML forbids (raw or as
// a character reference), and no reference to an undeclared entity.
func parseXML(file string, src []byte) (*xdoc, error) {
	d := &xdoc{file: file, src: src}
	d.lines = lineStarts(src)
	d.crlf = bytes.Contains(src, []byte("\r\n"))
	p := &xparser{d: d, src: src}
	if err := p.parse(); err != nil {
		return nil, err
	}
	if err := p.checkChars(); err != nil {
		return nil, err
	}
	return d, nil
}

func lineStarts(src []byte) []int {
	ls := []int{0}
	for i, c := range src {
		if c == '\n' {
			ls = append(ls, i+1)
		}
	}
	return ls
}

// pos turns an offset into a 1-based line and byte column.
func (d *xdoc) pos(off int) (line, col int) {
	return offsetPos(d.lines, off)
}

func offsetPos(lines []int, off int) (line, col int) {
	i := sort.Search(len(lines), func(i int) bool { return lines[i] > off }) - 1
	if i < 0 {
		i = 0
	}
	return i + 1, off - lines[i] + 1
}

type xparser struct {
	d   *xdoc
	src []byte
	i   int
}

func (p *xparser) errAt(off int, format string, args ...any) error {
	line, col := p.d.pos(off)
	return &ParseError{File: p.d.file, Line: line, Col: col, Err: fmt.Errorf(format, args...)}
}

// found describes the input at off for an error message.
func (p *xparser) found(off int) string {
	if off >= len(p.src) {
		return "end of file"
	}
	r, _ := utf8.DecodeRune(p.src[off:])
	if r == utf8.RuneError {
		return fmt.Sprintf("byte %#02x", p.src[off])
	}
	return strconv.QuoteRune(r)
}

func (p *xparser) parse() error {
	src := p.src
	if bytes.HasPrefix(src, utf8BOM) {
		p.i = 3
	}
	var stack []*xnode
	add := func(n *xnode) {
		if len(stack) > 0 {
			parent := stack[len(stack)-1]
			n.parent = parent
			parent.children = append(parent.children, n)
		} else {
			p.d.top = append(p.d.top, n)
		}
	}
	for p.i < len(src) {
		start := p.i
		if src[p.i] != '<' {
			j := bytes.IndexByte(src[p.i:], '<')
			if j < 0 {
				j = len(src) - p.i
			}
			p.i += j
			if len(stack) == 0 {
				if k := bytes.IndexFunc(src[start:p.i], func(r rune) bool { return !isSpace(r) }); k >= 0 {
					return p.errAt(start+k, "expected an element, comment or end of file outside the root element, found %s", p.found(start+k))
				}
			}
			if err := p.checkRefs(start, p.i); err != nil {
				return err
			}
			add(&xnode{kind: xText, start: start, end: p.i})
			continue
		}
		rest := src[p.i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			j := bytes.Index(rest[4:], []byte("-->"))
			if j < 0 {
				return p.errAt(start, `expected "-->" to close this comment, found end of file`)
			}
			p.i += 4 + j + 3
			add(&xnode{kind: xComment, start: start, end: p.i})
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			if len(stack) == 0 {
				return p.errAt(start, "expected an element, found CDATA outside the root element")
			}
			j := bytes.Index(rest, []byte("]]>"))
			if j < 0 {
				return p.errAt(start, `expected "]]>" to close this CDATA section, found end of file`)
			}
			p.i += j + 3
			add(&xnode{kind: xCDATA, start: start, end: p.i})
		case bytes.HasPrefix(rest, []byte("<!")):
			if len(stack) > 0 || p.d.root != nil {
				return p.errAt(start, "expected a comment or CDATA after \"<!\", found %s", p.found(start+2))
			}
			if err := p.doctype(); err != nil {
				return err
			}
			add(&xnode{kind: xDoctype, start: start, end: p.i})
		case bytes.HasPrefix(rest, []byte("<?")):
			j := bytes.Index(rest, []byte("?>"))
			if j < 0 {
				return p.errAt(start, `expected "?>" to close this processing instruction, found end of file`)
			}
			p.i += j + 2
			n := &xnode{kind: xPI, start: start, end: p.i}
			if bytes.HasPrefix(rest, []byte("<?xml")) && len(rest) > 5 && (isSpace(rune(rest[5])) || rest[5] == '?') {
				if start != 0 && !(start == 3 && bytes.HasPrefix(src, utf8BOM)) {
					return p.errAt(start, "expected the XML declaration only at the start of the document")
				}
				if err := p.decl(start, p.i); err != nil {
					return err
				}
			}
			add(n)
		case bytes.HasPrefix(rest, []byte("</")):
			p.i += 2
			name, err := p.name()
			if err != nil {
				return err
			}
			p.skipSpace()
			if p.i >= len(src) || src[p.i] != '>' {
				return p.errAt(p.i, "expected \">\" to close </%s>, found %s", name, p.found(p.i))
			}
			p.i++
			if len(stack) == 0 {
				return p.errAt(start, "expected no end tag outside the root element, found </%s>", name)
			}
			open := stack[len(stack)-1]
			if open.name != name {
				l, c := p.d.pos(open.start)
				return p.errAt(start, "expected </%s> to close <%s> from line %d col %d, found </%s>", open.name, open.name, l, c, name)
			}
			open.contentEnd = start
			open.end = p.i
			stack = stack[:len(stack)-1]
		default:
			if len(stack) == 0 && p.d.root != nil {
				return p.errAt(start, "expected one root element, found a second element")
			}
			n, err := p.startTag()
			if err != nil {
				return err
			}
			add(n)
			if len(stack) == 0 {
				p.d.root = n
			}
			if !n.selfClosing {
				if len(stack) == MaxDepth {
					return p.errAt(start, "%w: expected at most %d elements nested in one another, found <%s> inside %d", ErrTooDeep, MaxDepth, n.name, MaxDepth)
				}
				stack = append(stack, n)
			}
		}
	}
	if len(stack) > 0 {
		open := stack[len(stack)-1]
		l, c := p.d.pos(open.start)
		return p.errAt(len(src), "expected </%s> to close <%s> from line %d col %d, found end of file", open.name, open.name, l, c)
	}
	if p.d.root == nil {
		return p.errAt(len(src), "expected a root element, found end of file")
	}
	return nil
}

// doctype skips <!DOCTYPE …> including an internal subset in brackets,
// noting the entities it declares.
func (p *xparser) doctype() error {
	start := p.i
	defer p.doctypeEntities(start)
	depth := 0
	for p.i < len(p.src) {
		switch c := p.src[p.i]; c {
		case '[':
			depth++
		case ']':
			depth--
		case '"', '\'':
			j := bytes.IndexByte(p.src[p.i+1:], c)
			if j < 0 {
				return p.errAt(p.i, "expected a closing %c, found end of file", c)
			}
			p.i += j + 1
		case '>':
			if depth <= 0 {
				p.i++
				return nil
			}
		}
		p.i++
	}
	return p.errAt(start, `expected ">" to close this declaration, found end of file`)
}

// decl reads the encoding from the XML declaration.
func (p *xparser) decl(start, end int) error {
	body := string(p.src[start+5 : end-2])
	k := strings.Index(body, "encoding")
	if k < 0 {
		return nil
	}
	rest := strings.TrimLeft(body[k+len("encoding"):], " \t\r\n")
	if !strings.HasPrefix(rest, "=") {
		return p.errAt(start+5+k, `expected "=" after encoding in the XML declaration`)
	}
	rest = strings.TrimLeft(rest[1:], " \t\r\n")
	if rest == "" || (rest[0] != '"' && rest[0] != '\'') {
		return p.errAt(start+5+k, "expected a quoted encoding name in the XML declaration")
	}
	j := strings.IndexByte(rest[1:], rest[0])
	if j < 0 {
		return p.errAt(start+5+k, "expected a closing quote after the encoding name")
	}
	switch enc := strings.ToLower(rest[1 : 1+j]); enc {
	case "utf-8", "utf8":
	case "us-ascii", "ascii":
		p.d.enc = encASCII
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "iso_8859-1":
		p.d.latin1, p.d.enc = true, encLatin1
	case "windows-1252", "cp1252":
		p.d.latin1, p.d.enc = true, encCP1252
	default:
		return p.errAt(start+5+k, "expected encoding UTF-8, US-ASCII or ISO-8859-1, found %q", rest[1:1+j])
	}
	return nil
}

// doctypeEntities notes the general entities the DOCTYPE at
// src[start:p.i] declares, or that it may declare some unseen.
func (p *xparser) doctypeEntities(start int) {
	dt := p.src[start:min(p.i, len(p.src))]
	head := dt
	if i := bytes.IndexByte(dt, '['); i >= 0 {
		head = dt[:i]
	}
	// An external subset (SYSTEM or PUBLIC before the internal one) or a
	// parameter entity reference may declare entities not read here.
	if bytes.Contains(head, []byte("SYSTEM")) || bytes.Contains(head, []byte("PUBLIC")) || bytes.IndexByte(dt, '%') >= 0 {
		p.d.anyEntity = true
	}
	rest := dt
	for {
		i := bytes.Index(rest, []byte("<!ENTITY"))
		if i < 0 {
			return
		}
		rest = rest[i+len("<!ENTITY"):]
		j := 0
		for j < len(rest) && isSpace(rune(rest[j])) {
			j++
		}
		k := j
		for k < len(rest) && isNameByte(rest[k]) {
			k++
		}
		if k > j {
			if p.d.entities == nil {
				p.d.entities = map[string]bool{}
			}
			p.d.entities[string(rest[j:k])] = true
		}
	}
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }

func (p *xparser) skipSpace() {
	for p.i < len(p.src) && isSpace(rune(p.src[p.i])) {
		p.i++
	}
}

func isNameByte(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '/', '>', '<', '=', '"', '\'', '!', '?', '&', ';':
		return false
	}
	return true
}

func (p *xparser) name() (string, error) {
	start := p.i
	for p.i < len(p.src) && isNameByte(p.src[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", p.errAt(p.i, "expected a name, found %s", p.found(p.i))
	}
	return string(p.src[start:p.i]), nil
}

func (p *xparser) startTag() (*xnode, error) {
	n := &xnode{kind: xElement, start: p.i}
	p.i++
	name, err := p.name()
	if err != nil {
		return nil, err
	}
	n.name = name
	var seen map[string]struct{} // attribute names, once there are many
	for {
		sp := p.i
		p.skipSpace()
		if p.i >= len(p.src) {
			return nil, p.errAt(p.i, "expected \">\" to close <%s, found end of file", name)
		}
		switch p.src[p.i] {
		case '>':
			p.i++
			n.tagEnd, n.contentStart = p.i, p.i
			return n, nil
		case '/':
			if p.i+1 >= len(p.src) || p.src[p.i+1] != '>' {
				return nil, p.errAt(p.i+1, "expected \">\" after \"/\" in <%s, found %s", name, p.found(p.i+1))
			}
			p.i += 2
			n.selfClosing = true
			n.tagEnd, n.contentStart, n.contentEnd, n.end = p.i, p.i, p.i, p.i
			return n, nil
		}
		if sp == p.i {
			return nil, p.errAt(p.i, "expected a space, \">\" or \"/>\" in <%s, found %s", name, p.found(p.i))
		}
		a := xattr{nameStart: p.i}
		if a.name, err = p.name(); err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.i >= len(p.src) || p.src[p.i] != '=' {
			return nil, p.errAt(p.i, "expected \"=\" after attribute %s, found %s", a.name, p.found(p.i))
		}
		p.i++
		p.skipSpace()
		if p.i >= len(p.src) || (p.src[p.i] != '"' && p.src[p.i] != '\'') {
			return nil, p.errAt(p.i, "expected a quoted value for attribute %s, found %s", a.name, p.found(p.i))
		}
		q := p.src[p.i]
		j := bytes.IndexByte(p.src[p.i+1:], q)
		if j < 0 {
			return nil, p.errAt(p.i, "expected a closing %c for attribute %s, found end of file", q, a.name)
		}
		if k := bytes.IndexByte(p.src[p.i+1:p.i+1+j], '<'); k >= 0 {
			return nil, p.errAt(p.i+1+k, "expected no \"<\" in the value of attribute %s", a.name)
		}
		// A linear scan for the few attributes elements usually have; a set
		// past that, so many attributes cost linear time, not quadratic.
		dup := false
		if seen == nil {
			for _, o := range n.attrs {
				dup = dup || o.name == a.name
			}
			if len(n.attrs) >= 16 {
				seen = make(map[string]struct{}, 2*len(n.attrs))
				for _, o := range n.attrs {
					seen[o.name] = struct{}{}
				}
			}
		} else {
			_, dup = seen[a.name]
		}
		if dup {
			return nil, p.errAt(a.nameStart, "expected attribute %s only once in <%s>", a.name, name)
		}
		if seen != nil {
			seen[a.name] = struct{}{}
		}
		a.valStart, a.valEnd = p.i+1, p.i+1+j
		if err := p.checkRefs(a.valStart, a.valEnd); err != nil {
			return nil, err
		}
		p.i += j + 2
		a.end = p.i
		n.attrs = append(n.attrs, a)
	}
}

// localName strips a namespace prefix.
func localName(name string) string {
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// decode turns raw document bytes into a string, resolving entity and
// character references; ISO-8859-1 bytes become their code points.
func (d *xdoc) decode(b []byte) string {
	var s string
	if d.latin1 {
		var sb strings.Builder
		for _, c := range b {
			r := rune(c)
			if d.enc == encCP1252 && c >= 0x80 && c < 0xA0 {
				r = cp1252[c-0x80]
			}
			sb.WriteRune(r)
		}
		s = sb.String()
	} else {
		s = string(b)
	}
	if !strings.Contains(s, "&") {
		return s
	}
	var sb strings.Builder
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			sb.WriteString(s)
			return sb.String()
		}
		sb.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexByte(s, ';')
		if j < 0 || j > 12 {
			sb.WriteByte('&')
			s = s[1:]
			continue
		}
		ent := s[1:j]
		if r, ok := entity(ent); ok {
			sb.WriteRune(r)
		} else {
			sb.WriteString(s[:j+1])
		}
		s = s[j+1:]
	}
}

func entity(e string) (rune, bool) {
	switch e {
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "amp":
		return '&', true
	case "quot":
		return '"', true
	case "apos":
		return '\'', true
	}
	if strings.HasPrefix(e, "#x") || strings.HasPrefix(e, "#X") {
		n, err := strconv.ParseUint(e[2:], 16, 32)
		return rune(n), err == nil && utf8.ValidRune(rune(n))
	}
	if strings.HasPrefix(e, "#") {
		n, err := strconv.ParseUint(e[1:], 10, 32)
		return rune(n), err == nil && utf8.ValidRune(rune(n))
	}
	return 0, false
}

// cp1252 maps windows-1252's bytes 0x80 to 0x9F to their characters; the
// five bytes it leaves undefined map to 0 (and are refused by checkChars).
var cp1252 = [32]rune{
	0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
	0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
}

// xmlChars says which characters XML allows, for error messages.
const xmlChars = "XML allows tab, line feed, carriage return and characters from U+0020 but U+FFFE and U+FFFF"

// isXMLChar reports whether XML 1.0 allows r in a document (§2.2, Char).
func isXMLChar(r rune) bool {
	switch {
	case r < 0x20:
		return r == '\t' || r == '\n' || r == '\r'
	case r <= 0xD7FF:
		return true
	case r < 0xE000:
		return false // surrogates
	case r <= 0xFFFD:
		return true
	default:
		return r >= 0x10000 && r <= 0x10FFFF
	}
}

// checkChars checks every byte of the document against its declared
// encoding and every character against XML 1.0's Char production, in one
// pass. The error is a *ParseError at the first offending byte, wrapping
// ErrEncoding or ErrForbiddenChar.
func (p *xparser) checkChars() error {
	src := p.src
	for i := 0; i < len(src); {
		c := src[i]
		if c < 0x80 {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return p.errAt(i, "%w: found control character %U; %s", ErrForbiddenChar, rune(c), xmlChars)
			}
			i++
			continue
		}
		switch p.d.enc {
		case encASCII:
			return p.errAt(i, "%w: expected US-ASCII (the declared encoding), found byte %#02x", ErrEncoding, c)
		case encLatin1:
			i++ // every byte from 0x80 is a character of ISO-8859-1
			continue
		case encCP1252:
			if c < 0xA0 && cp1252[c-0x80] == 0 {
				return p.errAt(i, "%w: expected windows-1252 (the declared encoding), found byte %#02x, which it leaves undefined", ErrEncoding, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n <= 1 {
			return p.errAt(i, "%w: expected UTF-8 (the declared or default encoding), found byte %#02x", ErrEncoding, c)
		}
		if !isXMLChar(r) {
			return p.errAt(i, "%w: found %U; %s", ErrForbiddenChar, r, xmlChars)
		}
		i += n
	}
	return nil
}

// checkRefs checks the entity and character references in the text or
// attribute value src[start:end]: each "&" begins "&name;" for an entity
// that is predefined or declared, or "&#n;" or "&#xh;" for a character XML
// allows (XML 1.0 §4.1). The error is a *ParseError at the "&".
func (p *xparser) checkRefs(start, end int) error {
	for i := start; i < end; {
		j := bytes.IndexByte(p.src[i:end], '&')
		if j < 0 {
			return nil
		}
		i += j
		k := bytes.IndexByte(p.src[i:end], ';')
		ref := p.src[i+1 : i+max(k, 1)]
		if k < 0 || len(ref) == 0 {
			return p.errAt(i, `expected a reference such as "&amp;" after "&", found %s; write a literal "&" as "&amp;"`, p.found(i+1))
		}
		if ref[0] == '#' {
			var n uint64
			var err error
			if len(ref) > 1 && (ref[1] == 'x' || ref[1] == 'X') {
				n, err = strconv.ParseUint(string(ref[2:]), 16, 32)
			} else {
				n, err = strconv.ParseUint(string(ref[1:]), 10, 32)
			}
			if err != nil {
				return p.errAt(i, "expected a character reference such as \"&#65;\" or \"&#x41;\", found %q", p.src[i:i+k+1])
			}
			if !isXMLChar(rune(n)) {
				return p.errAt(i, "%w: found %q (%U); %s", ErrForbiddenChar, p.src[i:i+k+1], rune(n), xmlChars)
			}
		} else {
			for _, c := range ref {
				if !isNameByte(c) {
					return p.errAt(i, `expected a reference such as "&amp;" after "&", found %q; write a literal "&" as "&amp;"`, p.src[i:i+k+1])
				}
			}
			if _, ok := entity(string(ref)); !ok && !p.d.entities[string(ref)] && !p.d.anyEntity {
				return p.errAt(i, "%w: expected one of &lt; &gt; &amp; &quot; &apos; or an entity the DOCTYPE declares, found %q", ErrUndefinedEntity, p.src[i:i+k+1])
			}
		}
		i += k + 1
	}
	return nil
}

// checkChars rejects values XML 1.0 cannot hold, even escaped: control
// characters other than tab, newline and carriage return, and invalid
// UTF-8.
func checkChars(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("carbonconf: value %q is not valid UTF-8", s)
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return fmt.Errorf("carbonconf: value %q holds character %U, which XML cannot represent", s, r)
		}
	}
	return nil
}

// encode escapes s for use as text or an attribute value in this document.
func (d *xdoc) encode(s string) string {
	var sb strings.Builder
	for _, r := range s {
		switch {
		case r == '<':
			sb.WriteString("&lt;")
		case r == '>':
			sb.WriteString("&gt;")
		case r == '&':
			sb.WriteString("&amp;")
		case r == '"':
			sb.WriteString("&quot;")
		case r >= 0x80 && d.enc != encUTF8:
			fmt.Fprintf(&sb, "&#x%X;", r)
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// attr returns the decoded value of the attribute with this local name.
func (d *xdoc) attr(n *xnode, name string) (string, bool) {
	if a := n.attr(name); a != nil {
		return d.decode(d.src[a.valStart:a.valEnd]), true
	}
	return "", false
}

func (n *xnode) attr(name string) *xattr {
	for i := range n.attrs {
		if localName(n.attrs[i].name) == name {
			return &n.attrs[i]
		}
	}
	return nil
}

// hasElements reports whether n has element children.
func (n *xnode) hasElements() bool {
	for _, c := range n.children {
		if c.kind == xElement {
			return true
		}
	}
	return false
}

// text returns the element's text content (CDATA included), trimmed.
func (d *xdoc) text(n *xnode) string {
	if n == nil {
		return ""
	}
	var sb strings.Builder
	for _, c := range n.children {
		switch c.kind {
		case xText:
			sb.WriteString(d.decode(d.src[c.start:c.end]))
		case xCDATA:
			sb.WriteString(string(d.src[c.start+9 : c.end-3]))
		}
	}
	return strings.TrimSpace(sb.String())
}

// elems returns n's element children with this local name ("" for all).
func elems(n *xnode, name string) []*xnode {
	var out []*xnode
	if n == nil {
		return nil
	}
	for _, c := range n.children {
		if c.kind == xElement && (name == "" || localName(c.name) == name) {
			out = append(out, c)
		}
	}
	return out
}

func elem(n *xnode, name string) *xnode {
	for _, c := range elems(n, name) {
		return c
	}
	return nil
}

// field returns the Field for element n's text.
func (d *xdoc) field(n *xnode) Field {
	if n == nil {
		return Field{}
	}
	l, c := d.pos(n.start)
	return Field{Value: d.text(n), Line: l, Col: c}
}

// attrField returns the Field for an attribute of n.
func (d *xdoc) attrField(n *xnode, name string) Field {
	a := n.attr(name)
	if a == nil {
		return Field{}
	}
	l, c := d.pos(a.nameStart)
	return Field{Value: d.decode(d.src[a.valStart:a.valEnd]), Line: l, Col: c}
}

// ---- editing ----

// splice replaces src[start:end] with repl and parses the result. On error
// the document is unchanged.
func (d *xdoc) splice(start, end int, repl string) error {
	nd, err := parseXML(d.file, textedit.Apply(d.src, []textedit.Splice{{Start: start, End: end, Text: repl}}))
	if err != nil {
		return fmt.Errorf("carbonconf: edit would make %s unreadable: %w", displayName(d.file), err)
	}
	*d = *nd
	return nil
}

// transact runs fn and restores the document if fn fails.
func (d *xdoc) transact(fn func() error) error {
	saved := *d
	if err := fn(); err != nil {
		*d = saved
		return err
	}
	return nil
}

func displayName(file string) string {
	if file == "" {
		return "document"
	}
	return file
}

// path returns the chain of element indexes from the root to n, so a node can
// be found again after the document is re-parsed.
func nodePath(n *xnode) []int {
	var path []int
	for n.parent != nil {
		for i, c := range n.parent.children {
			if c == n {
				path = append(path, i)
				break
			}
		}
		n = n.parent
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path
}

func (d *xdoc) follow(path []int) *xnode {
	n := d.root
	for _, i := range path {
		n = n.children[i]
	}
	return n
}

// setText sets the text content of element n. It fails when n holds
// elements.
func (d *xdoc) setText(n *xnode, value string) error {
	if err := checkChars(value); err != nil {
		return err
	}
	if n.hasElements() {
		return fmt.Errorf("carbonconf: <%s> holds elements, not a value", n.name)
	}
	if d.text(n) == value && !n.selfClosing {
		return nil
	}
	if n.selfClosing {
		if value == "" {
			return nil
		}
		open := string(d.src[n.start : n.tagEnd-2])
		open = strings.TrimRight(open, " \t\r\n")
		return d.splice(n.start, n.end, open+">"+d.encode(value)+"</"+n.name+">")
	}
	return d.splice(n.contentStart, n.contentEnd, d.encode(value))
}

// setAttr sets attribute name on element n, adding it after the last
// attribute (on a line of its own when the attributes are one per line).
func (d *xdoc) setAttr(n *xnode, name, value string) error {
	if err := checkChars(value); err != nil {
		return err
	}
	if a := n.attr(name); a != nil {
		if d.decode(d.src[a.valStart:a.valEnd]) == value {
			return nil
		}
		return d.splice(a.valStart, a.valEnd, d.encode(value))
	}
	at := n.start + 1 + len(n.name)
	sep := " "
	if len(n.attrs) > 0 {
		last := n.attrs[len(n.attrs)-1]
		at = last.end
		if ws, ok := textedit.OwnLine(d.src, last.nameStart); ok && len(n.attrs) > 1 {
			sep = d.newline() + ws
		}
	}
	return d.splice(at, at, sep+name+`="`+d.encode(value)+`"`)
}

func (d *xdoc) newline() string {
	if d.crlf {
		return "\r\n"
	}
	return "\n"
}

// indentOf guesses the indentation of n's children and one indent step.
func (d *xdoc) childIndent(n *xnode) string {
	for _, c := range n.children {
		if c.kind == xElement || c.kind == xComment {
			if ws, ok := textedit.OwnLine(d.src, c.start); ok {
				return ws
			}
		}
	}
	own, _ := textedit.OwnLine(d.src, n.start)
	return own + d.indentUnit()
}

// indentUnit is the document's indentation step, guessed from the root's
// children.
func (d *xdoc) indentUnit() string {
	for _, c := range d.root.children {
		if c.kind == xElement {
			if ws, ok := textedit.OwnLine(d.src, c.start); ok && ws != "" {
				return ws
			}
		}
	}
	return "    "
}

// insertChild inserts markup as a child of parent, before the element
// before, or after parent's last element child when before is nil. markup
// may span lines ("\n" separated, indented relative to its first line); each
// line is indented like parent's children. An empty-element parent is
// expanded (see expand).
func (d *xdoc) insertChild(parent, before *xnode, markup string) error {
	if err := checkChars(markup); err != nil {
		return err
	}
	if parent.selfClosing {
		return d.expand(parent, markup)
	}
	ind := d.childIndent(parent)
	nl := d.newline()
	body := strings.ReplaceAll(markup, "\n", nl+ind)
	if before != nil {
		return d.splice(before.start, before.start, body+nl+ind)
	}
	var last *xnode
	for _, c := range parent.children {
		if c.kind == xElement {
			last = c
		}
	}
	if last != nil {
		return d.splice(last.end, last.end, nl+ind+body)
	}
	// No element children: put the new one on its own line before the
	// end tag, keeping the end tag's own indentation.
	own, _ := textedit.OwnLine(d.src, parent.start)
	content := d.src[parent.contentStart:parent.contentEnd]
	if len(bytes.TrimSpace(content)) == 0 {
		return d.splice(parent.contentStart, parent.contentEnd, nl+ind+body+nl+own)
	}
	return d.splice(parent.contentEnd, parent.contentEnd, nl+ind+body+nl+own)
}

// expand turns the empty-element tag n (<X a="1"/>) into a start tag, the
// markup as its only child on a line of its own, and an end tag:
//
//	<X a="1">
//	    markup
//	</X>
//
// The child is indented one step (indentUnit) deeper than the line n is on,
// and the end tag lines up with that line.
func (d *xdoc) expand(n *xnode, markup string) error {
	ls := n.start
	for ls > 0 && d.src[ls-1] != '\n' {
		ls--
	}
	le := ls
	for le < n.start && (d.src[le] == ' ' || d.src[le] == '\t') {
		le++
	}
	own := string(d.src[ls:le])
	ind := own + d.indentUnit()
	nl := d.newline()
	open := strings.TrimRight(string(d.src[n.start:n.tagEnd-2]), " \t\r\n")
	body := strings.ReplaceAll(markup, "\n", nl+ind)
	return d.splice(n.start, n.end, open+">"+nl+ind+body+nl+own+"</"+n.name+">")
}

// removeNode deletes element n together with the indentation and line break
// that precede it.
func (d *xdoc) removeNode(n *xnode) error { return d.removeNodes([]*xnode{n}) }

// removeNodes deletes the elements ns, siblings in document order, each as
// removeNode does, in one splice: removing them one by one would parse the
// document once per element, in time quadratic when they are many.
func (d *xdoc) removeNodes(ns []*xnode) error {
	if len(ns) == 0 {
		return nil
	}
	nsrc := make([]byte, 0, len(d.src))
	at := 0
	for _, n := range ns {
		start := n.start
		if ws, ok := textedit.OwnLine(d.src, n.start); ok {
			start -= len(ws)
			if start > 0 && d.src[start-1] == '\n' {
				start--
				if start > 0 && d.src[start-1] == '\r' {
					start--
				}
			}
		}
		start = max(start, at) // the line break before may be the last one's
		nsrc = append(nsrc, d.src[at:start]...)
		at = n.end
	}
	nsrc = append(nsrc, d.src[at:]...)
	nd, err := parseXML(d.file, nsrc)
	if err != nil {
		return fmt.Errorf("carbonconf: edit would make %s unreadable: %w", displayName(d.file), err)
	}
	*d = *nd
	return nil
}

// uncomment looks among parent's comments for one that holds exactly one
// element accepted by match (commented either as <!--<x>…</x>--> or as
// <!--x>…</x-->) and turns it back into live markup. It reports whether it
// did.
func (d *xdoc) uncomment(parent *xnode, match func(fd *xdoc, n *xnode) bool) (bool, error) {
	for _, c := range parent.children {
		if c.kind != xComment {
			continue
		}
		cand := strings.TrimSpace(string(d.src[c.start+4 : c.end-3]))
		if cand == "" {
			continue
		}
		if !strings.HasPrefix(cand, "<") {
			cand = "<" + cand
		}
		if !strings.HasSuffix(cand, ">") {
			cand += ">"
		}
		fd, err := d.parseFragment([]byte(cand))
		if err != nil || len(fd.top) != 1 {
			continue
		}
		if !match(fd, fd.root) {
			continue
		}
		return true, d.splice(c.start, c.end, cand)
	}
	return false, nil
}
