package hosts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// File is a hosts(5) file held line by line. Every byte of the input is kept:
// [File.WriteTo] of a File that was not edited writes exactly the bytes
// [Parse] read, whatever they were, and an edit rewrites only the lines it
// changes.
//
// A File is not safe for concurrent use; a [Resolver] reads its own copy.
type File struct {
	path  string // the path given to Load, for warnings; "" after Parse
	lines []line
	warns []Warning

	// index maps a folded name to its addresses in file order, and
	// rindex an address to its names; both are built lazily and
	// dropped on every edit.
	index  map[string][]netip.Addr
	rindex map[netip.Addr][]string

	// rename replaces a file by another; nil means os.Rename. Tests set it
	// to reproduce the EBUSY of a bind-mounted /etc/hosts.
	rename func(oldpath, newpath string) error
}

// line is one line of a hosts file. For an entry line, text is
// indent + fields[0].text + fields[1].sep + fields[1].text + … + tail,
// where fields[0] is the address and the rest are the names.
type line struct {
	text string // the line without its terminator, exactly as read or as rendered after an edit
	eol  string // "\n", "\r\n", or "" for a last line without a terminator

	// The parse of text. An entry has a valid addr and at least one name;
	// any other line (blank, comment, unparsable) has no fields and is
	// never edited.
	addr   netip.Addr
	indent string
	fields []field
	tail   string // trailing white space and comment
}

// field is a white-space separated word of an entry line and the white space
// before it.
type field struct {
	sep  string
	text string
}

// Warning reports a line of a hosts file that is not an entry although it is
// not blank or a comment, such as a line whose address does not parse. The
// line is kept verbatim; resolvers ignore it, as glibc does.
type Warning struct {
	Path string // the file's path, "" when parsed from a reader
	Line int    // 1-based line number
	Col  int    // 1-based byte column of the offending word
	Text string // the offending word
	Msg  string // what was expected
}

// String formats w as path:line:col: msg: "text".
func (w Warning) String() string {
	p := w.Path
	if p == "" {
		p = "hosts"
	}
	return fmt.Sprintf("%s:%d:%d: %s: %q", p, w.Line, w.Col, w.Msg, w.Text)
}

// Parse reads a hosts(5) file. It fails only when r fails: a line that is not
// a valid entry is kept verbatim and reported by [File.Warnings].
//
// Comments start at '#' anywhere on a line; fields are separated by spaces,
// tabs and the other ASCII white space; the first field is an IPv4 or IPv6
// address (an IPv6 address may carry a zone, as in fe80::1%eth0) and the
// others are names. Both LF and CRLF line endings are accepted, even mixed.
func Parse(r io.Reader) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("hosts: read: %w", err)
	}
	return parseBytes("", data), nil
}

// Load reads and parses the hosts file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hosts: %w", err)
	}
	return parseBytes(path, data), nil
}

func parseBytes(path string, data []byte) *File {
	f := &File{path: path, lines: make([]line, 0, bytes.Count(data, []byte{'\n'})+1)}
	s := string(data)
	for n := 1; len(s) > 0; n++ {
		var text, eol string
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			text, eol, s = s[:i], "\n", s[i+1:]
			if strings.HasSuffix(text, "\r") {
				text, eol = text[:len(text)-1], "\r\n"
			}
		} else {
			text, s = s, ""
		}
		l, w := parseLine(text)
		l.eol = eol
		if w != nil {
			w.Path, w.Line = path, n
			f.warns = append(f.warns, *w)
		}
		f.lines = append(f.lines, l)
	}
	return f
}

// isSpace reports whether c separates fields, as isspace(3) does in glibc's
// hosts parser.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// parseLine parses one line (without its terminator). A line that is not an
// entry comes back with no fields, and with a warning unless it is blank or
// a comment.
func parseLine(text string) (line, *Warning) {
	l := line{text: text}
	content := text
	if i := strings.IndexByte(content, '#'); i >= 0 {
		content = content[:i]
	}
	var fields []field
	var indent string
	pos := 0
	for pos < len(content) {
		start := pos
		for pos < len(content) && isSpace(content[pos]) {
			pos++
		}
		if pos == len(content) {
			pos = start
			break
		}
		sep := content[start:pos]
		wstart := pos
		for pos < len(content) && !isSpace(content[pos]) {
			pos++
		}
		if len(fields) == 0 {
			indent, sep = sep, ""
		}
		fields = append(fields, field{sep: sep, text: content[wstart:pos]})
	}
	if len(fields) == 0 {
		return l, nil
	}
	addr, err := netip.ParseAddr(fields[0].text)
	if err != nil {
		return l, &Warning{Col: len(indent) + 1, Text: fields[0].text, Msg: "expected an IPv4 or IPv6 address"}
	}
	if len(fields) == 1 {
		return l, &Warning{Col: len(indent) + 1, Text: fields[0].text, Msg: "expected host names after the address"}
	}
	l.addr, l.indent, l.fields, l.tail = addr, indent, fields, text[pos:]
	return l, nil
}

// render rebuilds l.text from its parse after an edit.
func (l *line) render() {
	var b strings.Builder
	b.WriteString(l.indent)
	for _, fd := range l.fields {
		b.WriteString(fd.sep)
		b.WriteString(fd.text)
	}
	b.WriteString(l.tail)
	l.text = b.String()
}

func (l *line) isEntry() bool { return len(l.fields) > 1 }

// holds reports whether the entry l lists the folded name key.
func (l *line) holds(key string) bool {
	for _, fd := range l.fields[1:] {
		if foldName(fd.text) == key {
			return true
		}
	}
	return false
}

// removeName drops every occurrence of key from the entry l, keeping the
// separator that preceded the first removed name so that the line keeps its
// layout. It reports whether names remain.
func (l *line) removeName(key string) bool {
	out := l.fields[:1:1]
	pendingSep := ""
	for _, fd := range l.fields[1:] {
		if foldName(fd.text) == key {
			if pendingSep == "" {
				pendingSep = fd.sep
			}
			continue
		}
		if pendingSep != "" {
			fd.sep, pendingSep = pendingSep, ""
		}
		out = append(out, fd)
	}
	l.fields = out
	return len(out) > 1
}

// foldName returns the lookup key of a name: ASCII lower case, without a
// trailing dot. It does not allocate when name is already folded.
func foldName(name string) string {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			b := []byte(name)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return name
}

// Warnings returns the lines that are neither entries, blank nor comments,
// in file order, as read by Parse or Load.
func (f *File) Warnings() []Warning { return slices.Clone(f.warns) }

func (f *File) buildIndex() {
	if f.index != nil {
		return
	}
	type pair struct {
		name string
		addr netip.Addr
	}
	seen := make(map[pair]bool)    // folded name and address
	spelled := make(map[pair]bool) // name as written and address
	f.index = make(map[string][]netip.Addr)
	f.rindex = make(map[netip.Addr][]string)
	for i := range f.lines {
		l := &f.lines[i]
		if !l.isEntry() {
			continue
		}
		for _, fd := range l.fields[1:] {
			k := foldName(fd.text)
			if p := (pair{k, l.addr}); !seen[p] {
				seen[p] = true
				f.index[k] = append(f.index[k], l.addr)
			}
			if p := (pair{fd.text, l.addr}); !spelled[p] {
				spelled[p] = true
				f.rindex[l.addr] = append(f.rindex[l.addr], fd.text)
			}
		}
	}
}

// Lookup returns the addresses of name, in file order and without
// duplicates, or nil. Names compare case-insensitively and a trailing dot is
// ignored. The first line holding the name comes first, so a program that
// takes one address gets the one glibc's gethostbyname returns.
func (f *File) Lookup(name string) []netip.Addr {
	f.buildIndex()
	return slices.Clone(f.index[foldName(name)])
}

// Names returns the names listed for addr, in file order and without
// duplicates, or nil: the reverse lookup of a hosts file. The first name is
// the canonical one.
func (f *File) Names(addr netip.Addr) []string {
	f.buildIndex()
	return slices.Clone(f.rindex[addr])
}

// names returns the lookup table of f: folded name to addresses. The caller
// must not modify it.
func (f *File) names() map[string][]netip.Addr {
	f.buildIndex()
	return f.index
}

// ErrInvalidName is returned, wrapped, when a name is not a valid host name
// (RFC 1123 section 2.1).
var ErrInvalidName = errors.New("invalid host name")

// checkName reports whether name is a valid RFC 1123 host name: dot-separated
// labels of 1 to 63 letters, digits and hyphens that neither start nor end
// with a hyphen, 253 bytes at most; one trailing dot is allowed.
func checkName(name string) error {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return fmt.Errorf("hosts: %q: %w: length must be 1 to 253", name, ErrInvalidName)
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("hosts: %q: %w: a label must be 1 to 63 bytes", name, ErrInvalidName)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("hosts: %q: %w: a label must not start or end with '-'", name, ErrInvalidName)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("hosts: %q: %w: unexpected %q, expected letters, digits, '-' or '.'", name, ErrInvalidName, c)
			}
		}
	}
	return nil
}

// dedupAddrs checks addrs and returns them without duplicates.
func dedupAddrs(name string, addrs []netip.Addr) ([]netip.Addr, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("hosts: set %q: no addresses (use Remove to drop a name)", name)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if !a.IsValid() {
			return nil, fmt.Errorf("hosts: set %q: invalid address", name)
		}
		if z := a.Zone(); strings.ContainsFunc(z, func(r rune) bool { return r <= ' ' || r == '#' || r == 0x7f }) {
			// It would not read back: white space ends the address
			// and '#' starts a comment.
			return nil, fmt.Errorf("hosts: set %q: address zone %q holds white space, a control character or '#'", name, z)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// Set makes name resolve to exactly addrs (in any order), editing as little
// as it can:
//   - a line that holds name and one of addrs is kept;
//   - a line that holds name and another address gets its address changed in
//     place when name is its only name, and loses name otherwise;
//   - a missing address is added to the first line that already has it, or
//     appended as a new line "addr<TAB>name".
//
// Set is idempotent: a second call with the same arguments changes nothing.
// It returns an error wrapping [ErrInvalidName] when name is not a valid
// RFC 1123 host name, and an error when addrs is empty or holds an invalid
// address; the file is then unchanged. Lines that do not parse are never
// touched.
func (f *File) Set(name string, addrs ...netip.Addr) error {
	if err := checkName(name); err != nil {
		return err
	}
	want, err := dedupAddrs(name, addrs)
	if err != nil {
		return err
	}
	key := foldName(name)

	// Pass 1: which wanted addresses already have a line holding name.
	have := make(map[netip.Addr]bool, len(want))
	keep := make(map[int]bool)
	for i := range f.lines {
		l := &f.lines[i]
		if l.isEntry() && l.holds(key) && slices.Contains(want, l.addr) && !have[l.addr] {
			have[l.addr] = true
			keep[i] = true
		}
	}
	var missing []netip.Addr
	for _, a := range want {
		if !have[a] {
			missing = append(missing, a)
		}
	}

	// Pass 2: lines holding name that are not kept get a missing address
	// in place, or lose the name.
	changed := false
	out := f.lines[:0:0]
	for i := range f.lines {
		l := f.lines[i]
		if !l.isEntry() || keep[i] || !l.holds(key) {
			out = append(out, l)
			continue
		}
		changed = true
		if len(missing) > 0 && onlyName(&l, key) {
			l.fields = slices.Clone(l.fields)
			l.fields[0].text = missing[0].String()
			l.addr = missing[0]
			missing = missing[1:]
			l.render()
			out = append(out, l)
			continue
		}
		l.fields = slices.Clone(l.fields)
		if l.removeName(key) {
			l.render()
			out = append(out, l)
		}
	}

	// Pass 3: the remaining addresses join a line that has them, or get a
	// line of their own.
	for _, a := range missing {
		changed = true
		if i := slices.IndexFunc(out, func(l line) bool { return l.isEntry() && l.addr == a }); i >= 0 {
			l := &out[i]
			l.fields = append(slices.Clone(l.fields), field{sep: " ", text: name})
			l.render()
			continue
		}
		eol := f.eol()
		if n := len(out); n > 0 && out[n-1].eol == "" {
			out[n-1].eol = eol
		}
		out = append(out, line{
			text:   a.String() + "\t" + name,
			eol:    eol,
			addr:   a,
			fields: []field{{text: a.String()}, {sep: "\t", text: name}},
		})
	}
	if changed {
		f.lines = out
		f.index, f.rindex = nil, nil
	}
	return nil
}

// onlyName reports whether every name of the entry l is key.
func onlyName(l *line, key string) bool {
	for _, fd := range l.fields[1:] {
		if foldName(fd.text) != key {
			return false
		}
	}
	return true
}

// eol returns the line terminator of the file's first terminated line, so
// that appended lines match a CRLF file; "\n" by default.
func (f *File) eol() string {
	for _, l := range f.lines {
		if l.eol != "" {
			return l.eol
		}
	}
	return "\n"
}

// Remove deletes name from every line that lists it; a line left without
// names is deleted. It reports whether the file changed.
func (f *File) Remove(name string) bool {
	key := foldName(name)
	changed := false
	out := f.lines[:0:0]
	for _, l := range f.lines {
		if !l.isEntry() || !l.holds(key) {
			out = append(out, l)
			continue
		}
		changed = true
		l.fields = slices.Clone(l.fields)
		if l.removeName(key) {
			l.render()
			out = append(out, l)
		}
	}
	if changed {
		f.lines = out
		f.index, f.rindex = nil, nil
	}
	return changed
}

// Bytes returns the file's content: exactly the parsed input when the file
// was not edited.
func (f *File) Bytes() []byte {
	n := 0
	for _, l := range f.lines {
		n += len(l.text) + len(l.eol)
	}
	b := make([]byte, 0, n)
	for _, l := range f.lines {
		b = append(b, l.text...)
		b = append(b, l.eol...)
	}
	return b
}

// WriteTo writes the file to w. It implements [io.WriterTo].
func (f *File) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(f.Bytes())
	return int64(n), err
}

var _ io.WriterTo = (*File)(nil)
