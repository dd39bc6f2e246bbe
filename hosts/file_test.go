package hosts

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestSetGolden")

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// systemFiles are the hosts files of testdata with lookups they must answer.
var systemFiles = []struct {
	file    string
	lookups map[string][]netip.Addr
}{
	{"debian.hosts", map[string][]netip.Addr{
		"localhost": addrs("127.0.0.1", "::1"), "debian": addrs("127.0.1.1"),
		"DEBIAN.example.org.": addrs("127.0.1.1"), "ip6-allrouters": addrs("ff02::2"),
	}},
	{"ubuntu.hosts", map[string][]netip.Addr{
		"ubuntu-jammy": addrs("127.0.1.1"), "localhost": addrs("127.0.0.1"),
		"ip6-loopback": addrs("::1"), "ip6-allhosts": addrs("ff02::3"), "ubuntu": nil,
	}},
	{"alpine.hosts", map[string][]netip.Addr{
		"localhost": addrs("127.0.0.1", "::1"), "localhost.localdomain": addrs("127.0.0.1", "::1"),
	}},
	{"rhel.hosts", map[string][]netip.Addr{
		"localhost4": addrs("127.0.0.1"), "localhost6.localdomain6": addrs("::1"),
	}},
	{"docker.hosts", map[string][]netip.Addr{
		"3f4e2a1b9c8d": addrs("172.17.0.2"), "ip6-localnet": addrs("fe00::"),
	}},
	{"macos.hosts", map[string][]netip.Addr{
		"localhost": addrs("127.0.0.1", "::1"), "broadcasthost": addrs("255.255.255.255"),
	}},
	{"macos-10.9.hosts", map[string][]netip.Addr{
		"localhost": addrs("127.0.0.1", "::1", "fe80::1%lo0"),
	}},
	{"windows.hosts", map[string][]netip.Addr{
		"localhost": nil, "rhino.acme.com": nil,
	}},
	{"windows-docker-desktop.hosts", map[string][]netip.Addr{
		"host.docker.internal": addrs("192.168.1.23"), "kubernetes.docker.internal": addrs("127.0.0.1"),
	}},
	{"stratos-ec2-demo-hosts", map[string][]netip.Addr{
		"localhost": addrs("127.0.0.1"), "ip6-mcastprefix": addrs("ff00::"),
	}},
}

func TestParseRoundTripSystemFiles(t *testing.T) {
	for _, tc := range systemFiles {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			n, err := f.WriteTo(&buf)
			if err != nil || n != int64(len(data)) {
				t.Fatalf("WriteTo = %d, %v; want %d, nil", n, err, len(data))
			}
			if !bytes.Equal(buf.Bytes(), data) {
				t.Errorf("WriteTo is not byte-identical:\n%s", cmp.Diff(string(data), buf.String()))
			}
			if w := f.Warnings(); len(w) != 0 {
				t.Errorf("Warnings() = %v, want none", w)
			}
			for name, want := range tc.lookups {
				if diff := cmp.Diff(want, f.Lookup(name), addrCmp); diff != "" {
					t.Errorf("Lookup(%q) mismatch (-want +got):\n%s", name, diff)
				}
			}
		})
	}
}

func TestParseSyntax(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		lookups map[string][]string
		warns   []string
	}{
		{
			name:    "comments and white space",
			in:      "# full line\n\n  \t\n10.0.0.1\tapp app-alias # trailing\n 10.0.0.2  db#glued comment\n",
			lookups: map[string][]string{"app": {"10.0.0.1"}, "app-alias": {"10.0.0.1"}, "db": {"10.0.0.2"}, "trailing": nil, "glued": nil},
		},
		{
			name:    "CRLF and a missing final newline",
			in:      "10.0.0.1 a\r\n10.0.0.2 b\n10.0.0.3 c",
			lookups: map[string][]string{"a": {"10.0.0.1"}, "b": {"10.0.0.2"}, "c": {"10.0.0.3"}},
		},
		{
			name:    "case, trailing dot, first line first, duplicates",
			in:      "10.0.0.2 Web.Example.COM\n10.0.0.1 web.example.com\n10.0.0.2 web.example.com.\nfd00::1 web.example.com\n",
			lookups: map[string][]string{"WEB.example.com.": {"10.0.0.2", "10.0.0.1", "fd00::1"}},
		},
		{
			name:    "IPv6 with a zone",
			in:      "fe80::1%eth0 router\n",
			lookups: map[string][]string{"router": {"fe80::1%eth0"}},
		},
		{
			name:    "lines that do not parse are reported, not used",
			in:      "10.0.0.1 ok\n10.0.0.300 bad\n  010.0.0.1 octal\n10.0.0.4\nnot-an-address name\n",
			lookups: map[string][]string{"ok": {"10.0.0.1"}, "bad": nil, "octal": nil},
			warns: []string{
				`hosts:2:1: expected an IPv4 or IPv6 address: "10.0.0.300"`,
				`hosts:3:3: expected an IPv4 or IPv6 address: "010.0.0.1"`,
				`hosts:4:1: expected host names after the address: "10.0.0.4"`,
				`hosts:5:1: expected an IPv4 or IPv6 address: "not-an-address"`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(f.Bytes()); got != tc.in {
				t.Errorf("Bytes() = %q, want %q", got, tc.in)
			}
			for name, want := range tc.lookups {
				var w []netip.Addr
				if want != nil {
					w = addrs(want...)
				}
				if diff := cmp.Diff(w, f.Lookup(name), addrCmp); diff != "" {
					t.Errorf("Lookup(%q) mismatch (-want +got):\n%s", name, diff)
				}
			}
			var warns []string
			for _, w := range f.Warnings() {
				warns = append(warns, w.String())
			}
			if diff := cmp.Diff(tc.warns, warns); diff != "" {
				t.Errorf("Warnings() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadWarningsNameThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("10.0.0.1 a\n999.1.1.1 b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	w := f.Warnings()
	if len(w) != 1 || w[0].String() != path+`:2:1: expected an IPv4 or IPv6 address: "999.1.1.1"` {
		t.Errorf("Warnings() = %v", w)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want os.ErrNotExist", err)
	}
}

func TestNames(t *testing.T) {
	f, err := Parse(strings.NewReader("10.0.0.1 mgt.as.example.com mgt\n10.0.0.2 w1\n10.0.0.1 as.example.com mgt\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"mgt.as.example.com", "mgt", "as.example.com"}, f.Names(netip.MustParseAddr("10.0.0.1"))); diff != "" {
		t.Errorf("Names mismatch (-want +got):\n%s", diff)
	}
	if got := f.Names(netip.MustParseAddr("10.9.9.9")); got != nil {
		t.Errorf("Names(unknown) = %v, want nil", got)
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		host  string
		addrs []string
		want  string
	}{
		{"append", "127.0.0.1 localhost\n", "app", []string{"10.0.0.1"},
			"127.0.0.1 localhost\n10.0.0.1\tapp\n"},
		{"append after a missing final newline", "127.0.0.1 localhost", "app", []string{"10.0.0.1"},
			"127.0.0.1 localhost\n10.0.0.1\tapp\n"},
		{"append to a CRLF file", "127.0.0.1 localhost\r\n", "app", []string{"10.0.0.1"},
			"127.0.0.1 localhost\r\n10.0.0.1\tapp\r\n"},
		{"change the address in place", "# c\n10.0.0.1\tapp   # the app\n10.0.0.9 z\n", "app", []string{"10.0.0.2"},
			"# c\n10.0.0.2\tapp   # the app\n10.0.0.9 z\n"},
		{"move off a shared line", "10.0.0.1\tapp\tdb # both\n", "app", []string{"10.0.0.2"},
			"10.0.0.1\tdb # both\n10.0.0.2\tapp\n"},
		{"join a line with the address", "10.0.0.5 mgt.as.example.com # lb\n", "as.example.com", []string{"10.0.0.5"},
			"10.0.0.5 mgt.as.example.com as.example.com # lb\n"},
		{"unchanged when already set", "10.0.0.1 App\n", "app.", []string{"10.0.0.1"},
			"10.0.0.1 App\n"},
		{"several addresses", "10.0.0.1 app\n10.0.0.3 app\n", "app", []string{"10.0.0.1", "fd00::1", "10.0.0.1"},
			"10.0.0.1 app\nfd00::1 app\n"},
		{"duplicates removed", "10.0.0.1 app\n10.0.0.1 app x\n", "app", []string{"10.0.0.1"},
			"10.0.0.1 app\n10.0.0.1 x\n"},
		{"lines that do not parse are left alone", "10.0.0.300 app\n", "app", []string{"10.0.0.1"},
			"10.0.0.300 app\n10.0.0.1\tapp\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Set(tc.host, addrs(tc.addrs...)...); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(f.Bytes())); diff != "" {
				t.Errorf("after Set (-want +got):\n%s", diff)
			}
			want := addrs(tc.addrs...)
			want = slices.Compact(want)
			got := f.Lookup(tc.host)
			slices.SortFunc(got, netip.Addr.Compare)
			slices.SortFunc(want, netip.Addr.Compare)
			if diff := cmp.Diff(slices.Compact(want), got, addrCmp); diff != "" {
				t.Errorf("Lookup after Set (-want +got):\n%s", diff)
			}
			before := string(f.Bytes())
			if err := f.Set(tc.host, addrs(tc.addrs...)...); err != nil {
				t.Fatal(err)
			}
			if after := string(f.Bytes()); after != before {
				t.Errorf("second Set changed the file:\n%s", cmp.Diff(before, after))
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	const in = "10.0.0.1 app\n"
	tests := []struct {
		name    string
		host    string
		addrs   []netip.Addr
		invalid bool
	}{
		{"empty name", "", addrs("10.0.0.1"), true},
		{"underscore", "my_host", addrs("10.0.0.1"), true},
		{"leading hyphen", "-app", addrs("10.0.0.1"), true},
		{"empty label", "a..b", addrs("10.0.0.1"), true},
		{"long label", strings.Repeat("a", 64), addrs("10.0.0.1"), true},
		{"space", "a b", addrs("10.0.0.1"), true},
		{"no addresses", "app", nil, false},
		{"zero address", "app", []netip.Addr{{}}, false},
		{"zone with a comment sign", "app", []netip.Addr{netip.MustParseAddr("fe80::1%#0")}, false},
		{"zone with a space", "app", []netip.Addr{netip.MustParseAddr("fe80::1").WithZone("eth 0")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			err = f.Set(tc.host, tc.addrs...)
			if err == nil {
				t.Fatal("Set succeeded, want an error")
			}
			if errors.Is(err, ErrInvalidName) != tc.invalid {
				t.Errorf("errors.Is(%v, ErrInvalidName) = %v, want %v", err, !tc.invalid, tc.invalid)
			}
			if got := string(f.Bytes()); got != in {
				t.Errorf("failed Set changed the file to %q", got)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	f, err := Parse(strings.NewReader("# keep\n10.0.0.1 app db\n10.0.0.2\tAPP\n10.0.0.3 x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Remove("app.") {
		t.Fatal("Remove = false, want true")
	}
	if diff := cmp.Diff("# keep\n10.0.0.1 db\n10.0.0.3 x\n", string(f.Bytes())); diff != "" {
		t.Errorf("after Remove (-want +got):\n%s", diff)
	}
	if f.Lookup("app") != nil {
		t.Error("Lookup after Remove is not nil")
	}
	if f.Remove("app") {
		t.Error("second Remove = true, want false")
	}
}

// TestSetGolden applies the seed's host mapping to every system file and
// compares with testdata/golden.
func TestSetGolden(t *testing.T) {
	lb, db := netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("192.168.1.20")
	for _, tc := range systemFiles {
		t.Run(tc.file, func(t *testing.T) {
			f, err := Load(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range []struct {
				name string
				addr netip.Addr
			}{{"mgt.as.example.com", lb}, {"as.example.com", lb}, {"carbondb.mysql.example.com", db}} {
				if err := f.Set(e.name, e.addr); err != nil {
					t.Fatal(err)
				}
			}
			f.Remove("ip6-allrouters")
			got := f.Bytes()
			golden := filepath.Join("testdata", "golden", tc.file+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("edited file mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
