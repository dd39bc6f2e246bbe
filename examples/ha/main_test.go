package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/examples/internal/cli"
	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	"github.com/carbonlb/carbonlb/examples/internal/standin"
)

func TestRunOnce(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var out, errs bytes.Buffer
	if err := run(ctx, []string{"-once", "-free-ports"}, &out, &errs); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errs)
	}
	got := out.String()
	for _, want := range []string{
		"resolves to 127.0.0.1 (elb01) and 127.0.0.2 (elb02)",
		"lb.appserver.localhost resolves to the balancer members, 127.0.0.1 (elb01) and 127.0.0.2 (elb02)",
		"elb01 left the cluster: lb.appserver.localhost resolves to 127.0.0.2 (elb02)",
		"each stayed on its app server (appserver-1: ",
		"elb01 stopped under load:",
		"0 failed",
		"Every step held.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "FAIL") || errs.Len() > 0 {
		t.Errorf("stdout:\n%s\nstderr:\n%s", got, &errs)
	}
}

// TestUsageExitCodes runs ha's command line to its exit status: usage
// errors are said once and exit 2.
func TestUsageExitCodes(t *testing.T) {
	short := filepath.Join(t.TempDir(), "short.key")
	if err := os.WriteFile(short, []byte("abcd"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // a substring of stdout
		stderr string // said exactly once on stderr
	}{
		{[]string{"-h"}, 0, "", "Exit status:"},
		{[]string{"-version"}, 0, "ha ", ""},
		{[]string{"-nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"extra"}, 2, "", `ha: unexpected argument "extra"`},
		{[]string{"-sticky-key-file", short}, 2, "", "want at least 16"},
		{[]string{"-sticky-key-file", filepath.Join(t.TempDir(), "absent")}, 1, "", "no such file"},
		{[]string{"-check-interval", "0s"}, 2, "", "-check-interval must be positive"},
		{[]string{"-log-level", "loud"}, 2, "", `-log-level "loud"`},
		{[]string{"-sticky-key", "00112233445566778899aabbccddeeff"}, 2, "", "flag provided but not defined: -sticky-key"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := cli.Exit("ha", &stderr, run(t.Context(), tc.args, &stdout, &stderr))
			if code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tc.code, &stderr)
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", &stdout, tc.stdout)
			}
			if n := strings.Count(stderr.String(), tc.stderr); tc.stderr != "" && n != 1 {
				t.Errorf("stderr says %q %d times, want once:\n%s", tc.stderr, n, &stderr)
			}
		})
	}
}

// TestInstanceLostUnderLoad stops each instance in turn under the load of
// many users and checks that no request fails and no session moves.
func TestInstanceLostUnderLoad(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	key := []byte("0123456789abcdef0123456789abcdef")
	d, err := startDeployment(ctx, options{freePorts: true, stickyKey: key, checkInterval: 50 * time.Millisecond,
		logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	c, err := newClient(d.dnsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	url := "http://" + net.JoinHostPort(siteName, strconv.Itoa(d.port))
	users := make([]*standin.Session, 12)
	home := make([]string, len(users))
	for i := range users {
		users[i] = &standin.Session{Client: c.Client, URL: url}
		r, err := users[i].Get(ctx, "/")
		if err != nil {
			t.Fatal(err)
		}
		home[i] = r.Node
	}
	for _, in := range instances() {
		res := underLoad(ctx, users, func() {
			if err := d.stopInstance(ctx, in.name); err != nil {
				t.Errorf("stop %s: %v", in.name, err)
			}
			if err := d.waitHealthy(ctx, 1); err != nil {
				t.Errorf("DNS still answers with %s: %v", in.name, err)
			}
		})
		total := 0
		for i, r := range res {
			total += r.requests
			for _, err := range r.errs {
				t.Errorf("%s stopped: user %d: failed GET: %v", in.name, i, err)
			}
			if len(r.nodes) != 1 || r.nodes[0] != home[i] {
				t.Errorf("%s stopped: user %d of %s answered by %v", in.name, i, home[i], r.nodes)
			}
			if r.after[in.name] > 0 {
				t.Errorf("%s stopped: user %d still reached it %d times after it left DNS", in.name, i, r.after[in.name])
			}
		}
		t.Logf("%s stopped: %d GETs", in.name, total)
		if err := d.restartInstance(ctx, in.name); err != nil {
			t.Fatal(err)
		}
		if err := d.waitHealthy(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunCanceled(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errs bytes.Buffer
	if err := run(ctx, []string{"-once", "-free-ports"}, &out, &errs); err == nil {
		t.Errorf("run with a canceled context = nil, want an error\n%s", &out)
	}
}
