package membership_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/google/go-cmp/cmp"
)

func TestParseWKA(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"10.0.0.4:4000", []string{"10.0.0.4:4000"}},
		{"  127.0.0.1:4100 ", []string{"127.0.0.1:4100"}},
		{"[fd00::4]:4000", []string{"[fd00::4]:4000"}},
		{"[::1]:4000", []string{"[::1]:4000"}},
		{"Gateway-Worker:4000", []string{"gateway-worker:4000"}},
		{"mgr.esb.example.com.:4100", []string{"mgr.esb.example.com.:4100"}},
		{"10.0.0.[1-3]:4000", []string{"10.0.0.1:4000", "10.0.0.2:4000", "10.0.0.3:4000"}},
		{"10.0.0.[7-7]:4000", []string{"10.0.0.7:4000"}},
		{"192.168.1.[ 254 - 255 ]:4000", []string{"192.168.1.254:4000", "192.168.1.255:4000"}},
		{"10.0.0.1-3:4000", []string{"10.0.0.1:4000", "10.0.0.2:4000", "10.0.0.3:4000"}},
		{"10.0.0.7-7:4000", []string{"10.0.0.7:4000"}},
		{" 192.168.1.254-255:4000", []string{"192.168.1.254:4000", "192.168.1.255:4000"}},
		{"node-1:4000", []string{"node-1:4000"}},
		{"1-2.example.com:4000", []string{"1-2.example.com:4000"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := membership.ParseWKA(tc.in)
			if err != nil {
				t.Fatalf("ParseWKA(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseWKA(%q) mismatch (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestParseWKAErrors(t *testing.T) {
	for _, tc := range []struct {
		in      string
		col     int
		message string
	}{
		{"", 1, "empty"},
		{"10.0.0.4", 9, "missing :port"},
		{"10.0.0.4:", 10, "missing port"},
		{"10.0.0.4:http", 10, `port "http" is not a number`},
		{"10.0.0.4:70000", 10, "not between 1 and 65535"},
		{"10.0.0.4:0", 10, "not between 1 and 65535"},
		{":4000", 1, "missing host"},
		{"fd00::4:4000", 1, "must be in brackets"},
		{"[fd00::4]4000", 10, "want :port"},
		{"[10.0.0.1]:4000", 2, "not an IPv6 address"},
		{"[fd00::4:4000", 1, "missing ']'"},
		{"10.0.0.[5-1]:4000", 9, "range start 5 is greater than its end 1"},
		{"10.0.0.[1-300]:4000", 11, "range end: 300 is more than 255"},
		{"10.0.0.[1-10:4000", 13, "must end the address"},
		{"10.0.[1-10].1:4000", 14, "must end the address"},
		{"10.0.[1-10]:4000", 1, "only allowed in the last octet"},
		{"10.0.x.[1-10]:4000", 6, `octet 3: "x" is not a number`},
		{"10.0.0.[1]:4000", 9, "want [first-last]"},
		{"host_name!:4000", 10, `"!" is not allowed`},
		{"a..b:4000", 3, "empty label"},
		{"-a.b:4000", 1, `"-" is not allowed`},
		{"ELB_HOSTNAME:ELB_WELL_KNOWN_PORT", 14, "is not a number"},
		{"192.168.1.2-300:4000", 13, "range end: 300 is more than 255"},
		{"192.168.1.2-1000:4000", 13, "range end: 1000 is more than 255"},
		{"192.168.1.10-2:4000", 11, "range start 10 is greater than its end 2"},
		{"192.168.1.2-:4000", 13, "range end: empty"},
		{"192.168.1.-10:4000", 11, "range start: empty"},
		{"192.168.1.2-3-4:4000", 13, `range end: "3-4" is not a number`},
		{"192.168.1-3.4:4000", 10, "only allowed in the last octet"},
		{"192.168.2-10:4000", 1, "want an IPv4 address range a.b.c.d-e"},
		{"192.300.1.2-10:4000", 5, "octet 2: 300 is more than 255"},
		{" 10.0.0.5-1:4000", 9, "range start 5 is greater than its end 1"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := membership.ParseWKA(tc.in)
			var we *membership.WKAError
			if !errors.As(err, &we) {
				t.Fatalf("ParseWKA(%q) = %v, %v; want a *WKAError", tc.in, got, err)
			}
			if we.Col != tc.col || we.Expr != tc.in || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("ParseWKA(%q) error = %v (col %d); want col %d and %q", tc.in, err, we.Col, tc.col, tc.message)
			}
		})
	}
}

// TestParseWKAHazelcastRange reads the range as the Carbon and Hazelcast
// clustering guides write it: 192.168.1.2-10 is the last octet 2 to 10, nine
// members, the same as the bracket form.
func TestParseWKAHazelcastRange(t *testing.T) {
	got, err := membership.ParseWKA("192.168.1.2-10:4000")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 2; i <= 10; i++ {
		want = append(want, "192.168.1."+strconv.Itoa(i)+":4000")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseWKA(192.168.1.2-10:4000) mismatch (-want +got):\n%s", diff)
	}
	brackets, err := membership.ParseWKA("192.168.1.[2-10]:4000")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(brackets, got); diff != "" {
		t.Errorf("the two range forms differ (-brackets +dash):\n%s", diff)
	}
}

// FuzzParseWKA checks that ParseWKA never panics, that an error is a
// *WKAError pointing into the input, and that every address it returns
// parses again to itself. The seeds are the well-known members of the Carbon
// files in the shared test data (axis2.xml <member> hostName:port) and the
// range form of the clustering guides.
func FuzzParseWKA(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:4000",                   // carbon-kernel 4.4.x axis2.xml
		"172.17.0.2:4002",                  // carbon-kernel CARBON0172 node1 axis2.xml
		"gateway-worker:4000",              // docker-apim pattern-1 gateway-manager axis2.xml
		"integrator2:4000",                 // docker-ei pattern-10 integrator1 axis2.xml
		"ELB_HOSTNAME:ELB_WELL_KNOWN_PORT", // stratos-installer is axis2.xml placeholders
		"127.0.0.1:4001",                   // stratos throttling test axis2.xml
		"10.0.0.[1-10]:4000",               // the clustering guides' IP range
		"192.168.1.2-10:4000",              // the Carbon/Hazelcast guides' IP range
		"[fd00::1]:4000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := membership.ParseWKA(s)
		if err != nil {
			var we *membership.WKAError
			if !errors.As(err, &we) {
				t.Fatalf("ParseWKA(%q) error %v is not a *WKAError", s, err)
			}
			if we.Col < 1 || we.Col > len(s)+1 {
				t.Fatalf("ParseWKA(%q) error column %d outside the input", s, we.Col)
			}
			return
		}
		if len(got) == 0 || len(got) > 256 {
			t.Fatalf("ParseWKA(%q) = %d addresses", s, len(got))
		}
		for _, a := range got {
			again, err := membership.ParseWKA(a)
			if err != nil || len(again) != 1 || again[0] != a {
				t.Fatalf("ParseWKA(%q) gave %q, which parses to %q, %v", s, a, again, err)
			}
		}
	})
}
