package main

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/carbonlb/carbonlb/membership"
)

func TestSidecarConfig(t *testing.T) {
	for _, tc := range []struct {
		url   string
		addr  string
		props map[string]string
		ok    bool
	}{
		{"https://127.0.0.1:8443/app", "127.0.0.1", map[string]string{membership.PropHTTPSPort: "8443", membership.PropHostName: "127.0.0.1"}, true},
		{"127.0.0.1:8080", "127.0.0.1", map[string]string{membership.PropHTTPPort: "8080", membership.PropHostName: "127.0.0.1"}, true},
		{"http://[fd00::5]:8080", "fd00::5", map[string]string{membership.PropHTTPPort: "8080", membership.PropHostName: "fd00::5"}, true},
		{"http://localhost:80", "", nil, false},
		{"ftp://127.0.0.1:21", "", nil, false},
		{"http://127.0.0.1", "", nil, false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			addr, props, err := sidecarConfig(tc.url)
			if (err == nil) != tc.ok {
				t.Fatalf("sidecarConfig: %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if addr != netip.MustParseAddr(tc.addr) {
				t.Errorf("address %v, want %s", addr, tc.addr)
			}
			if diff := cmp.Diff(tc.props, props); diff != "" {
				t.Errorf("properties (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzSidecarConfig(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8080", "https://[::1]:8443/x", "127.0.0.1:1", "ftp://x", "http://", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, props, err := sidecarConfig(s)
		if err != nil {
			return
		}
		if !addr.IsValid() || len(props) != 2 {
			t.Errorf("%q: %v %v", s, addr, props)
		}
	})
}
