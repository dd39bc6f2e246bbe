package front

import (
	"errors"
	"testing"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/google/go-cmp/cmp"
)

// TestPoolsOverridesSurviveUpdates drains and reweights a backend, then
// sets its pool again as a cluster feed or a reload does: the operator's
// changes stay until undone.
func TestPoolsOverridesSurviveUpdates(t *testing.T) {
	lb, err := balancer.New(balancer.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	p := NewPools(lb)
	members := []balancer.Backend{{ID: "a", URL: "http://10.0.0.1:9763"}, {ID: "b", URL: "http://10.0.0.2:9763"}}
	if err := p.SetBackends("default", members); err != nil {
		t.Fatal(err)
	}
	state := func() map[string]string {
		out := map[string]string{}
		for _, pool := range lb.Status().Pools {
			for _, b := range pool.Backends {
				out[b.ID] = b.State
				if b.Weight != 1 {
					out[b.ID] += " weight"
				}
			}
		}
		return out
	}
	for _, step := range []struct {
		name string
		do   func() error
		want map[string]string
	}{
		{"drain a", func() error { return p.Drain("default", "a") }, map[string]string{"a": "draining", "b": "up"}},
		{"reweight b", func() error { return p.SetWeight("default", "b", 3) }, map[string]string{"a": "draining", "b": "up weight"}},
		{"the feed sets the pool again", func() error { return p.SetBackends("default", members) }, map[string]string{"a": "draining", "b": "up weight"}},
		{"a member joins", func() error {
			return p.SetBackends("default", append(members, balancer.Backend{ID: "c", URL: "http://10.0.0.3:9763"}))
		}, map[string]string{"a": "draining", "b": "up weight", "c": "up"}},
		{"undrain a", func() error { return p.Undrain("default", "a") }, map[string]string{"a": "up", "b": "up weight", "c": "up"}},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if diff := cmp.Diff(step.want, state()); diff != "" {
			t.Errorf("%s: states (-want +got):\n%s", step.name, diff)
		}
	}
	if err := p.Drain("default", "z"); !errors.Is(err, ErrNoBackend) {
		t.Errorf("Drain of an unknown backend: %v, want ErrNoBackend", err)
	}
	if err := p.SetWeight("default", "a", 0); err == nil {
		t.Error("SetWeight 0: no error")
	}
}

// TestStaticAndClusterPool: a pool named by the static list and filled by
// the cluster gets both; a change of either source keeps the other's
// backends, whichever writes last; a static backend wins an ID both give.
func TestStaticAndClusterPool(t *testing.T) {
	lb, err := balancer.New(balancer.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	p := NewPools(lb)
	ids := func() []string {
		var out []string
		for _, pool := range lb.Status().Pools {
			for _, b := range pool.Backends {
				out = append(out, b.ID+"="+b.URL)
			}
		}
		return out
	}
	static := []balancer.Backend{{ID: "p#1", URL: "http://10.0.0.9:8080"}}
	member := func(id, url string) balancer.Backend { return balancer.Backend{ID: id, URL: url} }
	for _, step := range []struct {
		name string
		do   func() error
		want []string
	}{
		{"static at start", func() error { return p.SetStatic("p", static) }, []string{"p#1=http://10.0.0.9:8080"}},
		{"the cluster adds members", func() error {
			return p.SetBackends("p", []balancer.Backend{member("w1", "http://10.0.0.1:9763"), member("w2", "http://10.0.0.2:9763")})
		}, []string{"p#1=http://10.0.0.9:8080", "w1=http://10.0.0.1:9763", "w2=http://10.0.0.2:9763"}},
		{"a reload re-sets the static list", func() error { return p.SetStatic("p", static) },
			[]string{"p#1=http://10.0.0.9:8080", "w1=http://10.0.0.1:9763", "w2=http://10.0.0.2:9763"}},
		{"a member leaves", func() error { return p.SetBackends("p", []balancer.Backend{member("w2", "http://10.0.0.2:9763")}) },
			[]string{"p#1=http://10.0.0.9:8080", "w2=http://10.0.0.2:9763"}},
		{"a member with a static backend's ID", func() error {
			return p.SetBackends("p", []balancer.Backend{member("p#1", "http://10.0.0.7:9763"), member("w2", "http://10.0.0.2:9763")})
		}, []string{"p#1=http://10.0.0.9:8080", "w2=http://10.0.0.2:9763"}},
		{"the static list drops the pool", func() error { return p.SetStatic("p", nil) },
			[]string{"p#1=http://10.0.0.7:9763", "w2=http://10.0.0.2:9763"}},
		{"a refused set changes nothing", func() error { return p.SetStatic("p", []balancer.Backend{{ID: "", URL: "x"}}) },
			[]string{"p#1=http://10.0.0.7:9763", "w2=http://10.0.0.2:9763"}},
	} {
		err := step.do()
		if (err != nil) != (step.name == "a refused set changes nothing") {
			t.Fatalf("%s: %v", step.name, err)
		}
		if diff := cmp.Diff(step.want, ids()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", step.name, diff)
		}
	}
}
