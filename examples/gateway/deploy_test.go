package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unitFile reads a systemd unit: sections of "key=value" lines, with
// backslash continuations joined and comments dropped.
func unitFile(t *testing.T, name string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	var section string
	for _, line := range logicalLines(string(b)) {
		switch {
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		case section == "":
			t.Fatalf("%s: %q before any section", name, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", name, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// logicalLines joins lines ending in a backslash with the next and drops
// blank lines and comments.
func logicalLines(s string) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if cur.Len() == 0 && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// TestDeployFiles parses the systemd unit and the Dockerfile under
// docs/deploy and checks that their command lines are the gateway's.
func TestDeployFiles(t *testing.T) {
	dir := filepath.Join("..", "..", "docs", "deploy")
	t.Run("systemd unit", func(t *testing.T) {
		u := unitFile(t, filepath.Join(dir, "carbonlb-gateway.service"))
		svc := u["Service"]
		for k, want := range map[string]string{
			"Type": "notify-reload", "ReloadSignal": "SIGHUP", "KillSignal": "SIGTERM",
			"RestartPreventExitStatus": "2", "User": "carbonlb",
		} {
			if got := svc[k]; len(got) != 1 || got[0] != want {
				t.Errorf("[Service] %s = %q, want %q", k, got, want)
			}
		}
		if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
			t.Errorf("[Install] WantedBy = %q", got)
		}
		for _, k := range []string{"ExecStartPre", "ExecStart"} {
			if len(svc[k]) != 1 {
				t.Fatalf("[Service] %s: %d lines, want 1", k, len(svc[k]))
			}
			args := strings.Fields(svc[k][0])
			if args[0] != "/usr/local/bin/carbonlb-gateway" {
				t.Errorf("%s runs %s", k, args[0])
			}
			o, err := parseFlags(args[1:], io.Discard)
			if err != nil {
				t.Errorf("%s: %v", k, err)
				continue
			}
			if (k == "ExecStartPre") != o.check {
				t.Errorf("%s: -check %v", k, o.check)
			}
			if k == "ExecStart" && o.drain.Seconds()+30 > 60 {
				t.Errorf("-drain %v and 30 s for requests in flight exceed TimeoutStopSec=60", o.drain)
			}
		}
	})
	t.Run("Dockerfile", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		ins := map[string][]string{}
		for _, l := range logicalLines(string(b)) {
			kw, rest, _ := strings.Cut(l, " ")
			ins[strings.ToUpper(kw)] = append(ins[strings.ToUpper(kw)], strings.TrimSpace(rest))
		}
		if len(ins["FROM"]) != 2 || !strings.HasPrefix(ins["FROM"][0], "golang:1.26") || ins["FROM"][1] != "scratch" {
			t.Errorf("FROM %q: want a golang:1.26 build stage and a scratch image", ins["FROM"])
		}
		var built bool
		for _, r := range ins["RUN"] {
			built = built || strings.Contains(r, "go build") && strings.HasSuffix(r, "./examples/gateway")
		}
		if !built {
			t.Errorf("no RUN go build of ./examples/gateway: %q", ins["RUN"])
		}
		if got := ins["USER"]; len(got) != 1 || strings.HasPrefix(got[0], "0") || got[0] == "root" {
			t.Errorf("USER %q: want a user other than root", got)
		}
		if got := ins["STOPSIGNAL"]; len(got) != 1 || got[0] != "SIGTERM" {
			t.Errorf("STOPSIGNAL %q, want SIGTERM", got)
		}
		var entry, cmd []string
		if err := json.Unmarshal([]byte(ins["ENTRYPOINT"][0]), &entry); err != nil {
			t.Fatalf("ENTRYPOINT is not an exec-form JSON array: %v", err)
		}
		if err := json.Unmarshal([]byte(ins["CMD"][0]), &cmd); err != nil {
			t.Fatalf("CMD is not an exec-form JSON array: %v", err)
		}
		if len(entry) != 1 || entry[0] != "/carbonlb-gateway" {
			t.Errorf("ENTRYPOINT %q", entry)
		}
		o, err := parseFlags(cmd, io.Discard)
		if err != nil {
			t.Fatalf("CMD: %v", err)
		}
		if o.admin != "0.0.0.0:9090" || o.adminTokenFile == "" {
			t.Errorf("CMD: -admin %q with token file %q: a container's admin listener needs its token", o.admin, o.adminTokenFile)
		}
	})
}
