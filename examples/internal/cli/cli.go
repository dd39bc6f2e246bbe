// Package cli gives the example programs one command-line convention: a
// usage text with the synopsis, modes, signals and exit status; -version
// from the build information; usage errors printed once and exit status 2;
// -log-level and -log-format; and sd_notify for systemd.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
)

// Exit statuses shared by the programs. A program may define more (carbonctl
// adds 3 for a failure to read or write files, keeping 1 for findings).
const (
	ExitOK      = 0 // done, or -h, or -version
	ExitFailure = 1 // the program failed
	ExitUsage   = 2 // the command line is wrong
)

// UsageError is an error in the command line: Exit reports it with a hint
// to -h and exit status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with the formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// FlagSet is a flag.FlagSet with the programs' conventions.
type FlagSet struct {
	*flag.FlagSet
	version *bool
}

// NewFlagSet returns a FlagSet for the program name that writes to
// stderr, defines -version, and whose usage prints text (the synopsis,
// modes, signals and exit status, as a manual page's) and then the flags.
func NewFlagSet(name, text string, stderr io.Writer) *FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &FlagSet{FlagSet: fs, version: fs.Bool("version", false, "print the version and exit")}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, strings.TrimLeft(text, "\n"))
		if !strings.HasSuffix(text, "\n") {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
	return f
}

// Parse parses args. When the program must stop at once, it returns true
// and the exit status: after -h (the usage on stderr, 0), -version (the
// version on stdout, 0), or an unknown flag or a bad value, which the flag
// package has reported once, with the usage, on stderr (2).
func (f *FlagSet) Parse(args []string, stdout io.Writer) (exit bool, code int) {
	err := f.FlagSet.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return true, ExitOK
	case err != nil:
		return true, ExitUsage
	case *f.version:
		fmt.Fprintln(stdout, f.Name(), Version())
		return true, ExitOK
	}
	return false, ExitOK
}

// Exited is returned by ParseArgs when the program must stop at once with
// Code; what was to be said has been said, so Exit prints nothing more.
type Exited struct{ Code int }

func (e *Exited) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ParseArgs is Parse for a program whose run returns an error: it returns
// nil to go on, an *Exited to stop with (after -h, -version or a bad flag),
// or a UsageError for an argument that is not a flag.
func (f *FlagSet) ParseArgs(args []string, stdout io.Writer) error {
	if exit, code := f.Parse(args, stdout); exit {
		return &Exited{Code: code}
	}
	if f.NArg() > 0 {
		return Usagef("unexpected argument %q", f.Arg(0))
	}
	return nil
}

// Exit reports err on stderr, prefixed by the program's name, once, and
// returns the exit status: 0 for nil, an Exited's Code (printing nothing),
// 2 for a UsageError (with a hint to -h), 1 otherwise.
func Exit(name string, stderr io.Writer, err error) int {
	if err == nil {
		return ExitOK
	}
	var ex *Exited
	if errors.As(err, &ex) {
		return ex.Code
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s -h' for usage.\n", name, err, name)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return ExitFailure
}

// Version describes the build: the main module's version ("(devel)" for a
// build from a work tree), its VCS revision and time when recorded, and
// the Go version.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	parts := []string{bi.Main.Version}
	if parts[0] == "" {
		parts[0] = "(devel)"
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, rev+dirty)
	}
	if at != "" {
		parts = append(parts, at)
	}
	return strings.Join(append(parts, bi.GoVersion), " ")
}

// Log is the logging settings of -log-level and -log-format.
type Log struct {
	level  string
	format string
}

// LogFlags defines -log-level (default level; "off" means no log) and
// -log-format (text or json) on fs.
func LogFlags(fs *FlagSet, level string) *Log {
	l := &Log{}
	fs.StringVar(&l.level, "log-level", level, "log from this level on stderr: debug, info, warn, error, or off")
	fs.StringVar(&l.format, "log-format", "text", "log record format: text (key=value) or json (one object a line)")
	return l
}

// Logger returns the logger the flags ask for, writing to w, or a
// UsageError naming the flag that is wrong.
func (l *Log) Logger(w io.Writer) (*slog.Logger, error) {
	if l.level == "off" || l.level == "" {
		if l.format != "text" && l.format != "json" {
			return nil, Usagef("-log-format %q: want text or json", l.format)
		}
		return slog.New(slog.DiscardHandler), nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, Usagef("-log-level %q: want debug, info, warn, error or off", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, Usagef("-log-format %q: want text or json", l.format)
}
