package carbonconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInvalidTextReported reads documents with bytes outside their
// encoding, undefined entities and characters XML forbids: each is a
// *ParseError at the offending byte, wrapping the sentinel that names the
// case, from every XML reader and LoadNode alike.
func TestInvalidTextReported(t *testing.T) {
	const head = "<axisconfig>\n  <clustering class=\"x\" enable=\"true\">\n    <parameter name=\"domain\">wso2."
	const tail = "domain</parameter>\n  </clustering>\n</axisconfig>\n"
	col := len("    <parameter name=\"domain\">wso2.") + 1 // where the bad text starts on line 3
	for _, tc := range []struct {
		name      string
		in        string
		line, col int
		want      error // nil: a syntax error
	}{
		{"invalid UTF-8", head + "\xff\xfe(" + tail, 3, col, ErrEncoding},
		{"truncated UTF-8", head + "\xc3(" + tail, 3, col, ErrEncoding},
		{"UTF-8 surrogate", head + "\xed\xa0\x80" + tail, 3, col, ErrEncoding},
		{"US-ASCII declared, byte 0xE9", "<?xml version=\"1.0\" encoding=\"US-ASCII\"?>\n" + head + "\xe9" + tail, 4, col, ErrEncoding},
		{"windows-1252 declared, undefined byte 0x81", "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n" + head + "\x81" + tail, 4, col, ErrEncoding},
		{"undefined entity", head + "&lol9;" + tail, 3, col, ErrUndefinedEntity},
		{"undefined entity in an attribute", "<axisconfig>\n  <clustering class=\"&lol9;\"/>\n</axisconfig>\n", 2, 22, ErrUndefinedEntity},
		{"entity the DOCTYPE does not declare", "<!DOCTYPE axisconfig [<!ENTITY lol \"x\">]>\n" + head + "&lol9;" + tail, 4, col, ErrUndefinedEntity},
		{"NUL as a reference", head + "&#0;" + tail, 3, col, ErrForbiddenChar},
		{"control character as a hex reference", head + "&#x1B;" + tail, 3, col, ErrForbiddenChar},
		{"U+FFFF as a reference", head + "&#xFFFF;" + tail, 3, col, ErrForbiddenChar},
		{"raw NUL", head + "\x00" + tail, 3, col, ErrForbiddenChar},
		{"raw control character in a comment", "<axisconfig>\n<!-- \x07 -->\n</axisconfig>\n", 2, 6, ErrForbiddenChar},
		{"raw control character, ISO-8859-1", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n" + head + "\x01" + tail, 4, col, ErrForbiddenChar},
		{"raw U+FFFE", head + "\xef\xbf\xbe" + tail, 3, col, ErrForbiddenChar},
		{"bare ampersand", head + "a & b" + tail, 3, col + 2, nil},
		{"reference not closed", head + "&amp" + tail, 3, col, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadAxis2(strings.NewReader(tc.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a *ParseError", err)
			}
			if pe.Line != tc.line || pe.Col != tc.col {
				t.Errorf("error at %d:%d, want %d:%d: %v", pe.Line, pe.Col, tc.line, tc.col, err)
			}
			for _, s := range []error{ErrEncoding, ErrUndefinedEntity, ErrForbiddenChar} {
				if got := errors.Is(err, s); got != (s == tc.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
			// The same from a file, with its name.
			home := t.TempDir()
			p := filepath.Join(home, filepath.FromSlash(Axis2Path))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(tc.in), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = LoadNode(home)
			if !errors.As(err, &pe) || pe.File != p || pe.Line != tc.line || pe.Col != tc.col {
				t.Errorf("LoadNode: %v, want %s:%d:%d", err, p, tc.line, tc.col)
			}
		})
	}
}

// TestValidTextAccepted reads what XML allows next to those cases, and
// writes it back unchanged.
func TestValidTextAccepted(t *testing.T) {
	for _, tc := range []struct {
		name, in, domain string
	}{
		{"predefined and character references", `<axisconfig><clustering><parameter name="domain">a&amp;b&lt;&#65;&#x42;&#x1F600;</parameter></clustering></axisconfig>`, "a&b<AB\U0001F600"},
		{"entity the DOCTYPE declares", `<!DOCTYPE axisconfig [<!ENTITY d "x">]><axisconfig><clustering><parameter name="domain">&d;</parameter></clustering></axisconfig>`, "&d;"},
		{"external DTD: any entity", `<!DOCTYPE axisconfig SYSTEM "axis2.dtd"><axisconfig><clustering><parameter name="domain">&d;</parameter></clustering></axisconfig>`, "&d;"},
		{"ISO-8859-1 bytes", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><axisconfig><clustering><parameter name=\"domain\">caf\xe9\xbf</parameter></clustering></axisconfig>", "caf\u00e9\u00bf"},
		{"windows-1252 bytes", "<?xml version=\"1.0\" encoding=\"windows-1252\"?><axisconfig><clustering><parameter name=\"domain\">\x80\x96</parameter></clustering></axisconfig>", "\u20ac\u2013"},
		{"UTF-8, tab, CR and LF", "<axisconfig><clustering><parameter name=\"domain\">\tcaf\u00e9\r\n</parameter></clustering></axisconfig>", "caf\u00e9"},
		{"ampersand in a comment, CDATA and a PI", "<axisconfig><!-- a & b --><?pi & ?><clustering><parameter name=\"domain\"><![CDATA[a&b]]></parameter></clustering></axisconfig>", "a&b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ReadAxis2(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Clustering.Domain.Value; got != tc.domain {
				t.Errorf("domain %q, want %q", got, tc.domain)
			}
			if string(a.Bytes()) != tc.in {
				t.Error("round trip changed the input")
			}
		})
	}
}

// TestEditKeepsDeclaredEncoding sets a value outside ASCII in documents of
// each declared encoding: it is written so the document stays valid.
func TestEditKeepsDeclaredEncoding(t *testing.T) {
	for _, enc := range []string{"UTF-8", "US-ASCII", "ISO-8859-1", "windows-1252"} {
		t.Run(enc, func(t *testing.T) {
			a, err := ReadAxis2(strings.NewReader(`<?xml version="1.0" encoding="` + enc + `"?><axisconfig><clustering><parameter name="domain">d</parameter></clustering></axisconfig>`))
			if err != nil {
				t.Fatal(err)
			}
			if err := a.SetClusteringParameter("domain", "caf\u00e9\u20ac"); err != nil {
				t.Fatal(err)
			}
			if got := a.Clustering.Domain.Value; got != "caf\u00e9\u20ac" {
				t.Errorf("domain %q after the edit", got)
			}
			if _, err := ReadAxis2(strings.NewReader(string(a.Bytes()))); err != nil {
				t.Errorf("edited document does not read: %v", err)
			}
		})
	}
}
