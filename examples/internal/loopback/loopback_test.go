package loopback

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/carbonlb/carbonlb/hosts"
)

func TestResolver(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	r, err := Resolver(map[string]netip.Addr{"mgt.localhost": lo})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		name string
		want []netip.Addr
		err  error
	}{
		{"mgt.localhost", []netip.Addr{lo}, nil},
		{"MGT.localhost.", []netip.Addr{lo}, nil},
		{"127.0.0.2", []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil},
		{"other.localhost", nil, hosts.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.LookupAddr(context.Background(), tc.name)
			if tc.err != nil {
				if err == nil || !errors.Is(err, tc.err) {
					t.Fatalf("LookupAddr: %v %v, want %v", got, err, tc.err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) || got[0] != tc.want[0] {
				t.Errorf("LookupAddr = %v, %v, want %v", got, err, tc.want)
			}
		})
	}
}

func TestTiming(t *testing.T) {
	tm := Timing()
	if tm.ProbeTimeout >= tm.ProbeInterval || tm.TCPTimeout <= tm.ProbeInterval {
		t.Errorf("Timing() = %+v: probes must time out within their interval", tm)
	}
}
