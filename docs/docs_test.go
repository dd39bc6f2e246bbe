// Package docs holds the guides. Its test compiles the Go snippets they show,
// so that a guide cannot drift from the code it describes.
//
// A fenced block whose info string is "go" is a complete file: it starts with
// a package clause and the test type-checks and vets it with the module's own
// packages (go vet, offline). A block whose info string is "go fragment" is a
// few statements or declarations shown out of their program; the test parses
// it with go/parser, as statements inside a function or as declarations, and
// checks that the names it takes from the module's packages (balancer.New,
// membership.Config{…}'s fields) exist.
package docs

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// parseFragment parses src as statements inside a function or, failing
// that, as top-level declarations.
func parseFragment(src string) (*ast.File, error) {
	fset := token.NewFileSet()
	f, errStmts := parser.ParseFile(fset, "fragment.go", "package p\nfunc _() {\n"+src+"\n}\n", parser.SkipObjectResolution)
	if errStmts == nil {
		return f, nil
	}
	f, errDecls := parser.ParseFile(fset, "fragment.go", "package p\n"+src, parser.SkipObjectResolution)
	if errDecls == nil {
		return f, nil
	}
	return nil, fmt.Errorf("neither statements (%v) nor declarations (%v)", errStmts, errDecls)
}

// exports holds, per package name of the module (balancer, membership, …),
// its exported top-level names and, for its struct types, their fields.
type exports map[string]map[string][]string // package → name → fields

// moduleExports reads the exported names of the module's packages that the
// guides' fragments use by their package name.
func moduleExports(t *testing.T, root string) exports {
	t.Helper()
	dirs := map[string]string{
		"carbonlb": ".", "balancer": "balancer", "membership": "membership",
		"membertest": "membership/membertest", "carbonconf": "carbonconf",
		"hosts": "hosts", "metrics": "metrics",
	}
	out := exports{}
	for name, dir := range dirs {
		names := map[string][]string{}
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if d.Recv == nil && d.Name.IsExported() {
						names[d.Name.Name] = nil
					}
				case *ast.GenDecl:
					for _, sp := range d.Specs {
						switch sp := sp.(type) {
						case *ast.TypeSpec:
							if !sp.Name.IsExported() {
								continue
							}
							var fields []string
							if st, ok := sp.Type.(*ast.StructType); ok {
								for _, fl := range st.Fields.List {
									for _, n := range fl.Names {
										fields = append(fields, n.Name)
									}
									if len(fl.Names) == 0 { // embedded
										fields = append(fields, "*")
									}
								}
							}
							names[sp.Name.Name] = fields
						case *ast.ValueSpec:
							for _, n := range sp.Names {
								if n.IsExported() {
									names[n.Name] = nil
								}
							}
						}
					}
				}
			}
		}
		out[name] = names
	}
	return out
}

// check reports the module's names that f uses and the package does not
// export, and the keys of composite literals of its struct types that are
// not fields. The fragment's own imports are not known, so an identifier
// is taken for a package of the module by its name.
func (e exports) check(f *ast.File) []string {
	var bad []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok {
				if names, ok := e[id.Name]; ok {
					if _, ok := names[n.Sel.Name]; !ok {
						bad = append(bad, id.Name+"."+n.Sel.Name+" is not exported by the package")
					}
				}
			}
		case *ast.CompositeLit:
			sel, ok := n.Type.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok || e[id.Name] == nil {
				return true
			}
			fields := e[id.Name][sel.Sel.Name]
			if len(fields) == 0 || slices.Contains(fields, "*") {
				return true
			}
			for _, el := range n.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); ok && !slices.Contains(fields, k.Name) {
					bad = append(bad, fmt.Sprintf("%s.%s has no field %s", id.Name, sel.Sel.Name, k.Name))
				}
			}
		}
		return true
	})
	return bad
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

	exp := moduleExports(t, root)
	var complete []snippet
	for _, name := range names {
		for _, s := range snippets(t, root, name) {
			switch {
			case s.info == "go fragment":
				f, err := parseFragment(s.src)
				if err != nil {
					t.Errorf("%v: fragment: %v", s, err)
					continue
				}
				for _, msg := range exp.check(f) {
					t.Errorf("%v: fragment: %s", s, msg)
				}
			case s.info != "go":
				t.Errorf("%v: info string %q: want \"go\" (a complete file) or \"go fragment\"", s, s.info)
			case name == "README.md" && strings.HasPrefix(s.src, "func main() {"):
				// The README's embedding example is example_test.go's
				// Example, which TestREADMEEmbedding holds it to.
				if _, err := parseFragment(s.src); err != nil {
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
