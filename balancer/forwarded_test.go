package balancer

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	peer := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct {
		peer netip.Addr
		xff  []string
		want string
	}{
		{netip.MustParseAddr("192.0.2.9"), []string{"1.1.1.1"}, "192.0.2.9"},
		{peer, []string{"1.1.1.1"}, "1.1.1.1"},
		{peer, []string{"6.6.6.6, 1.1.1.1, 10.0.0.7"}, "1.1.1.1"},
		{peer, []string{"6.6.6.6", "1.1.1.1"}, "1.1.1.1"},
		{peer, []string{"garbage"}, "10.0.0.1"},
		{peer, nil, "10.0.0.1"},
	} {
		if got := clientAddr(tc.peer, tc.xff, nil, trusted); got.String() != tc.want {
			t.Errorf("%v %q → %v, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

// TestClientAddrForwarded: without X-Forwarded-For, the for= nodes of RFC
// 7239 Forwarded are walked the same way; X-Forwarded-For wins when both
// are present.
func TestClientAddrForwarded(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	peer := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct {
		peer netip.Addr
		xff  []string
		fwd  []string
		want string
	}{
		{netip.MustParseAddr("192.0.2.9"), nil, []string{"for=1.1.1.1"}, "192.0.2.9"},
		{peer, nil, []string{"for=1.1.1.1"}, "1.1.1.1"},
		{peer, nil, []string{"For=1.1.1.1;proto=https"}, "1.1.1.1"},
		{peer, nil, []string{"for=6.6.6.6, for=1.1.1.1:4711;by=10.0.0.7, for=10.0.0.7"}, "1.1.1.1"},
		{peer, nil, []string{"for=6.6.6.6", "for=\"[2001:db8:cafe::17]:4711\""}, "2001:db8:cafe::17"},
		{peer, nil, []string{"for=1.1.1.1;host=\"a,b;c\", for=\"[fd00::1]\""}, "1.1.1.1"},
		{peer, nil, []string{"proto=http", "host=x;for=1.1.1.1"}, "1.1.1.1"},
		{peer, nil, []string{"for=1.1.1.1, proto=http"}, "10.0.0.1"}, // the nearest proxy did not say
		{peer, nil, []string{"for=1.1.1.1, for=unknown"}, "10.0.0.1"},
		{peer, nil, []string{"for=1.1.1.1, for=_hidden, for=10.0.0.9"}, "10.0.0.9"},
		{peer, nil, []string{"for=2001:db8::1"}, "10.0.0.1"},
		{peer, nil, []string{"for=\"[2001:db8::1\""}, "10.0.0.1"},
		{peer, nil, []string{"for=\"[2001:db8::1]x\""}, "10.0.0.1"},
		{peer, []string{"2.2.2.2"}, []string{"for=1.1.1.1"}, "2.2.2.2"},
	} {
		if got := clientAddr(tc.peer, tc.xff, tc.fwd, trusted); got.String() != tc.want {
			t.Errorf("%v X-Forwarded-For %q Forwarded %q → %v, want %s", tc.peer, tc.xff, tc.fwd, got, tc.want)
		}
	}
}

func FuzzClientAddr(f *testing.F) {
	f.Add("6.6.6.6, 10.0.0.2", "", "10.0.0.1")
	f.Add("[::1], 2001:db8::1", "", "::1")
	f.Add(",,,", "", "10.0.0.1")
	f.Add("", "for=6.6.6.6, for=\"[::1]:80\";proto=https", "::1")
	f.Add("", "for=\"\\\";,\", for=10.0.0.2", "10.0.0.1")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	f.Fuzz(func(t *testing.T, xff, fwd, peer string) {
		p, err := netip.ParseAddr(peer)
		if err != nil {
			return
		}
		var xffs, fwds []string
		if xff != "" {
			xffs = []string{xff}
		}
		if fwd != "" {
			fwds = []string{fwd}
		}
		a := clientAddr(p, xffs, fwds, trusted)
		if !a.IsValid() {
			t.Errorf("invalid client address for X-Forwarded-For %q Forwarded %q from %v", xff, fwd, p)
		}
		if !inPrefixes(p, trusted) && a != p {
			t.Errorf("untrusted peer %v attributed to %v", p, a)
		}
	})
}

func TestForwardedIPv6(t *testing.T) {
	cfg := testConfig(StickyOff)
	cfg.Forwarded = true
	lb := mustNew(t, cfg)
	r := httptest.NewRequest("GET", "http://[2001:db8::1]:8443/", nil)
	r.RemoteAddr = "[2001:db8::7]:50000"
	peerStr, peer := splitPeer(r.RemoteAddr)
	lb.prepareHeaders(r, lb.state.Load(), normHost(r.Host), peerStr, peer)
	for k, want := range map[string]string{
		"X-Forwarded-For": "2001:db8::7",
		"Forwarded":       `for="[2001:db8::7]";host="[2001:db8::1]:8443";proto=http`,
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestForwardedServerHost: X-Forwarded-Server is the request's host name
// without its port by default (nginx's $host in seed 000's
// "proxy_set_header X-Forwarded-Server $host"), or Config.Name when set.
func TestForwardedServerHost(t *testing.T) {
	n := newCarbonNode(t, "n")
	for _, tc := range []struct {
		name, cfgName, host, want string
	}{
		{"service host", "", "esb.example.com", "esb.example.com"},
		{"with port and upper case", "", "ESB.Example.com:8243", "esb.example.com"},
		{"address", "", "127.0.0.1:8280", "127.0.0.1"},
		{"IPv6 address", "", "[::1]:8280", "[::1]"},
		{"the balancer's name", "elb01", "esb.example.com", "elb01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(StickyOff)
			cfg.Services[0].Hosts = []string{"esb.example.com"}
			cfg.Name = tc.cfgName
			lb := mustNew(t, cfg)
			lb.SetBackends("p", []Backend{n.backend()})
			front, c := newFront(t, lb)
			get(t, c, front.URL+"/", tc.host)
			if got := n.header().Get("X-Forwarded-Server"); got != tc.want {
				t.Errorf("X-Forwarded-Server = %q, want %q", got, tc.want)
			}
		})
	}
}
