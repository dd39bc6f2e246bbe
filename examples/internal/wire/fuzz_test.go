package wire

import (
	"strings"
	"testing"
)

func FuzzStaticBackends(f *testing.F) {
	for _, s := range []string{"p=http://127.0.0.1:1,127.0.0.1:2;q=https://[::1]:3", "", ";;", "=", "p=", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pools, err := StaticBackends(s)
		if err != nil {
			return
		}
		for pool, bes := range pools {
			if pool == "" || strings.ContainsAny(pool, ";=") {
				t.Errorf("pool name %q from %q", pool, s)
			}
			for _, b := range bes {
				if !strings.Contains(b.URL, "://") || !strings.HasPrefix(b.ID, pool+"#") {
					t.Errorf("backend %+v from %q", b, s)
				}
			}
		}
	})
}

func FuzzSidecarConfig(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8080", "https://[::1]:8443/x", "127.0.0.1:1", "ftp://x", "http://", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, props, err := SidecarConfig(s)
		if err != nil {
			return
		}
		if !addr.IsValid() || len(props) != 2 {
			t.Errorf("%q: %v %v", s, addr, props)
		}
	})
}
