// Package clitest checks a program's command line against the convention
// of package cli: what it prints and the exit status cli.Exit gives it.
package clitest

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/carbonlb/carbonlb/examples/internal/cli"
)

// Case is one command line and what it must give.
type Case struct {
	Args   []string
	Code   int    // the exit status
	Stdout string // a substring of stdout
	Stderr string // said exactly once on stderr; "" checks nothing
}

// Run is a program's run function: it parses args and runs, writing to
// stdout and stderr.
type Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Usage runs each case through run and cli.Exit(name, …) as the program's
// main does, in a subtest named by its arguments.
func Usage(t *testing.T, name string, run Run, cases []Case) {
	t.Helper()
	for _, tc := range cases {
		t.Run(strings.Join(tc.Args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := cli.Exit(name, &stderr, run(t.Context(), tc.Args, &stdout, &stderr))
			if code != tc.Code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tc.Code, &stderr)
			}
			if !strings.Contains(stdout.String(), tc.Stdout) {
				t.Errorf("stdout %q lacks %q", &stdout, tc.Stdout)
			}
			if n := strings.Count(stderr.String(), tc.Stderr); tc.Stderr != "" && n != 1 {
				t.Errorf("stderr says %q %d times, want once:\n%s", tc.Stderr, n, &stderr)
			}
		})
	}
}
