package carbonlb_test

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEEmbedding checks that the README's embedding example is the
// package's Example, which the compiler checks: the same statements, as
// the body of main.
func TestREADMEEmbedding(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body := func(s, open string) string {
		_, after, ok := strings.Cut(s, open)
		if !ok {
			t.Fatalf("%q not found", open)
		}
		b, _, ok := strings.Cut(after, "\n}\n")
		if !ok {
			t.Fatalf("the end of %q not found", open)
		}
		return b
	}
	_, section, _ := strings.Cut(string(readme), "## Embedding")
	want := body(string(src), "\nfunc Example() {")
	if got := body(section, "```go\nfunc main() {"); got != want {
		t.Errorf("README.md's embedding example is not example_test.go's Example:\nREADME:%s\nExample:%s", got, want)
	}
}
