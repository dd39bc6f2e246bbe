package carbonconf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testFiles lists the real files in testdata/<dir>.
func testFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no test files in testdata/%s: %v", dir, err)
	}
	return m
}

func TestRoundTripAllTestdata(t *testing.T) {
	type loader func(path string) (interface {
		Bytes() []byte
	}, error)
	kinds := map[string]loader{
		"axis2":        func(p string) (interface{ Bytes() []byte }, error) { return LoadAxis2(p) },
		"carbon":       func(p string) (interface{ Bytes() []byte }, error) { return LoadCarbon(p) },
		"catalina":     func(p string) (interface{ Bytes() []byte }, error) { return LoadCatalina(p) },
		"loadbalancer": func(p string) (interface{ Bytes() []byte }, error) { return LoadLBConf(p) },
	}
	for dir, load := range kinds {
		for _, path := range testFiles(t, dir) {
			t.Run(filepath.Base(path), func(t *testing.T) {
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				doc, err := load(path)
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				if got := doc.Bytes(); !bytes.Equal(got, want) {
					t.Errorf("round trip changed %s (%d bytes in, %d out)", path, len(want), len(got))
				}
				var buf bytes.Buffer
				switch d := doc.(type) {
				case *Axis2:
					d.WriteTo(&buf)
				case *Carbon:
					d.WriteTo(&buf)
				case *Catalina:
					d.WriteTo(&buf)
				case *LBConf:
					d.WriteTo(&buf)
				}
				if !bytes.Equal(buf.Bytes(), want) {
					t.Errorf("WriteTo changed %s", path)
				}
			})
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		read      func(string) error
		in        string
		line, col int
		want      string
	}{
		{"unclosed element", axis2Reader, "<axisconfig>\n  <clustering>\n</axisconfig>", 3, 1, "expected </clustering>"},
		{"end of file", axis2Reader, "<axisconfig>\n  <a>", 2, 6, "expected </a>"},
		{"bad attribute", axis2Reader, "<axisconfig x=1/>", 1, 15, "expected a quoted value for attribute x"},
		{"no equals", axis2Reader, "<axisconfig x/>", 1, 14, `expected "=" after attribute x`},
		{"wrong root", axis2Reader, "<Server/>", 1, 1, "expected root element <axisconfig>"},
		{"text outside root", carbonReader, "hello<Server/>", 1, 1, "outside the root element"},
		{"unterminated comment", carbonReader, "<Server><!-- x", 1, 9, `expected "-->"`},
		{"encoding", catalinaReader, "<?xml version=\"1.0\" encoding=\"EBCDIC\"?><Server/>", 1, 21, "expected encoding"},
		{"two roots", catalinaReader, "<Server/>\n<Server/>", 2, 1, "expected one root element"},
		{"empty", catalinaReader, "", 1, 1, "expected a root element"},
		{"lb missing semicolon", lbReader, "a {\n  key value\n}", 3, 1, `expected ";" after "key value"`},
		{"lb stray brace", lbReader, "a { }\n}", 2, 1, "no open block"},
		{"lb eof statement", lbReader, "key value", 1, 10, `expected ";" or "{"`},
		{"lb brace without name", lbReader, "{ a b; }", 1, 1, "expected a block name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.read(tt.in)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want a *ParseError", err)
			}
			if pe.Line != tt.line || pe.Col != tt.col || !strings.Contains(pe.Error(), tt.want) {
				t.Errorf("error = %q at %d:%d, want %q at %d:%d", pe.Error(), pe.Line, pe.Col, tt.want, tt.line, tt.col)
			}
		})
	}
}

func axis2Reader(s string) error    { _, err := ReadAxis2(strings.NewReader(s)); return err }
func carbonReader(s string) error   { _, err := ReadCarbon(strings.NewReader(s)); return err }
func catalinaReader(s string) error { _, err := ReadCatalina(strings.NewReader(s)); return err }
func lbReader(s string) error       { _, err := ReadLBConf(strings.NewReader(s)); return err }
