package carbonconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// LBConf is a parsed loadbalancer.conf of the WSO2 Elastic Load Balancer
// (and of the Apache Stratos load balancer that followed it): nested
// `name { key value; }` blocks with # comments. Both the `services { … }`
// shape and the older shape with services at top level are understood, and
// so is the Stratos dialect (`key: value;`, hyphenated keys, clusters
// instead of domains). The document keeps its bytes; WriteTo of a parsed
// file is byte-identical to its input. Set, Remove and AddDomain edit it in
// place and rebuild the exported fields (keeping File and ListenPorts). An
// LBConf is not safe for concurrent use.
type LBConf struct {
	// File names the file in errors and findings; LoadLBConf sets it.
	File string

	// Root holds the top-level entries and blocks, in file order.
	Root *LBBlock

	// LoadBalancer is the `loadbalancer { … }` block's entries and Defaults
	// the `services { defaults { … } }` block's, keys as written. Both are
	// empty maps when the blocks are absent.
	LoadBalancer map[string]string
	Defaults     map[string]string

	// Services are the balanced services, each with its domains.
	Services []LBService

	// Warnings lists what was accepted but is probably a mistake: blocks
	// left open at end of file. However many blocks are open, they make
	// one warning, at the first of them (the outermost), whose reason says
	// how many there are and where the innermost is; it wraps
	// ErrUnclosedBlock. The strict readers (ReadLBConfStrict,
	// LoadLBConfStrict) return it as their error instead.
	Warnings []*ParseError

	// ListenPorts are the ports the balancer listens on, against which
	// Lint checks the nodes' proxy ports. The file does not say; nil means
	// the ELB's defaults (8280, 8290 and 8243) and the standard 80 and 443
	// that seed setups forward to it.
	ListenPorts []int

	src   []byte
	spans map[*LBBlock]*lbSpan // where each block and its entries are in src
}

// LBBlock is one `name { … }` block.
type LBBlock struct {
	Name    string
	Entries []LBEntry
	Blocks  []*LBBlock
	Line    int
	Col     int
	Closed  bool // false when the file ended before its closing brace
}

// LBEntry is one `key value;` (or `key: value;`) statement. Value is the
// text between the key and the semicolon, trimmed.
type LBEntry struct {
	Key, Value string
	Line, Col  int
}

// LBService is a service: a block with domains (or, in the Stratos dialect,
// clusters).
type LBService struct {
	Name      string
	Hosts     []string // the service's hosts, split on commas and spaces
	SubDomain string
	Domains   []LBDomain
	Line, Col int
}

// LBDomain is one domain (or cluster) of a service with its effective
// settings: a domain's own hosts and sub_domain override the service's, and
// min/max_app_instances fall back to the service's and then to the
// defaults block.
type LBDomain struct {
	Service         string
	Domain          string
	Hosts           []string
	SubDomain       string
	TenantRange     string // "*", "1-100", "7"
	MinAppInstances int    // 0 when unset or not a number (see Settings)
	MaxAppInstances int
	// Settings holds every entry of the domain's block, keys as written.
	Settings  map[string]string
	Line, Col int
}

// Get returns the entry with this key; '-' and '_' are the same, and a
// trailing ':' is ignored.
func (b *LBBlock) Get(key string) (LBEntry, bool) {
	for _, e := range b.Entries {
		if normKey(e.Key) == normKey(key) {
			return e, true
		}
	}
	return LBEntry{}, false
}

// Block returns the first child block with this name.
func (b *LBBlock) Block(name string) *LBBlock {
	for _, c := range b.Blocks {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func normKey(k string) string { return strings.ReplaceAll(strings.TrimSuffix(k, ":"), "-", "_") }

// ErrUnclosedBlock is wrapped by the *ParseError that reports blocks left
// open at end of file: an error of the strict readers, a warning
// (LBConf.Warnings) of the others.
var ErrUnclosedBlock = errors.New("block not closed")

// ReadLBConf reads a loadbalancer.conf. Syntax errors give a *ParseError;
// so does a byte that is not UTF-8 (truncated, overlong or surrogate
// sequences included), wrapping ErrEncoding at the first such byte, anywhere
// in the file, comments included. Blocks left open at end of file are
// accepted, as the ELB accepts them, and reported in Warnings. Lint and
// tools that show a file use it.
func ReadLBConf(r io.Reader) (*LBConf, error) {
	b, err := readAll(r)
	if err != nil {
		return nil, err
	}
	return parseLBConf("", b)
}

// LoadLBConf reads the loadbalancer.conf at path, as ReadLBConf does.
func LoadLBConf(path string) (*LBConf, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("carbonconf: %w", err)
	}
	return parseLBConf(path, b)
}

// ReadLBConfStrict reads a loadbalancer.conf as ReadLBConf does, but refuses
// one whose blocks are not all closed at end of file: the error is then the
// *ParseError Warnings would hold, at the first block left open and
// wrapping ErrUnclosedBlock. A program that applies the file it reads (a
// balancer reloading its configuration) uses it, so that a file caught half
// written, such as an editor's partial save, is not applied in part.
func ReadLBConfStrict(r io.Reader) (*LBConf, error) {
	return strict(ReadLBConf(r))
}

// LoadLBConfStrict reads the loadbalancer.conf at path, as
// ReadLBConfStrict does.
func LoadLBConfStrict(path string) (*LBConf, error) {
	return strict(LoadLBConf(path))
}

func strict(c *LBConf, err error) (*LBConf, error) {
	if err != nil {
		return nil, err
	}
	if len(c.Warnings) > 0 {
		return nil, c.Warnings[0]
	}
	return c, nil
}

// unclosedError is the reason of the ParseError for blocks left open: its
// text describes them, and errors.Is matches ErrUnclosedBlock.
type unclosedError struct{ msg string }

func (e *unclosedError) Error() string        { return e.msg }
func (e *unclosedError) Is(target error) bool { return target == ErrUnclosedBlock }

// unclosed returns the one warning for the blocks still open at end of
// file, open[0] the outermost.
func unclosed(file string, open []*LBBlock) *ParseError {
	first, last := open[0], open[len(open)-1]
	msg := fmt.Sprintf("block %q is not closed: expected \"}\" before end of file", first.Name)
	if len(open) > 1 {
		msg = fmt.Sprintf("%d blocks are not closed, from %q here to %q at line %d col %d: expected \"}\" before end of file",
			len(open), first.Name, last.Name, last.Line, last.Col)
	}
	return &ParseError{File: file, Line: first.Line, Col: first.Col, Err: &unclosedError{msg}}
}

// WriteTo writes the document exactly as it was read.
func (c *LBConf) WriteTo(w io.Writer) (int64, error) { return writeBytes(w, c.src) }

// Bytes returns a copy of the document's bytes.
func (c *LBConf) Bytes() []byte { return append([]byte(nil), c.src...) }

// Save writes the document, with its edits, to path atomically: a
// temporary file in the same directory is synced and renamed over path,
// which keeps its mode, owner and group (mode 0644 for a new file); a
// symbolic link at path is followed and kept. On error path is untouched.
func (c *LBConf) Save(path string) error { return writeFileAtomic(path, c.src) }

// Listen returns ListenPorts, or the defaults when it is empty.
func (c *LBConf) Listen() []int {
	if c == nil || len(c.ListenPorts) == 0 {
		return []int{80, 443, 8280, 8290, 8243}
	}
	return c.ListenPorts
}

type lbParser struct {
	file  string
	src   []byte
	lines []int
	i     int
}

func (p *lbParser) errAt(off int, format string, args ...any) *ParseError {
	l, c := offsetPos(p.lines, off)
	return &ParseError{File: p.file, Line: l, Col: c, Err: fmt.Errorf(format, args...)}
}

func isLBSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'
}

// token returns the next token's start and end: '{', '}', ';' or a word.
// Comments (# to end of line, at the start of a token) are skipped. At end
// of input start == len(src).
func (p *lbParser) token() (int, int) {
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case isLBSpace(c):
			p.i++
		case c == '#':
			j := bytes.IndexByte(p.src[p.i:], '\n')
			if j < 0 {
				p.i = len(p.src)
			} else {
				p.i += j
			}
		case c == '{' || c == '}' || c == ';':
			p.i++
			return p.i - 1, p.i
		default:
			start := p.i
			for p.i < len(p.src) {
				c := p.src[p.i]
				if isLBSpace(c) || c == '{' || c == '}' || c == ';' {
					break
				}
				p.i++
			}
			return start, p.i
		}
	}
	return len(p.src), len(p.src)
}

func parseLBConf(file string, src []byte) (*LBConf, error) {
	p := &lbParser{file: file, src: src, lines: lineStarts(src)}
	// The file is UTF-8 throughout: a byte that is not would reach a key or
	// value as itself, and the editor refuses to write such values. One pass
	// over the whole file, before parsing; the offset is looked for only
	// when there is one.
	if !utf8.Valid(src) {
		off := invalidUTF8(src)
		return nil, p.errAt(off, "%w: expected UTF-8, found %s", ErrEncoding, badUTF8(src[off:]))
	}
	// A byte-order mark, as Windows editors write one, is no part of the
	// first word; it stays in the bytes written back.
	if bytes.HasPrefix(src, utf8BOM) {
		p.i = len(utf8BOM)
	}
	conf := &LBConf{File: file, src: src, Root: &LBBlock{Line: 1, Col: 1, Closed: true}}
	// One span per block: sized once, the map is not rehashed as it grows.
	conf.spans = make(map[*LBBlock]*lbSpan, 1+bytes.Count(src, []byte("{")))
	conf.spans[conf.Root] = &lbSpan{start: 0, open: -1, close: len(src), end: len(src)}
	stack := []*LBBlock{conf.Root}
	var words [][2]int // the current statement's words
	for {
		s, e := p.token()
		if s == len(src) {
			break
		}
		switch src[s] {
		case '{':
			if len(words) == 0 {
				return nil, p.errAt(s, `expected a block name before "{"`)
			}
			name := string(src[words[0][0]:words[len(words)-1][1]])
			l, c := offsetPos(p.lines, words[0][0])
			b := &LBBlock{Name: name, Line: l, Col: c}
			top := stack[len(stack)-1]
			top.Blocks = append(top.Blocks, b)
			stack = append(stack, b)
			conf.spans[b] = &lbSpan{start: words[0][0], open: s, close: len(src), end: len(src)}
			words = nil
		case '}':
			if len(words) > 0 {
				return nil, p.errAt(s, "expected \";\" after %q, found \"}\"", string(src[words[0][0]:words[len(words)-1][1]]))
			}
			if len(stack) == 1 {
				return nil, p.errAt(s, `expected a key or a block name, found "}" with no open block`)
			}
			b := stack[len(stack)-1]
			b.Closed = true
			conf.spans[b].close, conf.spans[b].end = s, e
			stack = stack[:len(stack)-1]
		case ';':
			if len(words) == 0 {
				continue // an empty statement
			}
			key := string(src[words[0][0]:words[0][1]])
			vs := words[0][1]
			if i := strings.IndexByte(key, ':'); i >= 0 {
				// "key: value" or "key:value" (the Stratos dialect).
				vs = words[0][0] + i + 1
				key = key[:i]
			} else if len(words) > 1 && string(src[words[1][0]:words[1][1]]) == ":" {
				vs = words[1][1]
			}
			raw := src[vs:s]
			lead := len(raw) - len(bytes.TrimLeftFunc(raw, unicode.IsSpace))
			trail := len(raw) - len(bytes.TrimRightFunc(raw, unicode.IsSpace))
			if lead == len(raw) {
				trail = 0
			}
			es := lbEntrySpan{start: words[0][0], keyEnd: words[0][0] + len(key), valStart: vs + lead, valEnd: s - trail, semi: s}
			if key == "" {
				return nil, p.errAt(words[0][0], "expected a key before \":\"")
			}
			l, c := offsetPos(p.lines, words[0][0])
			top := stack[len(stack)-1]
			top.Entries = append(top.Entries, LBEntry{Key: key, Value: strings.TrimSpace(string(src[vs:s])), Line: l, Col: c})
			conf.spans[top].entries = append(conf.spans[top].entries, es)
			words = nil
		default:
			words = append(words, [2]int{s, e})
		}
	}
	if len(words) > 0 {
		return nil, p.errAt(len(src), "expected \";\" or \"{\" after %q, found end of file", string(src[words[0][0]:words[len(words)-1][1]]))
	}
	if len(stack) > 1 {
		conf.Warnings = []*ParseError{unclosed(file, stack[1:])}
	}
	conf.build()
	return conf, nil
}

// utf8BOM is UTF-8's byte-order mark, U+FEFF.
var utf8BOM = []byte("\xef\xbb\xbf")

// invalidUTF8 returns the offset of the first byte of src that does not
// begin a valid UTF-8 sequence, or len(src) when there is none.
func invalidUTF8(src []byte) int {
	for i := 0; i < len(src); {
		if src[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(src)
}

// badUTF8 describes, for an error message, the invalid UTF-8 sequence that
// b starts with: why the bytes are not UTF-8 (RFC 3629 §3 and §4).
func badUTF8(b []byte) string {
	if len(b) == 0 {
		return "end of file"
	}
	c := b[0]
	var size int         // the sequence length the lead byte announces
	lo, hi := 0x80, 0xBF // the second byte's range
	switch {
	case c < utf8.RuneSelf:
		return fmt.Sprintf("byte %#02x", c) // not reached: ASCII is UTF-8
	case c < 0xC0:
		return fmt.Sprintf("byte %#02x, a continuation byte without a lead byte", c)
	case c < 0xC2:
		return fmt.Sprintf("byte %#02x, which begins an overlong encoding", c)
	case c < 0xE0:
		size = 2
	case c < 0xF0:
		size = 3
		switch c {
		case 0xE0:
			lo = 0xA0
		case 0xED:
			hi = 0x9F
		}
	case c < 0xF5:
		size = 4
		switch c {
		case 0xF0:
			lo = 0x90
		case 0xF4:
			hi = 0x8F
		}
	default:
		return fmt.Sprintf("byte %#02x, which UTF-8 never uses", c)
	}
	for i := 1; i < size; i++ {
		what := fmt.Sprintf("byte %#02x", c)
		if i > 1 {
			what = fmt.Sprintf("bytes % #x", b[:i])
		}
		if i == len(b) {
			return fmt.Sprintf("%s, a %d-byte sequence cut short by end of file", what, size)
		}
		if b[i] < 0x80 || b[i] > 0xBF {
			return fmt.Sprintf("%s, a %d-byte sequence cut short by byte %#02x", what, size, b[i])
		}
		if i > 1 {
			continue
		}
		switch {
		case int(b[1]) < lo:
			return fmt.Sprintf("bytes % #x, the start of an overlong encoding", b[:2])
		case int(b[1]) > hi && c == 0xED:
			return fmt.Sprintf("bytes % #x, the start of a UTF-16 surrogate (U+D800 to U+DFFF), which UTF-8 does not encode", b[:2])
		case int(b[1]) > hi:
			return fmt.Sprintf("bytes % #x, the start of a code point above U+10FFFF", b[:2])
		}
	}
	return fmt.Sprintf("bytes % #x", b[:size]) // not reached: a valid sequence
}

func entryMap(b *LBBlock) map[string]string {
	m := map[string]string{}
	if b == nil {
		return m
	}
	for _, e := range b.Entries {
		m[e.Key] = e.Value
	}
	return m
}

// splitHosts splits "a.com,b.com" and "a, b" into names.
func splitHosts(v string) []string {
	f := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(f) == 0 {
		return nil
	}
	return f
}

func (c *LBConf) build() {
	c.LoadBalancer = entryMap(c.Root.Block("loadbalancer"))
	svcs := c.Root.Block("services")
	c.Defaults = map[string]string{}
	if svcs != nil {
		c.Defaults = entryMap(svcs.Block("defaults"))
	}
	// lb-level blocks may themselves hold services (the Stratos dialect
	// puts `services` inside `loadbalancer`).
	var candidates []*LBBlock
	for _, b := range c.Root.Blocks {
		switch b.Name {
		case "services":
			candidates = append(candidates, b.Blocks...)
		case "loadbalancer":
			if s := b.Block("services"); s != nil {
				candidates = append(candidates, s.Blocks...)
			}
		default:
			candidates = append(candidates, b)
		}
	}
	// The defaults by normalised key, the last one written winning, looked
	// up once per domain: a scan per domain would cost the product of the
	// two counts.
	defaults := map[string]string{}
	if svcs != nil {
		if db := svcs.Block("defaults"); db != nil {
			for _, e := range db.Entries {
				defaults[normKey(e.Key)] = e.Value
			}
		}
	}
	for _, b := range candidates {
		if b.Name == "defaults" {
			continue
		}
		doms := b.Block("domains")
		if doms == nil {
			doms = b.Block("clusters")
		}
		if doms == nil {
			continue
		}
		svc := LBService{Name: b.Name, Line: b.Line, Col: b.Col}
		if e, ok := b.Get("hosts"); ok {
			svc.Hosts = splitHosts(e.Value)
		}
		if e, ok := b.Get("sub_domain"); ok {
			svc.SubDomain = e.Value
		}
		// The service's fallbacks, found once for all its domains.
		fallback := map[string]string{}
		for _, k := range []string{"min_app_instances", "max_app_instances"} {
			if e, ok := b.Get(k); ok {
				fallback[k] = e.Value
			} else if v, ok := defaults[k]; ok {
				fallback[k] = v
			}
		}
		for _, db := range doms.Blocks {
			d := LBDomain{Service: b.Name, Domain: db.Name, Hosts: svc.Hosts, SubDomain: svc.SubDomain,
				Settings: entryMap(db), Line: db.Line, Col: db.Col}
			if e, ok := db.Get("hosts"); ok {
				d.Hosts = splitHosts(e.Value)
			}
			if e, ok := db.Get("sub_domain"); ok {
				d.SubDomain = e.Value
			}
			if e, ok := db.Get("tenant_range"); ok {
				d.TenantRange = e.Value
			}
			d.MinAppInstances = instances(db, fallback, "min_app_instances")
			d.MaxAppInstances = instances(db, fallback, "max_app_instances")
			svc.Domains = append(svc.Domains, d)
		}
		c.Services = append(c.Services, svc)
	}
}

// instances reads key from the domain's block, else from fallback (the
// service's value, else the defaults'); 0 when absent or not a number.
func instances(dom *LBBlock, fallback map[string]string, key string) int {
	v, ok := fallback[key]
	if e, found := dom.Get(key); found {
		v, ok = e.Value, true
	}
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0
	}
	return n
}
