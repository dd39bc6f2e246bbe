// Package textedit holds the byte-level helpers that carbonconf's two
// lossless editors, of XML documents and of loadbalancer.conf, share: where
// a line starts and ends, the indentation before an offset, a file's line
// break, and splicing edits into a source. Offsets are byte offsets into
// the source; every function works in time linear in the bytes it looks
// at, so an editor that asks about every statement of a long line stays
// linear in the file's size.
package textedit

import (
	"bytes"
	"sort"
)

// LineStart returns the offset of the start of off's line.
func LineStart(src []byte, off int) int {
	return bytes.LastIndexByte(src[:off], '\n') + 1
}

// LineEnd returns the offset of the line break after off (its '\r' when
// the line ends in CRLF), or len(src).
func LineEnd(src []byte, off int) int {
	j := bytes.IndexByte(src[off:], '\n')
	if j < 0 {
		return len(src)
	}
	end := off + j
	if end > off && src[end-1] == '\r' {
		end--
	}
	return end
}

// IndentAt returns the white space (spaces and tabs) that begins off's
// line, up to off at most, and whether only such white space precedes off
// on its line.
func IndentAt(src []byte, off int) (string, bool) {
	ls := LineStart(src, off)
	i := ls
	for i < off && (src[i] == ' ' || src[i] == '\t') {
		i++
	}
	return string(src[ls:i]), i == off
}

// OwnLine returns the white space before off and true when only spaces
// and tabs precede off on its line, else "" and false. It looks back over
// that white space only, not to the start of a long line.
func OwnLine(src []byte, off int) (string, bool) {
	ls := off
	for ls > 0 && (src[ls-1] == ' ' || src[ls-1] == '\t') {
		ls--
	}
	if ls > 0 && src[ls-1] != '\n' {
		return "", false
	}
	return string(src[ls:off]), true
}

// Newline returns the line break the source uses: "\r\n" when it has one,
// else "\n".
func Newline(src []byte) string {
	if bytes.Contains(src, []byte("\r\n")) {
		return "\r\n"
	}
	return "\n"
}

// Splice replaces src[Start:End] with Text.
type Splice struct {
	Start, End int
	Text       string
}

// Apply returns a new source with the splices made, in one pass. Splices
// may come in any order. Where two overlap, the one that starts later keeps
// the shared bytes (the other's End is cut to its Start), as when the white
// space between two removed statements is claimed by both; several
// insertions at one offset come out in the reverse of their order in
// edits, each going before the ones given earlier.
func Apply(src []byte, edits []Splice) []byte {
	es := append([]Splice(nil), edits...)
	sort.SliceStable(es, func(i, j int) bool { return es[i].Start > es[j].Start })
	next := len(src)
	size := len(src)
	for i := range es {
		es[i].End = max(min(es[i].End, next), es[i].Start)
		next = es[i].Start
		size += len(es[i].Text) - (es[i].End - es[i].Start)
	}
	out := make([]byte, 0, size)
	pos := 0
	for i := len(es) - 1; i >= 0; i-- {
		s := es[i]
		out = append(out, src[pos:s.Start]...)
		out = append(out, s.Text...)
		pos = s.End
	}
	return append(out, src[pos:]...)
}
