package textedit

import (
	"strings"
	"testing"
)

// applyOneByOne is Apply as the editors did it before: from the last start
// to the first, one copy of the source per splice.
func applyOneByOne(src []byte, edits []Splice) []byte {
	es := append([]Splice(nil), edits...)
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Start > es[j-1].Start; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
	next := len(src)
	for _, s := range es {
		s.End = max(min(s.End, next), s.Start)
		next = s.Start
		var n []byte
		n = append(n, src[:s.Start]...)
		n = append(n, s.Text...)
		n = append(n, src[s.End:]...)
		src = n
	}
	return src
}

func TestApply(t *testing.T) {
	src := []byte("a {\n    one 1;  two 2;\n}\n")
	for _, tc := range []struct {
		name  string
		edits []Splice
		want  string
	}{
		{"none", nil, string(src)},
		{"replace", []Splice{{8, 14, "uno 1;"}}, "a {\n    uno 1;  two 2;\n}\n"},
		{"two, given out of order", []Splice{{16, 22, "deux 2;"}, {8, 14, "uno 1;"}}, "a {\n    uno 1;  deux 2;\n}\n"},
		{"overlapping removals", []Splice{{8, 17, ""}, {14, 23, ""}}, "a {\n    }\n"},
		{"insertions at one offset", []Splice{{3, 3, "X"}, {3, 3, "Y"}}, "a {YX\n    one 1;  two 2;\n}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Apply(src, tc.edits)
			if string(got) != tc.want {
				t.Errorf("Apply = %q, want %q", got, tc.want)
			}
			if old := applyOneByOne(src, tc.edits); string(old) != string(got) {
				t.Errorf("Apply = %q, splice by splice = %q", got, old)
			}
		})
	}
}

func FuzzApply(f *testing.F) {
	f.Add([]byte("a {\n  b 1;\n}\n"), 3, 5, "x", 4, 9, "")
	f.Fuzz(func(t *testing.T, src []byte, s1, e1 int, t1 string, s2, e2 int, t2 string) {
		n := len(src)
		clamp := func(a, b int) (int, int) {
			if n == 0 {
				return 0, 0
			}
			a, b = (a%(n+1)+n+1)%(n+1), (b%(n+1)+n+1)%(n+1)
			return min(a, b), max(a, b)
		}
		s1, e1 = clamp(s1, e1)
		s2, e2 = clamp(s2, e2)
		edits := []Splice{{s1, e1, t1}, {s2, e2, t2}}
		if got, want := Apply(src, edits), applyOneByOne(src, edits); string(got) != string(want) {
			t.Errorf("Apply = %q, splice by splice = %q", got, want)
		}
	})
}

func TestLines(t *testing.T) {
	src := []byte("x\r\n\t  y z\nlast")
	if got := LineStart(src, 7); got != 3 {
		t.Errorf("LineStart = %d", got)
	}
	if got := LineEnd(src, 0); got != 1 {
		t.Errorf("LineEnd of a CRLF line = %d, want 1", got)
	}
	if got := LineEnd(src, 11); got != len(src) {
		t.Errorf("LineEnd of the last line = %d", got)
	}
	if ws, ok := IndentAt(src, 6); ws != "\t  " || !ok {
		t.Errorf("IndentAt = %q %v", ws, ok)
	}
	if ws, ok := IndentAt(src, 8); ws != "\t  " || ok {
		t.Errorf("IndentAt after text = %q %v", ws, ok)
	}
	if ws, ok := OwnLine(src, 6); ws != "\t  " || !ok {
		t.Errorf("OwnLine = %q %v", ws, ok)
	}
	if _, ok := OwnLine(src, 8); ok {
		t.Error("OwnLine after text")
	}
	if Newline(src) != "\r\n" || Newline([]byte("a\nb")) != "\n" || !strings.HasPrefix(Newline(nil), "\n") {
		t.Error("Newline")
	}
}
