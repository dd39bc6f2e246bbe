package carbonconf

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/carbonlb/carbonlb/carbonconf/internal/textedit"
)

// This file holds the loadbalancer.conf setters. As with the XML documents,
// an edit splices new bytes into the old ones, parses the result again and
// checks that the new document reads the way the edit meant; only then does
// it replace the old one. Everything outside the spliced bytes is kept.

// ErrExists is returned (wrapped) by LBConf.AddDomain when the service
// already has a domain of that name.
var ErrExists = errors.New("already exists")

// lbSpan is where a block is in the document's bytes. For Root, open is -1
// and close and end are len(src).
type lbSpan struct {
	start   int // the first byte of the block's name
	open    int // the '{'
	close   int // the '}'; len(src) when the block is not closed
	end     int // just after the '}'; len(src) when the block is not closed
	entries []lbEntrySpan
}

// lbEntrySpan is where one `key value;` statement is.
type lbEntrySpan struct {
	start            int // the key's first byte
	keyEnd           int // just after the key (before any ':')
	valStart, valEnd int // the value, trimmed; both at semi when it is empty
	semi             int // the ';'
}

// checkLBValue rejects a value that would not read back as itself: one
// that would end the statement or open or close a block (';', '{', '}'),
// start a comment ('#'), span lines, hold control characters or invalid
// UTF-8, or begin or end with white space (which reading trims).
func checkLBValue(what, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("carbonconf: %s %q is not valid UTF-8", what, v)
	}
	for _, r := range v {
		switch {
		case r == ';' || r == '{' || r == '}' || r == '#':
			return fmt.Errorf("carbonconf: %s %q holds %q, which loadbalancer.conf cannot hold in a value", what, v, r)
		case r == '\n' || r == '\r':
			return fmt.Errorf("carbonconf: %s %q spans lines; a value must be on one line", what, v)
		case r != '\t' && unicode.IsControl(r):
			return fmt.Errorf("carbonconf: %s %q holds control character %U", what, v, r)
		}
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("carbonconf: %s %q begins or ends with white space, which reading would drop", what, v)
	}
	return nil
}

// checkLBName rejects a key or block name that is empty or would not read
// back as one word: white space, ';', '{', '}', '#', '/' (which separates
// path elements) and, in keys, ':' (which separates a key from its value in
// the Stratos dialect).
func checkLBName(what, name string, key bool) error {
	if name == "" {
		return fmt.Errorf("carbonconf: %s is empty", what)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("carbonconf: %s %q is not valid UTF-8", what, name)
	}
	bad := ";{}#/"
	if key {
		bad += ":"
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(bad, r) {
			return fmt.Errorf("carbonconf: %s %q holds %q; want one word without white space or any of %s", what, name, r, bad)
		}
	}
	return nil
}

// splitLBPath splits a slash-separated block path ("services/esb/domains").
func splitLBPath(path string) ([]string, error) {
	if path == "" {
		return nil, errors.New("carbonconf: empty block path")
	}
	segs := strings.Split(path, "/")
	for _, s := range segs {
		if err := checkLBName(fmt.Sprintf("block name in path %q", path), s, false); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// lookup follows segs from b; it returns the deepest block reached and how
// many segments were matched.
func lookup(b *LBBlock, segs []string) (*LBBlock, int) {
	for i, s := range segs {
		next := b.Block(s)
		if next == nil {
			return b, i
		}
		b = next
	}
	return b, len(segs)
}

// Block returns the block at path, slash-separated from the top of the file
// ("loadbalancer", "services/defaults",
// "services/esb/domains/wso2.esb.domain"), or nil. With duplicate names the
// first block is taken.
func (c *LBConf) Block(path string) *LBBlock {
	segs, err := splitLBPath(path)
	if err != nil {
		return nil
	}
	b, n := lookup(c.Root, segs)
	if n < len(segs) {
		return nil
	}
	return b
}

// DomainPath returns the block path of a service's domain (or Stratos
// cluster) for Set and Remove, in whichever shape the file has:
// "services/esb/domains/wso2.esb.domain", the older
// "esb/domains/wso2.esb.domain", or the Stratos
// "loadbalancer/services/esb/clusters/c1". It reports false when there is
// no such domain.
func (c *LBConf) DomainPath(service, domain string) (string, bool) {
	for _, sp := range c.servicePaths() {
		svc := c.Block(sp)
		if svc == nil || svc.Name != service {
			continue
		}
		for _, list := range []string{"domains", "clusters"} {
			if d := svc.Block(list); d != nil {
				if d.Block(domain) != nil && !strings.Contains(domain, "/") {
					p := sp + "/" + list + "/" + domain
					if c.Block(p) != nil {
						return p, true
					}
				}
				break
			}
		}
	}
	return "", false
}

// servicePaths returns the paths of the blocks build treats as services,
// in the same order.
func (c *LBConf) servicePaths() []string {
	var out []string
	for _, b := range c.Root.Blocks {
		switch b.Name {
		case "services":
			for _, s := range b.Blocks {
				out = append(out, "services/"+s.Name)
			}
		case "loadbalancer":
			if svcs := b.Block("services"); svcs != nil {
				for _, s := range svcs.Blocks {
					out = append(out, "loadbalancer/services/"+s.Name)
				}
			}
		default:
			out = append(out, b.Name)
		}
	}
	return out
}

// Set sets key to value in the block at path (see Block). Every entry with
// that key is changed in place ('-' and '_' alike, as in LBBlock.Get); when
// there is none, a `key value;` statement is added after the block's last
// entry, with its siblings' indentation, separator (`key: value;` in the
// Stratos dialect) and value column. Missing blocks on the path are added.
// The value may not hold ';', '{', '}', '#' or a line break, nor begin or
// end with white space: such a value is an error and the document is
// unchanged. Setting the value a block already has changes nothing.
func (c *LBConf) Set(path, key, value string) error {
	segs, err := splitLBPath(path)
	if err != nil {
		return err
	}
	if err := checkLBName("key", key, true); err != nil {
		return err
	}
	if err := checkLBValue("value of "+key, value); err != nil {
		return err
	}
	b, n := lookup(c.Root, segs)
	e := c.editor()
	if n < len(segs) {
		// Add the missing blocks, the innermost holding the entry.
		text := e.entryText(nil, key, value)
		for i := len(segs) - 1; i >= n; i-- {
			text = segs[i] + " {\n" + e.unit + strings.ReplaceAll(text, "\n", "\n"+e.unit) + "\n}"
		}
		e.insertBlock(b, text)
	} else {
		sp := c.spans[b]
		found := false
		for i := len(b.Entries) - 1; i >= 0; i-- {
			if normKey(b.Entries[i].Key) != normKey(key) {
				continue
			}
			found = true
			es := sp.entries[i]
			if b.Entries[i].Value == value {
				continue
			}
			if es.valStart == es.valEnd && (es.semi == 0 || !isLBSpace(c.src[es.semi-1])) {
				// "key;" or "key:;": keep a space before the value.
				e.splice(es.semi, es.semi, " "+value)
				continue
			}
			e.splice(es.valStart, es.valEnd, value)
		}
		if !found {
			e.insertEntry(b, key, value)
		}
	}
	return e.commit(fmt.Sprintf("set %s %s", path, key), func(nc *LBConf) error {
		nb := nc.Block(path)
		if nb == nil {
			return fmt.Errorf("block %s is not where it was added", path)
		}
		got, ok := nb.Get(key)
		if !ok || got.Value != value {
			return fmt.Errorf("%s would read back as %q", key, got.Value)
		}
		for _, x := range nb.Entries {
			if normKey(x.Key) == normKey(key) && x.Value != value {
				return fmt.Errorf("%s would read back as %q", key, x.Value)
			}
		}
		return nil
	})
}

// Remove removes every entry with key (as in LBBlock.Get) from the block at
// path, with the line it is on when it is alone there (a comment after it
// on that line goes too). It reports whether there was such an entry; a
// missing block or key is not an error.
func (c *LBConf) Remove(path, key string) (bool, error) {
	if _, err := splitLBPath(path); err != nil {
		return false, err
	}
	b := c.Block(path)
	if b == nil {
		return false, nil
	}
	e := c.editor()
	sp := c.spans[b]
	removed := false
	for i := len(b.Entries) - 1; i >= 0; i-- {
		if normKey(b.Entries[i].Key) == normKey(key) {
			es := sp.entries[i]
			e.remove(es.start, es.semi+1)
			removed = true
		}
	}
	if !removed {
		return false, nil
	}
	return true, e.commit(fmt.Sprintf("remove %s %s", path, key), func(nc *LBConf) error {
		nb := nc.Block(path)
		if nb == nil {
			return fmt.Errorf("block %s is gone", path)
		}
		if _, ok := nb.Get(key); ok {
			return fmt.Errorf("%s is still there", key)
		}
		return nil
	})
}

// AddDomain adds a domain block with these entries (only Key and Value are
// used) to a service. The domain goes after the service's other domains
// (or Stratos clusters) with their indentation. A service that does not
// exist is added too: inside `services { … }` when the file has that
// block, otherwise at the top level after the other services, as in the
// older shape. A domain the service already has gives an error wrapping
// ErrExists. Names and values are checked as in Set; on error the document
// is unchanged.
func (c *LBConf) AddDomain(service, domain string, entries ...LBEntry) error {
	if err := checkLBName("service name", service, false); err != nil {
		return err
	}
	if err := checkLBName("domain name", domain, false); err != nil {
		return err
	}
	for _, x := range entries {
		if err := checkLBName("key", x.Key, true); err != nil {
			return err
		}
		if err := checkLBValue("value of "+x.Key, x.Value); err != nil {
			return err
		}
	}
	e := c.editor()

	// The service, preferring one that has domains.
	var svc *LBBlock
	var svcPath string
	for _, p := range c.servicePaths() {
		b := c.Block(p)
		if b == nil || b.Name != service {
			continue
		}
		if svc == nil || svc.Block("domains") == nil && svc.Block("clusters") == nil {
			svc, svcPath = b, p
		}
	}

	// Entries are written like those of the service's last domain, or of
	// any domain in the file.
	var sib *lbEntrySpan
	var doms []*LBBlock
	if svc != nil {
		doms = append(doms, svc.Block("domains"), svc.Block("clusters"))
	}
	for _, p := range c.servicePaths() {
		if b := c.Block(p); b != nil {
			doms = append(doms, b.Block("domains"), b.Block("clusters"))
		}
	}
	for _, list := range doms {
		if list == nil || sib != nil {
			continue
		}
		for i := len(list.Blocks) - 1; i >= 0 && sib == nil; i-- {
			if es := c.spans[list.Blocks[i]].entries; len(es) > 0 {
				sib = &es[len(es)-1]
			}
		}
	}
	dom := domain + " {"
	for _, x := range entries {
		dom += "\n" + e.unit + e.entryText(sib, x.Key, x.Value)
	}
	dom += "\n}"
	nest := func(name, body string) string {
		return name + " {\n" + e.unit + strings.ReplaceAll(body, "\n", "\n"+e.unit) + "\n}"
	}
	list := "domains"
	switch {
	case svc != nil:
		doms := svc.Block("domains")
		if doms == nil && svc.Block("clusters") != nil {
			doms, list = svc.Block("clusters"), "clusters"
		}
		if doms != nil {
			if doms.Block(domain) != nil {
				return fmt.Errorf("carbonconf: add domain %s to %s: %w", domain, service, ErrExists)
			}
			e.insertBlock(doms, dom)
		} else {
			e.insertBlock(svc, nest(list, dom))
		}
	default:
		if c.usesClusters() {
			list = "clusters"
		}
		text := nest(service, nest(list, dom))
		switch {
		case c.Root.Block("services") != nil:
			svcPath = "services/" + service
			e.insertBlock(c.Root.Block("services"), text)
		case c.Root.Block("loadbalancer") != nil && c.Root.Block("loadbalancer").Block("services") != nil:
			svcPath = "loadbalancer/services/" + service
			e.insertBlock(c.Root.Block("loadbalancer").Block("services"), text)
		case c.hasOlderShape():
			svcPath = service
			e.insertBlock(c.Root, text)
		default:
			svcPath = "services/" + service
			e.insertBlock(c.Root, nest("services", text))
		}
	}
	return e.commit(fmt.Sprintf("add domain %s to %s", domain, service), func(nc *LBConf) error {
		var got *LBDomain
		n := 0
		for _, s := range nc.Services {
			for i, d := range s.Domains {
				if s.Name == service && d.Domain == domain {
					got = &s.Domains[i]
					n++
				}
			}
		}
		if n != 1 || nc.Block(svcPath+"/"+list+"/"+domain) == nil {
			return fmt.Errorf("the domain would not read back where it was added")
		}
		want := map[string]string{}
		for _, x := range entries {
			want[x.Key] = x.Value
		}
		if !maps.Equal(want, got.Settings) {
			return fmt.Errorf("the domain would read back with settings %v, want %v", got.Settings, want)
		}
		return nil
	})
}

// usesClusters reports whether the file's services list clusters (the
// Stratos dialect) rather than domains.
func (c *LBConf) usesClusters() bool {
	for _, p := range c.servicePaths() {
		if b := c.Block(p); b != nil {
			if b.Block("clusters") != nil {
				return true
			}
			if b.Block("domains") != nil {
				return false
			}
		}
	}
	return false
}

// hasOlderShape reports whether the file lists services at the top level.
func (c *LBConf) hasOlderShape() bool {
	for _, b := range c.Root.Blocks {
		if b.Name != "services" && b.Name != "loadbalancer" && (b.Block("domains") != nil || b.Block("clusters") != nil) {
			return true
		}
	}
	return false
}

// lbEditor collects splices on a document's bytes and commits them.
type lbEditor struct {
	c     *LBConf
	nl    string            // the file's line ending
	unit  string            // the file's indentation step
	edits []textedit.Splice // with e.nl for line breaks
}

func (c *LBConf) editor() *lbEditor {
	e := &lbEditor{c: c, nl: textedit.Newline(c.src)}
	e.unit = c.indentUnit()
	return e
}

func (e *lbEditor) splice(start, end int, repl string) {
	e.edits = append(e.edits, textedit.Splice{Start: start, End: end, Text: strings.ReplaceAll(repl, "\n", e.nl)})
}

// commit applies the splices (removals of the white space between two
// statements on one line may overlap: textedit.Apply gives the shared
// bytes to the later), parses the result,
// checks it with verify and, when both succeed, makes it the document.
func (e *lbEditor) commit(what string, verify func(*LBConf) error) error {
	c := e.c
	if len(e.edits) == 0 {
		return nil
	}
	src := textedit.Apply(c.src, e.edits)
	nc, err := parseLBConf(c.File, src)
	if err != nil {
		return fmt.Errorf("carbonconf: %s in %s: the edit would make the file unreadable: %w", what, displayName(c.File), err)
	}
	if err := verify(nc); err != nil {
		return fmt.Errorf("carbonconf: %s in %s: %w", what, displayName(c.File), err)
	}
	nc.ListenPorts = c.ListenPorts
	*c = *nc
	return nil
}

// restIsBlank reports whether only white space or a comment follows off on
// its line.
func (c *LBConf) restIsBlank(off int) bool {
	rest := bytes.TrimLeft(c.src[off:textedit.LineEnd(c.src, off)], " \t\r\f\v")
	return len(rest) == 0 || rest[0] == '#'
}

// stmtStarts returns where b's statements (entries and blocks) begin.
func (c *LBConf) stmtStarts(b *LBBlock) []int {
	sp := c.spans[b]
	var out []int
	for _, es := range sp.entries {
		out = append(out, es.start)
	}
	for _, cb := range b.Blocks {
		out = append(out, c.spans[cb].start)
	}
	return out
}

// childIndent returns the indentation of b's statements: that of one that
// begins its line, or b's own plus the file's step.
func (c *LBConf) childIndent(b *LBBlock, unit string) string {
	for _, off := range c.stmtStarts(b) {
		if ws, ok := textedit.OwnLine(c.src, off); ok {
			return ws
		}
	}
	if b == c.Root {
		return ""
	}
	own, _ := textedit.IndentAt(c.src, c.spans[b].start)
	return own + unit
}

// indentUnit guesses the file's indentation step from the first statement
// on a line of its own inside a block on a line of its own; "    " when
// there is none.
func (c *LBConf) indentUnit() string {
	var walk func(b *LBBlock) string
	walk = func(b *LBBlock) string {
		if b != c.Root {
			if own, ok := textedit.OwnLine(c.src, c.spans[b].start); ok {
				for _, off := range c.stmtStarts(b) {
					// Both begin their lines: the lines differ when the
					// line starts do.
					if ws, ok := textedit.OwnLine(c.src, off); ok && len(ws) > len(own) && strings.HasPrefix(ws, own) && off-len(ws) != c.spans[b].start-len(own) {
						return ws[len(own):]
					}
				}
			}
		}
		for _, cb := range b.Blocks {
			if u := walk(cb); u != "" {
				return u
			}
		}
		return ""
	}
	if u := walk(c.Root); u != "" {
		return u
	}
	return "    "
}

// entryText formats `key value;` like sib (nil: like the file).
func (e *lbEditor) entryText(sib *lbEntrySpan, key, value string) string {
	c := e.c
	sep := " "
	if sib == nil {
		if c.colonStyle() {
			sep = ": "
		}
	} else if sib.valStart > sib.keyEnd {
		sep = string(c.src[sib.keyEnd:sib.valStart])
		if len(sep) > 1 && strings.Trim(sep, " ") == "" {
			// Spaces that line values up: line this one up too.
			n := sib.valStart - sib.start - len(key)
			sep = strings.Repeat(" ", max(n, 1))
		} else if strings.ContainsAny(sep, "\r\n") {
			sep = " "
		} else if strings.TrimSpace(sep) == ":" && sep[0] != ':' {
			// "key : value": the colon is a word of its own.
			sep = strings.TrimRight(sep, " \t") + " "
		}
	}
	if value == "" {
		sep = strings.TrimRight(sep, " \t") + " "
	}
	return key + sep + value + ";"
}

// colonStyle reports whether the file writes `key: value;`.
func (c *LBConf) colonStyle() bool {
	for _, sp := range c.spans {
		for _, es := range sp.entries {
			if bytes.ContainsRune(c.src[es.keyEnd:max(es.valStart, es.keyEnd)], ':') {
				return true
			}
		}
	}
	return false
}

// insertEntry adds `key value;` to b after its last entry, or before its
// first block.
func (e *lbEditor) insertEntry(b *LBBlock, key, value string) {
	sp := e.c.spans[b]
	var sib *lbEntrySpan
	if n := len(sp.entries); n > 0 {
		sib = &sp.entries[n-1]
	}
	text := e.entryText(sib, key, value)
	if sib != nil {
		e.after(b, sib.start, sib.semi+1, text)
		return
	}
	e.first(b, text)
}

// insertBlock adds text (a block; lines after the first indented relative
// to it) to b after its last block, or after its last entry.
func (e *lbEditor) insertBlock(b *LBBlock, text string) {
	sp := e.c.spans[b]
	if n := len(b.Blocks); n > 0 {
		last := e.c.spans[b.Blocks[n-1]]
		e.after(b, last.start, last.end, text)
		return
	}
	if n := len(sp.entries); n > 0 {
		es := sp.entries[n-1]
		e.after(b, es.start, es.semi+1, text)
		return
	}
	e.first(b, text)
}

// after puts text into b after the statement at [start, end): on a line of
// its own when that statement is alone on its line, otherwise after it on
// the same line.
func (e *lbEditor) after(b *LBBlock, start, end int, text string) {
	c := e.c
	if _, ok := textedit.IndentAt(c.src, start); ok && c.restIsBlank(end) {
		ind := c.childIndent(b, e.unit)
		e.splice(textedit.LineEnd(c.src, end), textedit.LineEnd(c.src, end), "\n"+ind+strings.ReplaceAll(text, "\n", "\n"+ind))
		return
	}
	e.splice(end, end, " "+text)
}

// first puts text into b before its first statement, or into the empty
// block b.
func (e *lbEditor) first(b *LBBlock, text string) {
	c := e.c
	sp := c.spans[b]
	ind := c.childIndent(b, e.unit)
	body := strings.ReplaceAll(text, "\n", "\n"+ind)
	if starts := c.stmtStarts(b); len(starts) > 0 {
		first := starts[0]
		for _, s := range starts {
			first = min(first, s)
		}
		if ws, ok := textedit.IndentAt(c.src, first); ok {
			at := textedit.LineStart(c.src, first)
			e.splice(at, at, ws+strings.ReplaceAll(text, "\n", "\n"+ws)+"\n")
			return
		}
		e.splice(first, first, text+" ")
		return
	}
	switch {
	case sp.close == len(c.src):
		// Root, or a block the file never closes: append.
		pre := ""
		if len(c.src) > 0 && c.src[len(c.src)-1] != '\n' {
			pre = "\n"
		}
		e.splice(len(c.src), len(c.src), pre+ind+body+"\n")
	case textedit.LineStart(c.src, sp.close) != textedit.LineStart(c.src, sp.open):
		if _, ok := textedit.IndentAt(c.src, sp.close); ok {
			at := textedit.LineStart(c.src, sp.close)
			e.splice(at, at, ind+body+"\n")
			return
		}
		e.splice(sp.close, sp.close, body+" ")
	default:
		pad := ""
		if c.src[sp.open+1] == '}' {
			pad = " "
		}
		e.splice(sp.open+1, sp.open+1, " "+body+pad)
	}
}

// remove deletes the statement at [start, end): with its whole line when it
// is alone there, otherwise with the spaces before it.
func (e *lbEditor) remove(start, end int) {
	c := e.c
	_, first := textedit.IndentAt(c.src, start)
	if first && c.restIsBlank(end) {
		ls := textedit.LineStart(c.src, start)
		le := len(c.src)
		if j := bytes.IndexByte(c.src[end:], '\n'); j >= 0 {
			le = end + j + 1
		} else if ls > 0 {
			// The last line, without a line break: take the one before.
			ls--
			if ls > 0 && c.src[ls-1] == '\r' {
				ls--
			}
		}
		e.splice(ls, le, "")
		return
	}
	if first {
		// Statements follow on the line: the next one takes this one's place.
		for end < len(c.src) && (c.src[end] == ' ' || c.src[end] == '\t') {
			end++
		}
	} else {
		for start > 0 && (c.src[start-1] == ' ' || c.src[start-1] == '\t') {
			start--
		}
	}
	e.splice(start, end, "")
}
