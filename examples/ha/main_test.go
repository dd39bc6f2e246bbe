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

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/cli/clitest"
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
	clitest.Usage(t, "ha", run, []clitest.Case{
		{Args: []string{"-h"}, Code: 0, Stdout: "", Stderr: "Exit status:"},
		{Args: []string{"-version"}, Code: 0, Stdout: "ha ", Stderr: ""},
		{Args: []string{"-nope"}, Code: 2, Stdout: "", Stderr: "flag provided but not defined: -nope"},
		{Args: []string{"extra"}, Code: 2, Stdout: "", Stderr: `ha: unexpected argument "extra"`},
		{Args: []string{"-sticky", "insert", "-sticky-key-file", short}, Code: 2, Stdout: "", Stderr: "want at least 16"},
		{Args: []string{"-sticky", "insert", "-sticky-key-file", filepath.Join(t.TempDir(), "absent")}, Code: 1, Stdout: "", Stderr: "no such file"},
		{Args: []string{"-sticky-key-file", short}, Code: 2, Stdout: "", Stderr: "-sticky-key-file signs the cookie of -sticky insert"},
		{Args: []string{"-sticky", "sometimes"}, Code: 2, Stdout: "", Stderr: `-sticky "sometimes": want learn or insert`},
		{Args: []string{"-check-interval", "0s"}, Code: 2, Stdout: "", Stderr: "-check-interval must be positive"},
		{Args: []string{"-log-level", "loud"}, Code: 2, Stdout: "", Stderr: `-log-level "loud"`},
		{Args: []string{"-sticky-key", "00112233445566778899aabbccddeeff"}, Code: 2, Stdout: "", Stderr: "flag provided but not defined: -sticky-key"},
	})
}

// TestInstanceLostUnderLoad stops each instance in turn under the load of
// many users and checks that no request fails and no session moves, with
// the sessions learned and shared (the default) and with the instances'
// own cookie.
func TestInstanceLostUnderLoad(t *testing.T) {
	for _, mode := range []balancer.StickyMode{balancer.StickyLearn, balancer.StickyInsert} {
		t.Run(mode.String(), func(t *testing.T) { instanceLostUnderLoad(t, mode) })
	}
}

func instanceLostUnderLoad(t *testing.T, mode balancer.StickyMode) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	key := []byte("0123456789abcdef0123456789abcdef")
	d, err := startDeployment(ctx, options{freePorts: true, sticky: mode, stickyKey: key, checkInterval: 50 * time.Millisecond,
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
