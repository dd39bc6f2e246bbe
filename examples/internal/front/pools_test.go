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
