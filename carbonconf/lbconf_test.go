package carbonconf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLBConfShapes(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []LBDomain
		warnings int
	}{
		{"services shape with defaults", `
loadbalancer { instances 1; }
services {
    defaults { min_app_instances 1; max_app_instances 5; }
    appserver {
        hosts appserver.wso2.com, as.wso2.com;   # spaces after the comma
        sub_domain worker;
        domains {
            wso2.as.domain { tenant_range 1-100; max_app_instances 3; }
            wso2.as.domain { tenant_range 101-200; } # duplicate name kept
        }
    }
}
`, []LBDomain{
			{Service: "appserver", Domain: "wso2.as.domain", Hosts: []string{"appserver.wso2.com", "as.wso2.com"}, SubDomain: "worker", TenantRange: "1-100", MinAppInstances: 1, MaxAppInstances: 3},
			{Service: "appserver", Domain: "wso2.as.domain", Hosts: []string{"appserver.wso2.com", "as.wso2.com"}, SubDomain: "worker", TenantRange: "101-200", MinAppInstances: 1, MaxAppInstances: 5},
		}, 0},
		{"older shape (seed 004)", `
    appserver {
        domains {
            wso2.appserver.domain {
                min_app_instances       1;
                hosts           management.appserver.ec2-test.wso2.com;
                sub_domain      mgt;
                tenant_range    *;
            }
        }
    }
`, []LBDomain{
			{Service: "appserver", Domain: "wso2.appserver.domain", Hosts: []string{"management.appserver.ec2-test.wso2.com"}, SubDomain: "mgt", TenantRange: "*", MinAppInstances: 1},
		}, 0},
		{"stratos dialect", `
loadbalancer {
    session-affinity: true;
}
services {
    app-server { # comment after a brace
        clusters {
            c1 {
                hosts: a.example.org, b.example.org;
                tenant-range:1-100;
                min-app-instances : 2;
            }
        }
    }
}
`, []LBDomain{
			{Service: "app-server", Domain: "c1", Hosts: []string{"a.example.org", "b.example.org"}, TenantRange: "1-100", MinAppInstances: 2},
		}, 0},
		{"never closed", "services {\n  esb {\n    domains {\n      wso2.esb.domain { tenant_range *; }\n", []LBDomain{
			{Service: "esb", Domain: "wso2.esb.domain", TenantRange: "*"},
		}, 1}, // one warning for the three open blocks
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ReadLBConf(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []LBDomain
			for _, s := range c.Services {
				got = append(got, s.Domains...)
			}
			opt := cmp.FilterPath(func(p cmp.Path) bool {
				switch p.Last().String() {
				case ".Settings", ".Line", ".Col":
					return true
				}
				return false
			}, cmp.Ignore())
			if diff := cmp.Diff(tt.want, got, opt); diff != "" {
				t.Errorf("domains (-want +got):\n%s", diff)
			}
			if len(c.Warnings) != tt.warnings {
				t.Errorf("warnings = %v, want %d", c.Warnings, tt.warnings)
			}
			if string(c.Bytes()) != tt.in {
				t.Error("round trip changed the input")
			}
		})
	}
}

func TestLBConfDefaultsBlock(t *testing.T) {
	c, err := ReadLBConf(strings.NewReader("loadbalancer {\n  instances 1; #default 1\n  session_timeout 90000;\n}\nservices { defaults { min_app_instances 1; } }\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"instances": "1", "session_timeout": "90000"}
	if diff := cmp.Diff(want, c.LoadBalancer); diff != "" {
		t.Errorf("loadbalancer (-want +got):\n%s", diff)
	}
	if c.Defaults["min_app_instances"] != "1" {
		t.Errorf("defaults = %v", c.Defaults)
	}
	if got := c.Listen(); len(got) == 0 {
		t.Error("no default listen ports")
	}
}

// TestLBConfInvalidUTF8 reads files with bytes that are not UTF-8: each is
// a *ParseError wrapping ErrEncoding at the first such byte (Col counts
// bytes), from every reader, however the rest of the file is shaped.
func TestLBConfInvalidUTF8(t *testing.T) {
	for _, tc := range []struct {
		name, in  string
		line, col int
		reason    string // part of the message
	}{
		{"lone 0xff in a value", "loadbalancer {\n  instances 1\xff;\n}\n", 2, 14, "found byte 0xff, which UTF-8 never uses"},
		{"lone 0xff in a key", "loadbalancer {\n  inst\xffances 1;\n}\n", 2, 7, "found byte 0xff"},
		{"lone 0xff in a comment", "# caf\xff\nloadbalancer { }\n", 1, 6, "found byte 0xff"},
		{"lone 0xff in a block name", "services {\n  esb\xff {\n  }\n}\n", 2, 6, "found byte 0xff"},
		{"truncated 2-byte sequence at end of file", "services {\n  # caf\xc3", 2, 8, "byte 0xc3, a 2-byte sequence cut short by end of file"},
		{"overlong encoding", "loadbalancer {\r\n  path /x\xc0\xaf;\r\n}\r\n", 2, 10, "byte 0xc0, which begins an overlong encoding"},
		{"surrogate", "loadbalancer {\n\tname \xed\xa0\x80;\n}\n", 2, 7, "bytes 0xed 0xa0, the start of a UTF-16 surrogate"},
		{"after multi-byte characters on the line", "# caf\xc3\xa9 \xe2\x98\x95 \xff\n", 1, 13, "found byte 0xff"},
		{"continuation byte without a lead byte", "a { b \x80; }", 1, 7, "byte 0x80, a continuation byte without a lead byte"},
		{"3-byte sequence cut short", "a { b \xe2\x82x; }", 1, 7, "bytes 0xe2 0x82, a 3-byte sequence cut short by byte 0x78"},
		{"lead byte followed by ASCII", "a { b \xc3; }", 1, 7, "byte 0xc3, a 2-byte sequence cut short by byte 0x3b"},
		{"4-byte sequence cut short by end of file", "a { b \xf0\x9f\x98", 1, 7, "bytes 0xf0 0x9f 0x98, a 4-byte sequence cut short by end of file"},
		{"overlong 3-byte encoding", "a { b \xe0\x80\xaf; }", 1, 7, "bytes 0xe0 0x80, the start of an overlong encoding"},
		{"overlong 4-byte encoding", "a { b \xf0\x80\x80\xaf; }", 1, 7, "bytes 0xf0 0x80, the start of an overlong encoding"},
		{"above U+10FFFF", "a { b \xf4\x90\x80\x80; }", 1, 7, "bytes 0xf4 0x90, the start of a code point above U+10FFFF"},
		{"after a byte-order mark", "\xef\xbb\xbfa { b \xfe; }", 1, 10, "found byte 0xfe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(t *testing.T, err error, file string) {
				t.Helper()
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("error %v, want a *ParseError", err)
				}
				if !errors.Is(err, ErrEncoding) {
					t.Errorf("errors.Is(%v, ErrEncoding) = false", err)
				}
				if pe.File != file || pe.Line != tc.line || pe.Col != tc.col {
					t.Errorf("error at %q:%d:%d, want %q:%d:%d: %v", pe.File, pe.Line, pe.Col, file, tc.line, tc.col, err)
				}
				if !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("error %q does not say %q", err, tc.reason)
				}
			}
			c, err := ReadLBConf(strings.NewReader(tc.in))
			if c != nil {
				t.Errorf("ReadLBConf returned a document with error %v", err)
			}
			check(t, err, "")
			_, err = ReadLBConfStrict(strings.NewReader(tc.in))
			check(t, err, "")
			p := filepath.Join(t.TempDir(), "loadbalancer.conf")
			if err := os.WriteFile(p, []byte(tc.in), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = LoadLBConf(p)
			check(t, err, p)
			_, err = LoadLBConfStrict(p)
			check(t, err, p)
		})
	}
}

// TestLBConfValidUTF8 reads non-ASCII UTF-8 in values, names and comments
// (U+FFFD written as such included) as it is, and writes it back
// unchanged; so is a file that starts with a byte-order mark.
func TestLBConfValidUTF8(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		lb       map[string]string // the loadbalancer block; nil: not checked
		hosts    []string          // the only domain's hosts; nil: not checked
	}{
		{"values, names and comments",
			"# r\xc3\xa9sum\xc3\xa9: \xe2\x98\x95 \xf0\x9f\x98\x80\n" +
				"loadbalancer {\n  motd caf\xc3\xa9 \xe2\x98\x95; # \xc3\xbc\n  mark \xef\xbf\xbd;\n}\n" +
				"services {\n  caf\xc3\xa9 {\n    domains { d { hosts \xc3\xa9.example.org; } }\n  }\n}\n",
			map[string]string{"motd": "caf\u00e9 \u2615", "mark": "\ufffd"}, []string{"\u00e9.example.org"}},
		{"byte-order mark", "\xef\xbb\xbfloadbalancer { motd caf\xc3\xa9; }\r\n", map[string]string{"motd": "caf\u00e9"}, nil},
		{"byte-order mark, then a comment", "\xef\xbb\xbf# saved by Notepad\r\nloadbalancer { motd x; }\r\n", map[string]string{"motd": "x"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ReadLBConfStrict(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.Bytes(), []byte(tc.in)) {
				t.Errorf("Bytes() = %q, want %q", c.Bytes(), tc.in)
			}
			if tc.lb != nil {
				if diff := cmp.Diff(tc.lb, c.LoadBalancer); diff != "" {
					t.Errorf("loadbalancer (-want +got):\n%s", diff)
				}
			}
			if tc.hosts != nil {
				if len(c.Services) != 1 || len(c.Services[0].Domains) != 1 {
					t.Fatalf("services = %+v, want one with one domain", c.Services)
				}
				if diff := cmp.Diff(tc.hosts, c.Services[0].Domains[0].Hosts); diff != "" {
					t.Errorf("hosts (-want +got):\n%s", diff)
				}
			}
		})
	}
}
