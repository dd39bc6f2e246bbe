package site

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/carbonlb/carbonlb/balancer"
)

func TestStaticBackends(t *testing.T) {
	got, err := StaticBackends(" p1=http://127.0.0.1:1, 127.0.0.1:2 ; p2=https://127.0.0.1:3;")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]balancer.Backend{
		"p1": {{ID: "p1#1", URL: "http://127.0.0.1:1"}, {ID: "p1#2", URL: "http://127.0.0.1:2"}},
		"p2": {{ID: "p2#1", URL: "https://127.0.0.1:3"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"nopool", "=http://a"} {
		if _, err := StaticBackends(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

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
