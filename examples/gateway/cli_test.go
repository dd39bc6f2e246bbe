package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestUsageExitCodes runs the gateway's command line to its exit status:
// -h and -version exit 0, usage errors are said once and exit 2.
func TestUsageExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // a substring of stdout
		stderr string // said exactly once on stderr
	}{
		{[]string{"-h"}, 0, "", "Exit status:"},
		{[]string{"-version"}, 0, "gateway ", ""},
		{[]string{"-nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"-backends", "http://a", "extra"}, 2, "", `gateway: unexpected argument "extra"`},
		{nil, 2, "", "-backends: at least one backend URL is required"},
		{[]string{"-backends", "http://a", "-sticky", "sometimes"}, 2, "", "sometimes"},
		{[]string{"-backends", "http://a", "-log-level", "loud"}, 2, "", `-log-level "loud"`},
		{[]string{"-backends", "http://a", "-log-format", "xml"}, 2, "", `-log-format "xml"`},
		{[]string{"-lbconf", "lb.conf", "-backends", "http://a"}, 2, "", "exclude each other"},
		{[]string{"-backends", "http://a", "-admin", "0.0.0.0:9090"}, 2, "", "give -admin-token-file"},
		{[]string{"-backends", "http://a", "-status", ":9090"}, 2, "", "flag provided but not defined: -status"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := exitCode(tc.args, &stdout, &stderr)
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

// TestCheckFlag validates configurations with -check, as nginx -t: valid
// ones exit 0 without listening (the -listen port is taken), invalid ones
// exit 1 naming the file and line.
func TestCheckFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.conf")
	writeFile(t, good, fmt.Sprintf(testLBConf, testMgt))
	halfSaved := filepath.Join(dir, "half.conf")
	full := fmt.Sprintf(testLBConf, testMgt)
	writeFile(t, halfSaved, full[:strings.Index(full, "mgt {")+5])
	shortKey := filepath.Join(dir, "short.key")
	if err := os.WriteFile(shortKey, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := taken.Addr().String()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"static backends", []string{"-backends", "http://10.0.0.1:9763,http://10.0.0.2:9763"}, 0, "the configuration is valid", ""},
		{"a backend URL that is not one", []string{"-backends", "ftp://10.0.0.1"}, 1, "", "ftp"},
		{"a certificate file that is absent", []string{"-backends", "http://a", "-tls-cert", filepath.Join(dir, "no.crt"), "-tls-key", filepath.Join(dir, "no.key")}, 1, "", "no.crt"},
		{"loadbalancer.conf", []string{"-lbconf", good, "-static", "wso2.esb.domain/worker=http://10.0.0.1:9763"}, 0, "the configuration is valid", ""},
		{"a half-saved loadbalancer.conf", []string{"-lbconf", halfSaved}, 1, "", "half.conf:"},
		{"an absent loadbalancer.conf", []string{"-lbconf", filepath.Join(dir, "absent.conf")}, 1, "", "absent.conf"},
		{"a sticky key too short", []string{"-lbconf", good, "-sticky", "insert", "-sticky-key-file", shortKey}, 1, "", "want at least 16"},
		{"a bad static pool", []string{"-lbconf", good, "-static", "wso2.esb.domain/worker=gopher://x"}, 1, "", "gopher"},
		{"a backend truststore", []string{"-backends", "https://10.0.0.1:9443", "-backend-truststore", keystores + "client-truststore.jks", "-backend-truststore-password-file", keystores + "password", "-backend-server-name", "esb.example.com"}, 0, "the configuration is valid", ""},
		{"a backend truststore, wrong password", []string{"-lbconf", good, "-backend-truststore", keystores + "client-truststore.jks", "-backend-truststore-password-file", shortKey}, 1, "", "client-truststore.jks"},
		{"a backend CA file that is absent", []string{"-lbconf", good, "-backend-ca", filepath.Join(dir, "no-ca.pem")}, 1, "", "no-ca.pem"},
		{"a backend CA file without a certificate", []string{"-backends", "https://a", "-backend-ca", good}, 1, "", "no PEM certificate"},
		{"a backend truststore without its password file", []string{"-backends", "https://a", "-backend-truststore", keystores + "client-truststore.jks"}, 2, "", "-backend-truststore-password-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := exitCode(append([]string{"-check", "-listen", listen, "-log-level", "error"}, tc.args...), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tc.code, &stderr)
			}
			if !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stdout %q, stderr %q; want %q and %q", &stdout, &stderr, tc.stdout, tc.stderr)
			}
		})
	}
}

// TestSystemdNotify runs the file mode under a fake systemd: it says
// READY=1 once serving, RELOADING=1 then READY=1 around a SIGHUP, and
// STOPPING=1 when it drains.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	conf := filepath.Join(t.TempDir(), "loadbalancer.conf")
	writeFile(t, conf, fmt.Sprintf(testLBConf, ""))
	o, err := parseFlags([]string{"-lbconf", conf, "-listen", "127.0.0.1:0", "-drain", "0s", "-log-level", "off"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serveFiles(ctx, o, slog.New(slog.DiscardHandler), hup) }()
	next := func() string {
		t.Helper()
		buf := make([]byte, 512)
		pc.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		state, _, _ := strings.Cut(string(buf[:n]), "\n")
		return state
	}
	var got []string
	got = append(got, next())
	hup <- syscall.SIGHUP
	got = append(got, next(), next())
	cancel()
	got = append(got, next())
	if err := <-done; err != nil {
		t.Errorf("serveFiles: %v", err)
	}
	if diff := cmp.Diff([]string{"READY=1", "RELOADING=1", "READY=1", "STOPPING=1"}, got); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
}
