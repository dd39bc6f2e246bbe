package cli

import (
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseExits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		exit     bool
		code     int
		stdout   string // a substring of stdout
		stderr   string // a substring of stderr
		stderrN  int    // how many times stderr holds stderr
		logLevel string
	}{
		{"no flags", nil, false, 0, "", "", 0, ""},
		{"help", []string{"-h"}, true, ExitOK, "", "Usage: demo [flags]", 1, ""},
		{"version", []string{"-version"}, true, ExitOK, "demo ", "", 0, ""},
		{"unknown flag", []string{"-bogus"}, true, ExitUsage, "", "flag provided but not defined: -bogus", 1, ""},
		{"bad value", []string{"-n", "x"}, true, ExitUsage, "", `invalid value "x" for flag -n`, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			fs := NewFlagSet("demo", "Usage: demo [flags]\n\nExit status: 0, 1, 2.\n", &stderr)
			fs.Int("n", 1, "a number")
			exit, code := fs.Parse(tc.args, &stdout)
			if exit != tc.exit || code != tc.code {
				t.Errorf("Parse = %v, %d; want %v, %d", exit, code, tc.exit, tc.code)
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.stdout)
			}
			if n := strings.Count(stderr.String(), tc.stderr); tc.stderr != "" && n != tc.stderrN {
				t.Errorf("stderr holds %q %d times, want %d:\n%s", tc.stderr, n, tc.stderrN, stderr.String())
			}
		})
	}
}

func TestExit(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		out  string
	}{
		{nil, 0, ""},
		{Usagef("-backends: at least one backend"), 2, "demo: -backends: at least one backend\nRun 'demo -h' for usage.\n"},
		{errors.New("listen tcp: address in use"), 1, "demo: listen tcp: address in use\n"},
	} {
		var stderr bytes.Buffer
		if code := Exit("demo", &stderr, tc.err); code != tc.code || stderr.String() != tc.out {
			t.Errorf("Exit(%v) = %d, %q; want %d, %q", tc.err, code, stderr.String(), tc.code, tc.out)
		}
	}
}

func TestLogFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
		json bool
	}{
		{nil, true, false},
		{[]string{"-log-format", "json"}, true, true},
		{[]string{"-log-level", "off"}, true, false},
		{[]string{"-log-level", "loud"}, false, false},
		{[]string{"-log-format", "xml"}, false, false},
	} {
		var buf bytes.Buffer
		fs := NewFlagSet("demo", "Usage: demo", &buf)
		l := LogFlags(fs, "info")
		if exit, _ := fs.Parse(tc.args, &buf); exit {
			t.Fatalf("%q: parse: %s", tc.args, buf.String())
		}
		logger, err := l.Logger(&buf)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.args, err, tc.ok)
			continue
		}
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Errorf("%q: %v is not a UsageError", tc.args, err)
			}
			continue
		}
		logger.Info("hello")
		if got := strings.HasPrefix(buf.String(), "{"); got != tc.json {
			t.Errorf("%q: log %q, want JSON %v", tc.args, buf.String(), tc.json)
		}
	}
}

func TestNotify(t *testing.T) {
	if err := Notify("READY=1"); err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "notify")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	for _, state := range []string{"READY=1", Reloading(), "STOPPING=1"} {
		if err := Notify(state); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != state {
			t.Errorf("received %q, want %q", buf[:n], state)
		}
	}
	if s := Reloading(); !strings.HasPrefix(s, "RELOADING=1\nMONOTONIC_USEC=") || strings.HasSuffix(s, "=0") {
		t.Errorf("Reloading() = %q", s)
	}
}
