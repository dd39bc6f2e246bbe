package carbonconf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// ignorePos compares LBConf trees without their positions, which move
// when lines are added.
var ignorePos = cmp.Options{
	cmpopts.IgnoreFields(LBBlock{}, "Line", "Col"),
	cmpopts.IgnoreFields(LBEntry{}, "Line", "Col"),
	cmpopts.EquateEmpty(),
}

func mustLB(t testing.TB, s string) *LBConf {
	t.Helper()
	c, err := ReadLBConf(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func copyBlock(b *LBBlock) *LBBlock {
	n := *b
	n.Entries = append([]LBEntry(nil), b.Entries...)
	n.Blocks = nil
	for _, c := range b.Blocks {
		n.Blocks = append(n.Blocks, copyBlock(c))
	}
	return &n
}

// wantAfterSet is root with key set to value in the block at path, as Set
// promises: every entry with the key changed, or one added at the end of
// the block's entries; missing blocks added after their siblings.
func wantAfterSet(root *LBBlock, path, key, value string) *LBBlock {
	r := copyBlock(root)
	b := r
	for _, s := range strings.Split(path, "/") {
		next := b.Block(s)
		if next == nil {
			next = &LBBlock{Name: s, Closed: true}
			b.Blocks = append(b.Blocks, next)
		}
		b = next
	}
	found := false
	for i := range b.Entries {
		if normKey(b.Entries[i].Key) == normKey(key) {
			b.Entries[i].Value = value
			found = true
		}
	}
	if !found {
		b.Entries = append(b.Entries, LBEntry{Key: key, Value: value})
	}
	return r
}

// wantAfterRemove is root without the entries with key in the block at
// path.
func wantAfterRemove(root *LBBlock, path, key string) *LBBlock {
	r := copyBlock(root)
	b, _ := lookup(r, strings.Split(path, "/"))
	var keep []LBEntry
	for _, e := range b.Entries {
		if normKey(e.Key) != normKey(key) {
			keep = append(keep, e)
		}
	}
	b.Entries = keep
	return r
}

// reread parses the document's bytes again and compares the tree with
// want, reporting the difference.
func reread(t testing.TB, c *LBConf, want *LBBlock) *LBConf {
	t.Helper()
	c2, err := ReadLBConf(bytes.NewReader(c.Bytes()))
	if err != nil {
		t.Fatalf("re-read: %v\n%s", err, c.Bytes())
	}
	// sameTree first: cmp.Diff is slow enough to starve the fuzzer.
	if !sameTree(want, c2.Root, false) {
		t.Fatalf("re-read tree (-want +got):\n%s\nin:\n%s", cmp.Diff(want, c2.Root, ignorePos), c.Bytes())
	}
	if !sameTree(c2.Root, c.Root, true) {
		t.Fatalf("model after the edit differs from a re-read (-re-read +model):\n%s", cmp.Diff(c2.Root, c.Root))
	}
	return c2
}

// sameTree reports whether a and b hold the same blocks and entries, and
// when pos is set the same positions.
func sameTree(a, b *LBBlock, pos bool) bool {
	if a.Name != b.Name || a.Closed != b.Closed || len(a.Entries) != len(b.Entries) || len(a.Blocks) != len(b.Blocks) ||
		pos && (a.Line != b.Line || a.Col != b.Col) {
		return false
	}
	for i, e := range a.Entries {
		f := b.Entries[i]
		if e.Key != f.Key || e.Value != f.Value || pos && (e.Line != f.Line || e.Col != f.Col) {
			return false
		}
	}
	for i := range a.Blocks {
		if !sameTree(a.Blocks[i], b.Blocks[i], pos) {
			return false
		}
	}
	return true
}

const elbConf = `loadbalancer {
    instances           1;
    server_startup_delay 600000; #default will be 60000ms
    session_timeout 90000;
}

services {
    defaults {
        min_app_instances       1;
        max_app_instances       5;
    }
    appserver {
        hosts                   appserver.cloud-test.wso2.com,as.cloud-test.wso2.com;
        domains   {
            wso2.as1.domain {
                tenant_range    1-100;
            }
            wso2.as2.domain { tenant_range 101-200; }
        }
    }
    esb {
        domains {
            wso2.esb.domain {
                hosts           esb.wso2.com;
                sub_domain      worker;
                tenant_range    *;
            }
        }
    }
}
`

// The older shape of seed 004: services at top level.
const olderConf = `    appserver {
        domains {
            wso2.appserver.domain {
                min_app_instances       1;
                hosts           management.appserver.ec2-test.wso2.com;
                sub_domain      mgt;
                tenant_range    *;
            }
        }
    }
`

const stratosConf = `loadbalancer {
    session-affinity: true;
    services {
        app-server {
            clusters {
                c1 {
                    hosts: a.example.org;
                    tenant-range:1-100;
                }
            }
        }
    }
}
`

func TestLBConfSet(t *testing.T) {
	tests := []struct {
		name, in, path, key, value string
		want                       string // the edited lines, as they replace old in in
		old                        string
	}{
		{"domain hosts in place", elbConf, "services/esb/domains/wso2.esb.domain", "hosts", "esb.example.com,esb2.example.com",
			"                hosts           esb.example.com,esb2.example.com;\n", "                hosts           esb.wso2.com;\n"},
		{"sub_domain added, value lined up with siblings", elbConf, "services/appserver/domains/wso2.as1.domain", "sub_domain", "mgt",
			"                tenant_range    1-100;\n                sub_domain      mgt;\n", "                tenant_range    1-100;\n"},
		{"min_app_instances into a one-line block", elbConf, "services/appserver/domains/wso2.as2.domain", "min_app_instances", "2",
			"            wso2.as2.domain { tenant_range 101-200; min_app_instances 2; }\n", "            wso2.as2.domain { tenant_range 101-200; }\n"},
		{"loadbalancer key with a comment after it", elbConf, "loadbalancer", "server_startup_delay", "1200000",
			"    server_startup_delay 1200000; #default will be 60000ms\n", "    server_startup_delay 600000; #default will be 60000ms\n"},
		{"loadbalancer key added after one with a comment", elbConf, "loadbalancer", "fail_over", "true",
			"    session_timeout 90000;\n    fail_over true;\n", "    session_timeout 90000;\n"},
		{"defaults key, hyphen matches underscore", elbConf, "services/defaults", "max-app-instances", "3",
			"        max_app_instances       3;\n", "        max_app_instances       5;\n"},
		{"service hosts added before its domains", elbConf, "services/esb", "hosts", "esb.wso2.com",
			"    esb {\n        hosts esb.wso2.com;\n        domains {\n", "    esb {\n        domains {\n"},
		{"missing defaults block added", strings.Replace(elbConf, "    defaults {\n        min_app_instances       1;\n        max_app_instances       5;\n    }\n", "", 1),
			"services/defaults", "min_app_instances", "2",
			"    }\n    defaults {\n        min_app_instances 2;\n    }\n}\n", "    }\n}\n"},
		{"older shape tenant_range", olderConf, "appserver/domains/wso2.appserver.domain", "tenant_range", "1-100",
			"                tenant_range    1-100;\n", "                tenant_range    *;\n"},
		{"older shape key added", olderConf, "appserver/domains/wso2.appserver.domain", "max_app_instances", "4",
			"                tenant_range    *;\n                max_app_instances 4;\n", "                tenant_range    *;\n"},
		{"stratos key in place", stratosConf, "loadbalancer/services/app-server/clusters/c1", "tenant-range", "7",
			"                    tenant-range:7;\n", "                    tenant-range:1-100;\n"},
		{"stratos key added in its style", stratosConf, "loadbalancer/services/app-server/clusters/c1", "min-app-instances", "2",
			"                    tenant-range:1-100;\n                    min-app-instances:2;\n", "                    tenant-range:1-100;\n"},
		{"empty value filled", "a {\n    hosts ;\n    b;\n}\n", "a", "b", "x", "    b x;\n", "    b;\n"},
		{"empty value filled keeps its column", "a {\n    hosts   ;\n}\n", "a", "hosts", "x", "    hosts   x;\n", "    hosts   ;\n"},
		{"empty multi-line block", "a {\n}\n", "a", "k", "v", "a {\n    k v;\n}\n", "a {\n}\n"},
		{"empty one-line block", "x { a {} }\n", "x/a", "k", "v", "x { a { k v; } }\n", "x { a {} }\n"},
		{"tab indentation, CRLF", "a {\r\n\tb {\r\n\t\tk1\t1;\r\n\t}\r\n}", "a/b", "k2", "2", "\t\tk1\t1;\r\n\t\tk2\t2;\r\n", "\t\tk1\t1;\r\n"},
		{"block never closed", "services {\n  esb {\n    domains {\n      d { tenant_range *; }\n", "services/esb", "hosts", "h",
			"  esb {\n    hosts h;\n", "  esb {\n"},
		{"empty block never closed, no final newline", "a {\n  b {", "a/b", "k", "v", "a {\n  b {\n    k v;\n", "a {\n  b {"},
		{"duplicate keys all set", "a {\n  k 1;\n  k 2;\n}\n", "a", "k", "3", "  k 3;\n  k 3;\n", "  k 1;\n  k 2;\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(tt.in, tt.old) {
				t.Fatalf("test input lacks %q", tt.old)
			}
			c := mustLB(t, tt.in)
			want := wantAfterSet(c.Root, tt.path, tt.key, tt.value)
			if err := c.Set(tt.path, tt.key, tt.value); err != nil {
				t.Fatal(err)
			}
			wantBytes := strings.Replace(tt.in, tt.old, tt.want, 1)
			if diff := cmp.Diff(wantBytes, string(c.Bytes())); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			c2 := reread(t, c, want)
			if e, ok := c2.Block(tt.path).Get(tt.key); !ok || e.Value != tt.value {
				t.Errorf("re-read %s = %q, want %q", tt.key, e.Value, tt.value)
			}
			if len(c2.Warnings) != len(mustLB(t, tt.in).Warnings) {
				t.Errorf("warnings changed: %v", c2.Warnings)
			}
			// Setting it again changes nothing.
			before := c.Bytes()
			if err := c.Set(tt.path, tt.key, tt.value); err != nil || !bytes.Equal(before, c.Bytes()) {
				t.Errorf("second set changed the document (err %v)", err)
			}
		})
	}
}

func TestLBConfSetModel(t *testing.T) {
	c := mustLB(t, elbConf)
	c.ListenPorts = []int{8280}
	p, ok := c.DomainPath("esb", "wso2.esb.domain")
	if !ok || p != "services/esb/domains/wso2.esb.domain" {
		t.Fatalf("DomainPath = %q, %v", p, ok)
	}
	for _, kv := range [][2]string{{"sub_domain", "mgt"}, {"tenant_range", "1-10"}, {"min_app_instances", "3"}, {"hosts", "a.example.com, b.example.com"}} {
		if err := c.Set(p, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set("loadbalancer", "session_timeout", "120000"); err != nil {
		t.Fatal(err)
	}
	var got LBDomain
	for _, s := range c.Services {
		for _, d := range s.Domains {
			if d.Domain == "wso2.esb.domain" {
				got = d
			}
		}
	}
	if got.SubDomain != "mgt" || got.TenantRange != "1-10" || got.MinAppInstances != 3 || got.MaxAppInstances != 5 ||
		!cmp.Equal(got.Hosts, []string{"a.example.com", "b.example.com"}) {
		t.Errorf("domain = %+v", got)
	}
	if c.LoadBalancer["session_timeout"] != "120000" {
		t.Errorf("loadbalancer = %v", c.LoadBalancer)
	}
	if !cmp.Equal(c.ListenPorts, []int{8280}) {
		t.Errorf("ListenPorts = %v, want kept", c.ListenPorts)
	}
	if p, ok := (mustLB(t, olderConf)).DomainPath("appserver", "wso2.appserver.domain"); !ok || p != "appserver/domains/wso2.appserver.domain" {
		t.Errorf("older shape DomainPath = %q, %v", p, ok)
	}
	if p, ok := (mustLB(t, stratosConf)).DomainPath("app-server", "c1"); !ok || p != "loadbalancer/services/app-server/clusters/c1" {
		t.Errorf("stratos DomainPath = %q, %v", p, ok)
	}
	if _, ok := c.DomainPath("esb", "nope"); ok {
		t.Error("DomainPath found a missing domain")
	}
}

func TestLBConfSetErrors(t *testing.T) {
	tests := []struct{ name, path, key, value string }{
		{"semicolon", "loadbalancer", "instances", "1; fail_over false"},
		{"open brace", "loadbalancer", "instances", "{"},
		{"close brace", "loadbalancer", "instances", "1 }"},
		{"comment", "loadbalancer", "instances", "1 #x"},
		{"newline", "loadbalancer", "instances", "1\nfail_over true"},
		{"carriage return", "loadbalancer", "instances", "1\r"},
		{"control character", "loadbalancer", "instances", "a\x00"},
		{"invalid UTF-8", "loadbalancer", "instances", "\xff"},
		{"leading space", "loadbalancer", "instances", " 1"},
		{"trailing space", "loadbalancer", "instances", "1 "},
		{"value that reads as a separator", "loadbalancer", "instances", ": 1"},
		{"key with a space", "loadbalancer", "a b", "1"},
		{"key with a colon", "loadbalancer", "a:b", "1"},
		{"key with a brace", "loadbalancer", "a}", "1"},
		{"empty key", "loadbalancer", "", "1"},
		{"empty path", "", "k", "1"},
		{"empty path element", "services//esb", "k", "1"},
		{"block name with a brace", "services/e{sb", "k", "1"},
		{"block name with a space", "services/e sb", "k", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLB(t, elbConf)
			if err := c.Set(tt.path, tt.key, tt.value); err == nil {
				t.Errorf("Set(%q, %q, %q) succeeded:\n%s", tt.path, tt.key, tt.value, c.Bytes())
			}
			if string(c.Bytes()) != elbConf {
				t.Error("failed Set changed the document")
			}
		})
	}
}

func TestLBConfRemove(t *testing.T) {
	tests := []struct {
		name, in, path, key, want string
	}{
		{"alone on its line, with its comment", elbConf, "loadbalancer", "server_startup_delay",
			strings.Replace(elbConf, "    server_startup_delay 600000; #default will be 60000ms\n", "", 1)},
		{"in a one-line block", elbConf, "services/appserver/domains/wso2.as2.domain", "tenant_range",
			strings.Replace(elbConf, "wso2.as2.domain { tenant_range 101-200; }", "wso2.as2.domain { }", 1)},
		{"hyphen matches underscore, every duplicate", "a {\n  min-app-instances 1;\n  b 2;\n  min_app_instances 3;\n}\n", "a", "min_app_instances", "a {\n  b 2;\n}\n"},
		{"CRLF", "a {\r\n  k 1;\r\n  j 2;\r\n}\r\n", "a", "k", "a {\r\n  j 2;\r\n}\r\n"},
		{"last line without a line break", "a {\n  j 2;\n  k 1;", "a", "k", "a {\n  j 2;"},
		{"followed by another statement", "a {\n  k 1; j 2;\n}\n", "a", "k", "a {\n  j 2;\n}\n"},
		{"two on one line", "a {\n  k 1; k 2;\n  j 3;\n}\n", "a", "k", "a {\n  \n  j 3;\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLB(t, tt.in)
			want := wantAfterRemove(c.Root, tt.path, tt.key)
			ok, err := c.Remove(tt.path, tt.key)
			if err != nil || !ok {
				t.Fatalf("Remove = %v, %v", ok, err)
			}
			if diff := cmp.Diff(tt.want, string(c.Bytes())); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			reread(t, c, want)
			if ok, err := c.Remove(tt.path, tt.key); ok || err != nil {
				t.Errorf("second Remove = %v, %v", ok, err)
			}
		})
	}
	c := mustLB(t, elbConf)
	for _, p := range []string{"nope", "services/nope/x", "loadbalancer"} {
		if ok, err := c.Remove(p, "absent"); ok || err != nil {
			t.Errorf("Remove(%q, absent) = %v, %v", p, ok, err)
		}
	}
	if _, err := c.Remove("", "k"); err == nil {
		t.Error("empty path accepted")
	}
	if string(c.Bytes()) != elbConf {
		t.Error("Remove of absent keys changed the document")
	}
}

func TestLBConfAddDomain(t *testing.T) {
	tests := []struct {
		name, in, service, domain string
		entries                   []LBEntry
		want                      string
	}{
		{"services shape, existing service", elbConf, "appserver", "wso2.as3.domain",
			[]LBEntry{{Key: "tenant_range", Value: "*"}, {Key: "sub_domain", Value: "mgt"}},
			strings.Replace(elbConf, "            wso2.as2.domain { tenant_range 101-200; }\n",
				"            wso2.as2.domain { tenant_range 101-200; }\n            wso2.as3.domain {\n                tenant_range *;\n                sub_domain mgt;\n            }\n", 1)},
		{"services shape, new service", elbConf, "identity", "wso2.is.domain",
			[]LBEntry{{Key: "hosts", Value: "identity.wso2.com"}, {Key: "tenant_range", Value: "*"}},
			strings.Replace(elbConf, "            }\n        }\n    }\n}\n",
				"            }\n        }\n    }\n    identity {\n        domains {\n            wso2.is.domain {\n                hosts identity.wso2.com;\n                tenant_range *;\n            }\n        }\n    }\n}\n", 1)},
		{"older shape, existing service", olderConf, "appserver", "wso2.appserver.worker.domain",
			[]LBEntry{{Key: "sub_domain", Value: "worker"}},
			strings.Replace(olderConf, "            }\n        }\n", "            }\n            wso2.appserver.worker.domain {\n                sub_domain      worker;\n            }\n        }\n", 1)},
		{"older shape, new service at top level", olderConf, "esb", "wso2.esb.domain",
			[]LBEntry{{Key: "tenant_range", Value: "*"}},
			olderConf + "    esb {\n        domains {\n            wso2.esb.domain {\n                tenant_range    *;\n            }\n        }\n    }\n"},
		{"stratos clusters", stratosConf, "app-server", "c2", []LBEntry{{Key: "hosts", Value: "c2.example.org"}},
			strings.Replace(stratosConf, "                }\n            }\n", "                }\n                c2 {\n                    hosts:c2.example.org;\n                }\n            }\n", 1)},
		{"service without domains", "services {\n  esb {\n    hosts esb.wso2.com;\n  }\n}\n", "esb", "d", nil,
			"services {\n  esb {\n    hosts esb.wso2.com;\n    domains {\n      d {\n      }\n    }\n  }\n}\n"},
		{"a file with only loadbalancer", "loadbalancer {\n  instances 1;\n}\n", "esb", "d", []LBEntry{{Key: "tenant_range", Value: "*"}},
			"loadbalancer {\n  instances 1;\n}\nservices {\n  esb {\n    domains {\n      d {\n        tenant_range *;\n      }\n    }\n  }\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLB(t, tt.in)
			nDomains := 0
			for _, s := range c.Services {
				nDomains += len(s.Domains)
			}
			if err := c.AddDomain(tt.service, tt.domain, tt.entries...); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(c.Bytes())); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			c2 := mustLB(t, string(c.Bytes()))
			var got []string
			for _, s := range c2.Services {
				for _, d := range s.Domains {
					got = append(got, s.Name+"/"+d.Domain)
					if s.Name == tt.service && d.Domain == tt.domain {
						for _, e := range tt.entries {
							if d.Settings[e.Key] != e.Value {
								t.Errorf("re-read %s = %q, want %q", e.Key, d.Settings[e.Key], e.Value)
							}
						}
					}
				}
			}
			if len(got) != nDomains+1 {
				t.Errorf("re-read domains = %v, want %d", got, nDomains+1)
			}
			before := c.Bytes()
			if err := c.AddDomain(tt.service, tt.domain); !errors.Is(err, ErrExists) {
				t.Errorf("second AddDomain = %v, want ErrExists", err)
			}
			if !bytes.Equal(before, c.Bytes()) {
				t.Error("failed AddDomain changed the document")
			}
		})
	}
	c := mustLB(t, elbConf)
	for _, bad := range []struct {
		service, domain string
		entries         []LBEntry
	}{
		{"", "d", nil},
		{"esb", "", nil},
		{"esb", "a b", nil},
		{"es;b", "d", nil},
		{"esb", "d", []LBEntry{{Key: "hosts", Value: "a;b"}}},
		{"esb", "d", []LBEntry{{Key: "ho sts", Value: "a"}}},
	} {
		if err := c.AddDomain(bad.service, bad.domain, bad.entries...); err == nil {
			t.Errorf("AddDomain(%q, %q, %v) succeeded", bad.service, bad.domain, bad.entries)
		}
	}
	if string(c.Bytes()) != elbConf {
		t.Error("failed AddDomain changed the document")
	}
}

// The real files take every edit, and a re-read sees exactly it.
func TestLBConfEditTestdata(t *testing.T) {
	for _, p := range testFiles(t, "loadbalancer") {
		t.Run(filepath.Base(p), func(t *testing.T) {
			c, err := LoadLBConf(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range c.Services {
				for _, d := range s.Domains {
					path, ok := c.DomainPath(s.Name, d.Domain)
					if !ok {
						t.Fatalf("no path for %s/%s", s.Name, d.Domain)
					}
					want := wantAfterSet(c.Root, path, "tenant_range", "1-9")
					if err := c.Set(path, "tenant_range", "1-9"); err != nil {
						t.Fatal(err)
					}
					reread(t, c, want)
				}
			}
			if lb := c.Root.Block("loadbalancer"); lb != nil {
				want := wantAfterSet(c.Root, "loadbalancer", "session_timeout", "1000")
				if err := c.Set("loadbalancer", "session_timeout", "1000"); err != nil {
					t.Fatal(err)
				}
				reread(t, c, want)
			}
			if err := c.AddDomain("carbonconf-test", "d1", LBEntry{Key: "tenant_range", Value: "*"}); err != nil {
				t.Fatal(err)
			}
			if _, ok := c.DomainPath("carbonconf-test", "d1"); !ok {
				t.Errorf("added domain not found:\n%s", c.Bytes())
			}
		})
	}
}

func TestLBConfSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loadbalancer.conf")
	if err := os.WriteFile(path, []byte(elbConf), 0o640); err != nil {
		t.Fatal(err)
	}
	c, err := LoadLBConf(path)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.DomainPath("esb", "wso2.esb.domain")
	if err := c.Set(p, "sub_domain", "mgt"); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	c2, err := LoadLBConf(path)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(elbConf, "sub_domain      worker;", "sub_domain      mgt;", 1)
	if got := string(c2.Bytes()); got != want {
		t.Errorf("saved:\n%s", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(ents))
	}
	if err := c.Save(filepath.Join(dir, "missing", "loadbalancer.conf")); err == nil {
		t.Error("save into a missing directory succeeded")
	}
}
