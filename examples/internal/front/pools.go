package front

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
)

// ErrNoBackend is returned by Pools' Drain and SetWeight for a backend
// that no pool has.
var ErrNoBackend = errors.New("front: no such backend")

// Pools sets a balancer's pools from two sources, with an operator's
// overrides applied. The sources are the cluster (SetBackends: a
// carbonlb.Feed) and the configuration (SetStatic: backends that are not
// members); a pool both name gets both, merged: the static backends, then
// the members whose IDs no static backend uses. Each source replaces only
// its own part, so neither undoes the other, whichever writes last. A
// backend drained or given a weight through Drain or SetWeight stays so
// across every later change of its pool until Undrain or another
// SetWeight, as long as the pool has a backend with its ID. Whatever sets
// pools goes through Pools rather than the balancer.
//
// Its methods are safe for concurrent use.
type Pools struct {
	lb *balancer.Balancer

	mu     sync.Mutex                    // serialises SetBackends; protects the maps
	fed    map[string][]balancer.Backend // the cluster's backends per pool
	static map[string][]balancer.Backend // the configuration's backends per pool
	drain  map[backendKey]bool           // backends drained by the operator
	weight map[backendKey]int            // weights set by the operator
}

type backendKey struct{ pool, id string }

var _ carbonlb.Backends = (*Pools)(nil)

// NewPools returns Pools that set lb's pools.
func NewPools(lb *balancer.Balancer) *Pools {
	return &Pools{lb: lb, fed: map[string][]balancer.Backend{}, static: map[string][]balancer.Backend{},
		drain: map[backendKey]bool{}, weight: map[backendKey]int{}}
}

// SetBackends sets the backends pool gets from the cluster, keeping its
// static ones, with the overrides applied. It returns the balancer's
// error, and then keeps the pool's previous backends.
func (p *Pools) SetBackends(pool string, backends []balancer.Backend) error {
	return p.set(p.fed, pool, backends)
}

// SetStatic sets the backends pool gets from the configuration, keeping
// those the cluster gives it; nil removes them.
func (p *Pools) SetStatic(pool string, backends []balancer.Backend) error {
	return p.set(p.static, pool, backends)
}

func (p *Pools) set(src map[string][]balancer.Backend, pool string, backends []balancer.Backend) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, had := src[pool]
	if len(backends) == 0 {
		delete(src, pool)
	} else {
		src[pool] = slices.Clone(backends)
	}
	if err := p.lb.SetBackends(pool, p.apply(pool, p.merged(pool))); err != nil {
		if had {
			src[pool] = old
		} else {
			delete(src, pool)
		}
		return err
	}
	return nil
}

// merged returns pool's static backends, then its cluster backends whose
// IDs no static backend uses. p.mu is held.
func (p *Pools) merged(pool string) []balancer.Backend {
	out := slices.Clone(p.static[pool])
	for _, b := range p.fed[pool] {
		if !slices.ContainsFunc(out, func(s balancer.Backend) bool { return s.ID == b.ID }) {
			out = append(out, b)
		}
	}
	return out
}

// apply returns a copy of bes with pool's overrides applied. p.mu is held.
func (p *Pools) apply(pool string, bes []balancer.Backend) []balancer.Backend {
	out := slices.Clone(bes)
	for i := range out {
		k := backendKey{pool, out[i].ID}
		if p.drain[k] {
			out[i].Draining = true
		}
		if w, ok := p.weight[k]; ok {
			out[i].Weight = w
		}
	}
	return out
}

// Drain makes the backend id of pool drain: it keeps serving the sessions
// pinned to it and gets no new ones. It returns ErrNoBackend when the pool
// has no such backend.
func (p *Pools) Drain(pool, id string) error {
	return p.override(pool, id, func(k backendKey) { p.drain[k] = true })
}

// Undrain ends what Drain started: the backend is drained again only when
// whatever sets the pool says so.
func (p *Pools) Undrain(pool, id string) error {
	return p.override(pool, id, func(k backendKey) { delete(p.drain, k) })
}

// SetWeight gives the backend id of pool the weight w (at least 1) in
// place of the one whatever sets the pool gives it.
func (p *Pools) SetWeight(pool, id string, w int) error {
	if w < 1 {
		return fmt.Errorf("front: weight %d: want at least 1", w)
	}
	return p.override(pool, id, func(k backendKey) { p.weight[k] = w })
}

func (p *Pools) override(pool, id string, change func(backendKey)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	bes := p.merged(pool)
	if !slices.ContainsFunc(bes, func(b balancer.Backend) bool { return b.ID == id }) {
		return fmt.Errorf("%w: %q in pool %q", ErrNoBackend, id, pool)
	}
	change(backendKey{pool, id})
	return p.lb.SetBackends(pool, p.apply(pool, bes))
}
