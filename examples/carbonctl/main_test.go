package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testdata = "../../carbonconf/testdata"

// home builds a product home from the carbonconf test files.
func home(t *testing.T, axis2, carbon, catalina string) string {
	t.Helper()
	h := t.TempDir()
	for src, dst := range map[string]string{
		"axis2/" + axis2:       "repository/conf/axis2/axis2.xml",
		"carbon/" + carbon:     "repository/conf/carbon.xml",
		"catalina/" + catalina: "repository/conf/tomcat/catalina-server.xml",
	} {
		b, err := os.ReadFile(filepath.Join(testdata, src))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(h, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func esbHome(t *testing.T) string {
	return home(t, "docker-apim-p1-gateway-manager-axis2.xml", "carbon-kernel-4.4.x-carbon.xml", "carbon-kernel-4.4.x-catalina-server.xml")
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func snapshot(t *testing.T, h string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(h, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			m[p] = string(b)
		}
		return nil
	})
	return m
}

func TestSetupLintShowPorts(t *testing.T) {
	mgr, w1, w2 := esbHome(t), esbHome(t), esbHome(t)
	common := []string{"--domain", "wso2.esb.domain", "--hostname", "esb.wso2.com", "--offset", "0"}

	// Without --write: the diff is printed, nothing is written.
	before := snapshot(t, mgr)
	args := append([]string{"setup", "--role", "manager", "--member-host", "10.0.0.1", "--member-port", "4100",
		"--wka", "10.0.0.2:4200,10.0.0.3:4300", "--mgt-hostname", "mgt.esb.wso2.com"}, common...)
	code, out, errs := runCmd(t, append(args, mgr)...)
	if code != 1 || !strings.Contains(out, "+        <parameter name=\"localMemberPort\">4100</parameter>") {
		t.Fatalf("setup: code %d, stderr %s, diff:\n%s", code, errs, out)
	}
	if after := snapshot(t, mgr); !equalMaps(before, after) {
		t.Fatal("setup without --write changed files")
	}
	// With --write, then again: the second run has nothing to do.
	if code, _, errs := runCmd(t, append(append(args, "--write"), mgr)...); code != 0 {
		t.Fatalf("setup --write: %d %s", code, errs)
	}
	if code, out, _ := runCmd(t, append(args, mgr)...); code != 0 || out != "" {
		t.Fatalf("second setup: code %d, diff:\n%s", code, out)
	}
	for _, w := range []struct{ home, host, port, wka string }{
		{w1, "10.0.0.2", "4200", "10.0.0.1:4100,10.0.0.3:4300"},
		{w2, "10.0.0.3", "4300", "10.0.0.1:4100,10.0.0.2:4200"},
	} {
		args := append([]string{"setup", "--role", "worker", "--member-host", w.host, "--member-port", w.port, "--wka", w.wka, "--write"}, common...)
		if code, _, errs := runCmd(t, append(args, w.home)...); code != 0 {
			t.Fatalf("worker setup: %d %s", code, errs)
		}
	}

	lb := filepath.Join(t.TempDir(), "loadbalancer.conf")
	os.WriteFile(lb, []byte(`services {
    esb {
        hosts esb.wso2.com;
        domains { wso2.esb.domain { sub_domain worker; tenant_range *; } }
    }
    esbmgt {
        domains { wso2.esb.domain { hosts mgt.esb.wso2.com; sub_domain mgt; tenant_range *; } }
    }
}
`), 0o644)
	// The nodes share one test machine's files but claim different hosts,
	// so the configured cluster has only warnings (default passwords).
	code, out, errs = runCmd(t, "lint", mgr, w1, w2, "--lb", lb)
	if code != 0 || errs != "" {
		t.Fatalf("lint: code %d, stderr %s\n%s", code, errs, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(line, ": warning: default-keystore-password: ") && !strings.Contains(line, ": warning: plaintext-secret: ") {
			t.Errorf("unexpected finding: %s", line)
		}
	}
	// A balancer on other ports: proxyPort 80/443 is an error, exit 1.
	code, out, _ = runCmd(t, "lint", "--listen", "8280,8243", "--lb", lb, mgr, w1, w2)
	if code != 1 || !strings.Contains(out, ": error: proxy-port-not-listened: proxyPort 80 is not a port the balancer listens on (8280, 8243)") {
		t.Errorf("lint --listen: code %d\n%s", code, out)
	}

	// show: each kind of file as JSON.
	for _, f := range []string{
		filepath.Join(mgr, "repository/conf/axis2/axis2.xml"),
		filepath.Join(mgr, "repository/conf/carbon.xml"),
		filepath.Join(mgr, "repository/conf/tomcat/catalina-server.xml"),
		lb,
		filepath.Join(testdata, "loadbalancer/stratos-manager-loadbalancer.conf"),
	} {
		code, out, errs := runCmd(t, "show", f)
		var v map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["File"] != f {
			t.Errorf("show %s: code %d, stderr %s, out %.200s", f, code, errs, out)
		}
	}

	code, out, _ = runCmd(t, "ports", "--offset", "1")
	if code != 0 || !regexp.MustCompile(`(?m)^9764 +servlet HTTP +true$`).MatchString(out) || !regexp.MustCompile(`(?m)^4000 +clustering \(localMemberPort\) +false$`).MatchString(out) {
		t.Errorf("ports: %d\n%s", code, out)
	}
}

// show prints loadbalancer.conf warnings with their position and reason;
// blocks left open make one warning, at the first of them.
func TestShowWarnings(t *testing.T) {
	lb := filepath.Join(t.TempDir(), "loadbalancer.conf")
	if err := os.WriteFile(lb, []byte("services {\n    esb {\n        domains { wso2.esb.domain { tenant_range *; } }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "show", lb)
	if code != 0 {
		t.Fatalf("show: code %d, stderr %s", code, errs)
	}
	var v struct {
		Warnings []struct {
			File      string
			Line, Col int
			Err       string
		}
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	if len(v.Warnings) != 1 {
		t.Fatalf("warnings = %+v, want 1 for the two open blocks", v.Warnings)
	}
	w := v.Warnings[0]
	if w.File != lb || w.Line != 1 || w.Col != 1 || w.Err != `2 blocks are not closed, from "services" here to "esb" at line 2 col 5: expected "}" before end of file` {
		t.Errorf("first warning = %+v", w)
	}
}

func TestErrors(t *testing.T) {
	h := esbHome(t)
	bad := filepath.Join(h, "repository/conf/carbon.xml")
	os.WriteFile(bad, []byte("<Server>\n  <HostName>x</HostName\n</Server>\n"), 0o644)
	before := snapshot(t, h)
	code, _, errs := runCmd(t, "setup", "--role", "worker", "--domain", "d", "--member-host", "h", "--member-port", "4000",
		"--wka", "a:1", "--hostname", "x", "--write", h)
	if code != 3 || !strings.Contains(errs, bad+":3:1: expected \">\" to close </HostName>, found '<'") {
		t.Errorf("malformed carbon.xml: code %d, stderr %q", code, errs)
	}
	if !equalMaps(before, snapshot(t, h)) {
		t.Error("a failed setup wrote files")
	}
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"lint"},
		{"show"},
		{"ports", "--offset", "-3"},
		{"setup", "--role", "boss", h},
		{"setup", "--role", "worker", esbHome(t)}, // required values missing
		{"lint", "--listen", "80,443", h},         // --listen without --lb
		{"lint", "--lb", "x.conf", "--listen", "http", h},
		{"hosts", h}, // no --lb-addr
		{"hosts", "--lb-addr", "lb.example.com", h},
		{"hosts", "--lb-addr", "10.0.0.1", "--map", "db=mysql", h},
		{"hosts", "--lb-addr", "10.0.0.1", "--map", "bad_name!=10.0.0.2", "--hosts-file", filepath.Join(t.TempDir(), "hosts"), esbHome(t)},
		{"help", "frobnicate"},
		{"setup", "--role", "manager", "--manager", h, h},
	} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// setup --write with catalina-server.xml immutable (chattr +i, which stops
// root too) fails and leaves every file of the node as it was: axis2.xml and
// carbon.xml are not written without it.
func TestSetupWriteAllOrNothing(t *testing.T) {
	h := esbHome(t)
	cat := filepath.Join(h, "repository/conf/tomcat/catalina-server.xml")
	if out, err := exec.Command("chattr", "+i", cat).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", cat).Run() })
	before := snapshot(t, h)
	code, out, errs := runCmd(t, "setup", "--role", "manager", "--domain", "wso2.esb.domain", "--member-host", "10.0.0.1", "--member-port", "4100",
		"--wka", "10.0.0.2:4200,10.0.0.3:4300", "--hostname", "esb.wso2.com", "--mgt-hostname", "mgt.esb.wso2.com",
		"--http-proxy-port", "8280", "--https-proxy-port", "8243", "--write", h)
	if code == 0 {
		t.Fatalf("setup --write succeeded with catalina-server.xml immutable:\n%s", errs)
	}
	if !strings.Contains(out, "catalina-server.xml") || !strings.Contains(errs, cat) {
		t.Errorf("want the diff to change catalina-server.xml and the error to name it; stdout:\n%s\nstderr:\n%s", out, errs)
	}
	if diff := cmp.Diff(before, snapshot(t, h)); diff != "" {
		t.Errorf("files changed by a failed setup --write (-before +after):\n%s", diff)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestHelp lists every command with its flags, setup's among them; help
// COMMAND lists one.
func TestHelp(t *testing.T) {
	code, out, _ := runCmd(t, "help")
	if code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, want := range []string{
		"carbonctl setup --role manager|worker [flags] PRODUCT_HOME\n",
		"-member-host string", "-member-port int", "-wka string", "-svn-url string", "-manager string", "-https-proxy-port int", "-write",
		"carbonctl lint [--lb loadbalancer.conf [--listen 80,443]] PRODUCT_HOME...\n", "-listen string",
		"carbonctl hosts --lb-addr", "-lb-addr string", "-hosts-file string",
		"carbonctl ports --offset N\n", "-offset int",
		"Exit status:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCmd(t, "help", "ports")
	if code != 0 || !strings.Contains(out, "-offset int") || strings.Contains(out, "-svn-url") {
		t.Errorf("help ports: exit %d\n%s", code, out)
	}
}

// TestLintListenNeedsLB refuses --listen without --lb, which would
// otherwise be ignored.
func TestLintListenNeedsLB(t *testing.T) {
	code, out, errs := runCmd(t, "lint", "--listen", "8280,8243", esbHome(t))
	if code != 2 || out != "" || !strings.Contains(errs, "carbonctl: lint: --listen needs --lb") {
		t.Errorf("lint --listen without --lb: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestSetupWorkerSvnURL gives a worker the manager's SvnUrl with
// --manager, and says so when a worker keeps the stock one.
func TestSetupWorkerSvnURL(t *testing.T) {
	mgr, w := esbHome(t), esbHome(t)
	common := []string{"--domain", "wso2.esb.domain", "--hostname", "esb.wso2.com", "--offset", "0"}
	if code, _, errs := runCmd(t, append([]string{"setup", "--role", "manager", "--member-host", "10.0.0.1", "--member-port", "4100",
		"--wka", "10.0.0.2:4200", "--mgt-hostname", "mgt.esb.wso2.com", "--svn-url", "https://svn.example.com/esb/", "--write", mgr}, common...)...); code != 0 {
		t.Fatalf("manager setup: %d %s", code, errs)
	}
	worker := append([]string{"setup", "--role", "worker", "--member-host", "10.0.0.2", "--member-port", "4200", "--wka", "10.0.0.1:4100", w}, common...)
	code, out, errs := runCmd(t, worker...)
	if code != 1 || !strings.Contains(errs, "the worker keeps the stock SvnUrl http://svnrepo.example.com/repos/") {
		t.Errorf("worker setup without --svn-url: exit %d, stderr %q", code, errs)
	}
	if strings.Contains(out, "<SvnUrl>") {
		t.Errorf("worker setup without --svn-url changed SvnUrl:\n%s", out)
	}
	code, out, errs = runCmd(t, append(worker, "--manager", mgr, "--write")...)
	if code != 0 || strings.Contains(errs, "stock SvnUrl") || !strings.Contains(out, "+        <SvnUrl>https://svn.example.com/esb/</SvnUrl>") {
		t.Errorf("worker setup --manager: exit %d, stderr %q, diff:\n%s", code, errs, out)
	}
	// The two now agree: lint has no svn-url-mismatch.
	code, out, _ = runCmd(t, "lint", mgr, w)
	if strings.Contains(out, "svn-url-mismatch") {
		t.Errorf("lint after setup --manager: exit %d\n%s", code, out)
	}
}

// TestHosts maps the cluster's host names to the balancer in a hosts file:
// the first run's diff and file are the golden ones (refreshed with
// -update), the file's other lines are kept byte for byte, and a second
// run prints an empty diff and changes nothing.
func TestHosts(t *testing.T) {
	mgr, w := esbHome(t), esbHome(t)
	common := []string{"--domain", "wso2.esb.domain", "--hostname", "esb.wso2.com", "--offset", "0", "--write"}
	for _, args := range [][]string{
		{"setup", "--role", "manager", "--member-host", "10.0.0.1", "--member-port", "4100", "--wka", "10.0.0.2:4200", "--mgt-hostname", "mgt.esb.wso2.com", mgr},
		{"setup", "--role", "worker", "--member-host", "10.0.0.2", "--member-port", "4200", "--wka", "10.0.0.1:4100", w},
	} {
		if code, _, errs := runCmd(t, append(args, common...)...); code != 0 {
			t.Fatalf("%q: %d %s", args, code, errs)
		}
	}
	dir := t.TempDir()
	lb := filepath.Join(dir, "loadbalancer.conf")
	if err := os.WriteFile(lb, []byte(`services {
    esb {
        hosts esb.wso2.com, services.esb.wso2.com;
        domains { wso2.esb.domain { sub_domain worker; tenant_range *; } }
    }
    esbmgt {
        domains { wso2.esb.domain { hosts mgt.esb.wso2.com; sub_domain mgt; tenant_range *; } }
    }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile("testdata/hosts.in")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if err := os.WriteFile("hosts", in, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"hosts", "--lb-addr", "192.168.1.10,192.168.1.11", "--lb", lb, "--map", "mysql.db.example.com=10.0.0.51", "--hosts-file", "hosts", mgr, w}

	// Without --write: the diff only.
	code, dry, errs := runCmd(t, args...)
	if code != 1 {
		t.Fatalf("hosts: exit %d, stderr %s", code, errs)
	}
	if got, _ := os.ReadFile("hosts"); !bytes.Equal(got, in) {
		t.Fatal("hosts without --write changed the file")
	}
	code, out, errs := runCmd(t, append(args, "--write")...)
	if code != 0 || out != dry || !strings.Contains(errs, "wrote hosts") {
		t.Fatalf("hosts --write: exit %d, stderr %s, diff differs from the dry run: %v", code, errs, out != dry)
	}
	after, err := os.ReadFile(filepath.Join(dir, "hosts"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hosts-first.diff", out)
	golden(t, "hosts-first.hosts", string(after))

	// Idempotent: the second run has nothing to do.
	code, out, _ = runCmd(t, append(args, "--write")...)
	if code != 0 || out != "" {
		t.Errorf("second hosts run: exit %d, diff:\n%s", code, out)
	}
	if again, _ := os.ReadFile("hosts"); !bytes.Equal(again, after) {
		t.Error("second hosts run changed the file")
	}
}

// golden compares got with testdata/name, or writes it there with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

// goldenDir is testdata as an absolute path, since TestHosts changes the
// working directory.
var goldenDir = func() string {
	d, err := filepath.Abs("testdata")
	if err != nil {
		panic(err)
	}
	return d
}()

// TestUsageExitCodes runs carbonctl's command lines to their exit status:
// 0 done, 1 findings or changes pending, 2 usage (said once), 3 files.
func TestUsageExitCodes(t *testing.T) {
	h := esbHome(t)
	pw := filepath.Join(t.TempDir(), "svn.password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	setup := []string{"setup", "--role", "manager", "--domain", "wso2.esb.domain", "--member-host", "10.0.0.1",
		"--member-port", "4100", "--wka", "10.0.0.2:4200", "--hostname", "esb.wso2.com", "--mgt-hostname", "mgt.esb.wso2.com"}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring of stdout
		stderr string // said exactly once on stderr
	}{
		{"help", []string{"-h"}, 0, "Exit status:", ""},
		{"version", []string{"-version"}, 0, "carbonctl ", ""},
		{"ports", []string{"ports", "--offset", "1"}, 0, "9764", ""},
		{"unknown flag", []string{"ports", "--nope"}, 2, "", "flag provided but not defined: -nope"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"setup with changes pending", append(setup, "--svn-password-file", pw, h), 1, "<SvnPassword>s3cret</SvnPassword>", ""},
		{"a password on the command line", append(setup, "--svn-password", "s3cret", h), 2, "", "flag provided but not defined: -svn-password"},
		{"an absent password file", append(setup, "--svn-password-file", filepath.Join(t.TempDir(), "absent"), h), 3, "", "no such file"},
		{"an absent product home", []string{"lint", filepath.Join(t.TempDir(), "nowhere")}, 3, "", "carbonctl: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tc.code, errs)
			}
			if !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, out)
			}
			if n := strings.Count(errs, tc.stderr); tc.stderr != "" && n != 1 {
				t.Errorf("stderr says %q %d times, want once:\n%s", tc.stderr, n, errs)
			}
		})
	}
	t.Run("password from the environment", func(t *testing.T) {
		t.Setenv("CARBONLB_SVN_PASSWORD", "fromenv")
		if code, out, errs := runCmd(t, append(setup, h)...); code != 1 || !strings.Contains(out, "<SvnPassword>fromenv</SvnPassword>") {
			t.Errorf("exit %d, stderr %s, diff:\n%s", code, errs, out)
		}
	})
}
