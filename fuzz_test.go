package carbonlb_test

import (
	"net/netip"
	"net/url"
	"strconv"
	"testing"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/membership"
)

// FuzzMemberBackend checks that a member's backend URL, whatever its
// address and port properties, is a URL whose host is the member's address
// and whose port is the announced one.
func FuzzMemberBackend(f *testing.F) {
	for _, s := range [][3]string{
		{"10.0.0.1", "9763", ""},
		{"fd00::2", "9763", "9443"},
		{"fe80::1%eth0", "", "9443"},
		{"::ffff:10.0.0.1", "080", "x"},
		{"10.0.0.1", "65536", "-1"},
	} {
		f.Add(s[0], s[1], s[2], "")
	}
	f.Add("10.0.0.1", "1", "", "0") // not a scheme
	f.Add("fd00::2", "1", "2", "https")
	f.Fuzz(func(t *testing.T, addr, httpPort, httpsPort, scheme string) {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		m := membership.Member{Name: "n", Domain: "d", Addr: netip.AddrPortFrom(a, 4000),
			Properties: map[string]string{membership.PropHTTPPort: httpPort, membership.PropHTTPSPort: httpsPort}}
		b, ok := carbonlb.MemberBackend(m, scheme)
		if !ok {
			return
		}
		u, err := url.Parse(b.URL)
		if err != nil {
			t.Fatalf("MemberBackend(%s, %q, %q, %q).URL = %q: %v", addr, httpPort, httpsPort, scheme, b.URL, err)
		}
		want := httpPort
		if u.Scheme == "https" {
			want = httpsPort
		}
		p, _ := strconv.ParseUint(want, 10, 16)
		if u.Hostname() != a.String() || u.Port() != strconv.FormatUint(p, 10) {
			t.Errorf("MemberBackend(%s, %q, %q, %q).URL = %q: host %q port %q", addr, httpPort, httpsPort, scheme, b.URL, u.Hostname(), u.Port())
		}
	})
}
