// Package docs holds the guides. Its test compiles the Go snippets they show,
// so that a guide cannot drift from the code it describes.
//
// A fenced block whose info string is "go" is a complete file: it starts with
// a package clause and the test type-checks and vets it with the module's own
// packages (go vet, offline). A block whose info string is "go fragment" is a
// few statements or declarations shown out of their program; the test parses
// it with go/parser, as statements inside a function or as declarations.
package docs

import (
	"bufio"
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// snippet is one fenced Go block of a guide.
type snippet struct {
	file string // the guide, relative to the module root
	line int    // the line of the opening fence
	info string // the fence's info string: "go" or "go fragment"
	src  string
}

func (s snippet) String() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// snippets returns the fenced blocks whose info string starts with "go" in
// the named markdown file.
func snippets(t *testing.T, root, name string) []snippet {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	var (
		out    []snippet
		cur    *snippet
		open   bool   // inside a fence, Go or not
		indent string // the opening fence's indentation
		body   strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		rest, fence := strings.CutPrefix(trimmed, "```")
		switch {
		case !open && fence:
			open, indent = true, line[:len(line)-len(trimmed)]
			info := strings.TrimSpace(rest)
			if info == "go" || strings.HasPrefix(info, "go ") {
				cur = &snippet{file: name, line: n, info: info}
				body.Reset()
			}
		case open && fence && strings.TrimSpace(rest) == "":
			if cur != nil {
				cur.src = body.String()
				out = append(out, *cur)
			}
			open, cur = false, nil
		case cur != nil:
			body.WriteString(strings.TrimPrefix(line, indent))
			body.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if open {
		t.Errorf("%s: a fence is not closed", name)
	}
	return out
}

// parseFragment reports whether src parses as statements inside a function
// or as top-level declarations.
func parseFragment(src string) error {
	fset := token.NewFileSet()
	_, errStmts := parser.ParseFile(fset, "fragment.go", "package p\nfunc _() {\n"+src+"\n}\n", parser.SkipObjectResolution)
	if errStmts == nil {
		return nil
	}
	_, errDecls := parser.ParseFile(fset, "fragment.go", "package p\n"+src, parser.SkipObjectResolution)
	if errDecls == nil {
		return nil
	}
	return fmt.Errorf("neither statements (%v) nor declarations (%v)", errStmts, errDecls)
}

// TestDocSnippetsCompile checks every Go block of docs/*.md and README.md:
// a complete file is written to a directory of its own under the module (its
// name starts with '_', so ./... never sees it) and all of them are checked by
// one go vet, offline; a fragment is parsed.
func TestDocSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the guides' snippets are not compiled")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	guides, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"README.md"}
	for _, g := range guides {
		names = append(names, filepath.Join("docs", filepath.Base(g)))
	}

	var complete []snippet
	for _, name := range names {
		for _, s := range snippets(t, root, name) {
			switch {
			case s.info == "go fragment":
				if err := parseFragment(s.src); err != nil {
					t.Errorf("%v: fragment: %v", s, err)
				}
			case s.info != "go":
				t.Errorf("%v: info string %q: want \"go\" (a complete file) or \"go fragment\"", s, s.info)
			case name == "README.md" && strings.HasPrefix(s.src, "func main() {"):
				// The README's embedding example is example_test.go's
				// Example, which TestREADMEEmbedding holds it to.
				if err := parseFragment(s.src); err != nil {
					t.Errorf("%v: %v", s, err)
				}
			case !startsWithPackage(s.src):
				t.Errorf("%v: a go block that is not a complete file (no package clause first): complete it or mark it ```go fragment", s)
			default:
				complete = append(complete, s)
			}
		}
	}
	if len(complete) == 0 {
		t.Fatal("no complete Go file found in the guides")
	}

	dir, err := os.MkdirTemp(filepath.Join(root, "docs"), "_snippets")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	where := map[string]snippet{} // package directory → its snippet
	args := []string{"vet"}
	if raceEnabled {
		args = append(args, "-race") // reuse the packages go test just built
	}
	for i, s := range complete {
		name := fmt.Sprintf("s%02d_%s_%d", i, strings.TrimSuffix(filepath.Base(s.file), ".md"), s.line)
		name = strings.NewReplacer("-", "_", ".", "_").Replace(name)
		pkg := filepath.Join(dir, name)
		if err := os.Mkdir(pkg, 0o755); err != nil {
			t.Fatal(err)
		}
		// A line directive makes go vet's positions those of the guide.
		src := fmt.Sprintf("//line %s:%d\n%s", filepath.Join(root, s.file), s.line+1, s.src)
		if err := os.WriteFile(filepath.Join(pkg, "main.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(root, pkg)
		if err != nil {
			t.Fatal(err)
		}
		where[rel] = s
		args = append(args, "./"+filepath.ToSlash(rel))
	}

	start := time.Now()
	cmd := exec.Command(gobin, args...)
	cmd.Dir = root
	// Offline, and go.mod as it is: the snippets use what the module
	// already requires.
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=readonly"), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	t.Logf("go vet of %d snippets: %v", len(complete), time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Errorf("go vet of the guides' complete Go files: %v\n%s", err, out)
		for rel, s := range where {
			if bytes.Contains(out, []byte(rel)) {
				t.Errorf("%v is %s", s, rel)
			}
		}
	}
}

// startsWithPackage reports whether src, after comments and blank lines,
// starts with a package clause.
func startsWithPackage(src string) bool {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "snippet.go", src, parser.PackageClauseOnly)
	return err == nil && f.Name != nil
}
