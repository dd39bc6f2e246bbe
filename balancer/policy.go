package balancer

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// limit is the connection limit of be for requests of s: Backend.MaxConns,
// else Service.MaxConns; 0 means none.
func (s *service) limit(be *backend) int64 {
	if n := be.maxConns.Load(); n > 0 {
		return n
	}
	return int64(s.MaxConns)
}

// pick chooses a backend of p for a new (unpinned) request, skipping those
// in tried, and claims it (see backend.claim). It returns nil when none is
// usable; fail-open then picks among all backends that are not removed.
// full reports, when it returns nil, that a usable backend is only at its
// connection limit: the request may wait for it.
func (s *service) pick(p *pool, now int64, tried []*backend) (be *backend, trial uint64, full bool) {
	skip := tried
	for range 4 { // a lost trial-slot or connection-slot race makes us pick again
		b := s.choose(p, now, skip, false)
		anyway := false
		if b == nil && s.Health.FailOpen {
			b, anyway = s.choose(p, now, skip, true), true
		}
		if b == nil {
			break
		}
		if anyway {
			if b.acquire(s.limit(b)) {
				return b, 0, false
			}
		} else if t, ok := b.claim(now, s.limit(b)); ok {
			return b, t, false
		}
		skip = append(skip[:len(skip):len(skip)], b)
	}
	return nil, 0, s.anyFull(p, now, tried)
}

// anyFull reports whether a backend of p not in tried would take a new
// request but for its connection limit.
func (s *service) anyFull(p *pool, now int64, tried []*backend) bool {
	for _, b := range p.backends {
		if b.full(s.limit(b)) && !b.draining.Load() && !isTried(tried, b) &&
			(b.usable(now) || (s.Health.FailOpen && !b.removed.Load())) {
			return true
		}
	}
	return false
}

func isTried(tried []*backend, b *backend) bool {
	for _, t := range tried {
		if t == b {
			return true
		}
	}
	return false
}

func (s *service) eligible(b *backend, now int64, tried []*backend, anyway bool) bool {
	if anyway {
		return !b.removed.Load() && !isTried(tried, b) && !b.full(s.limit(b))
	}
	return !b.draining.Load() && b.usable(now) && !isTried(tried, b) && !b.full(s.limit(b))
}

// filter says which backends a selector may choose: those s.eligible
// accepts. It is passed by value, so a selector call allocates nothing.
type filter struct {
	s      *service
	now    int64
	tried  []*backend
	anyway bool // fail-open: health aside
}

func (f filter) ok(b *backend) bool { return f.s.eligible(b, f.now, f.tried, f.anyway) }

// A selector is a Policy: it chooses, among the backends of p that f
// accepts, the one for a new request, or nil when f accepts none. slow is
// HealthCheck.SlowStart, which ramps a weight (backend.effWeight).
// Implementations are safe for concurrent use; their state lives in the
// pool.
type selector interface {
	choose(p *pool, f filter, slow time.Duration) *backend
}

var (
	_ selector = roundRobin{}
	_ selector = leastConn{}
	_ selector = powerOfTwo{}
)

func (s *service) choose(p *pool, now int64, tried []*backend, anyway bool) *backend {
	f := filter{s: s, now: now, tried: tried, anyway: anyway}
	switch len(p.backends) {
	case 0:
		return nil
	case 1:
		if b := p.backends[0]; f.ok(b) {
			return b
		}
		return nil
	}
	// A switch rather than a call through the selector interface: passed
	// to an interface method, f's tried slice would escape and cost an
	// allocation per request.
	switch s.Policy {
	case LeastConn:
		return leastConn{}.choose(p, f, s.Health.SlowStart)
	case PowerOfTwo:
		return powerOfTwo{}.choose(p, f, s.Health.SlowStart)
	}
	return roundRobin{}.choose(p, f, s.Health.SlowStart)
}

// roundRobin is smooth weighted round robin (nginx's): each pick adds every
// eligible backend's weight to its current weight, takes the largest, and
// subtracts the total from it.
type roundRobin struct{}

func (roundRobin) choose(p *pool, f filter, slow time.Duration) *backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best, total int
	best = -1
	for i, b := range p.backends {
		if !f.ok(b) {
			continue
		}
		w := b.effWeight(f.now, slow)
		p.cur[i] += w
		total += w
		if best < 0 || p.cur[i] > p.cur[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	p.cur[best] -= total
	return p.backends[best]
}

// leastConn takes the backend with the fewest active requests per unit of
// weight, scanning from a rotating start so that ties spread.
type leastConn struct{}

func (leastConn) choose(p *pool, f filter, slow time.Duration) *backend {
	n := len(p.backends)
	var best *backend
	var bestLoad, bestW int64
	start := int(p.rr.Add(1))
	for k := range n {
		b := p.backends[(start+k)%n]
		if !f.ok(b) {
			continue
		}
		load, w := b.active.Load(), int64(b.effWeight(f.now, slow))
		if best == nil || load*bestW < bestLoad*w {
			best, bestLoad, bestW = b, load, w
		}
	}
	return best
}

// powerOfTwo draws two eligible backends at random and keeps the one with
// fewer active requests per unit of weight.
type powerOfTwo struct{}

func (powerOfTwo) choose(p *pool, f filter, slow time.Duration) *backend {
	n := len(p.backends)
	var c [2]*backend
	m := 0
	for try := 0; try < 2*n && m < 2; try++ {
		b := p.backends[rand.IntN(n)]
		if f.ok(b) && (m == 0 || c[0] != b) {
			c[m] = b
			m++
		}
	}
	switch m {
	case 0:
		// Few eligible backends: fall back to a scan.
		for _, b := range p.backends {
			if f.ok(b) {
				return b
			}
		}
		return nil
	case 1:
		return c[0]
	}
	a, b := c[0], c[1]
	wa, wb := int64(a.effWeight(f.now, slow)), int64(b.effWeight(f.now, slow))
	if (b.active.Load()+1)*wa < (a.active.Load()+1)*wb {
		return b
	}
	return a
}

// Policy chooses a backend for a request that no session pins.
type Policy int

const (
	// RoundRobin is smooth weighted round robin (nginx's algorithm): over
	// any window, each backend gets requests in proportion to its weight,
	// interleaved rather than in bursts.
	RoundRobin Policy = iota
	// LeastConn picks the backend with the fewest active requests per unit
	// of weight.
	LeastConn
	// PowerOfTwo picks two backends at random and keeps the one with fewer
	// active requests per unit of weight.
	PowerOfTwo
)

// String returns "round_robin", "least_conn" or "p2c".
func (p Policy) String() string {
	switch p {
	case RoundRobin:
		return "round_robin"
	case LeastConn:
		return "least_conn"
	case PowerOfTwo:
		return "p2c"
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// ParsePolicy parses "round_robin", "least_conn" or "p2c".
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "round_robin", "roundrobin", "rr", "":
		return RoundRobin, nil
	case "least_conn", "leastconn":
		return LeastConn, nil
	case "p2c", "power_of_two":
		return PowerOfTwo, nil
	}
	return 0, fmt.Errorf("balancer: policy %q: want round_robin, least_conn or p2c", s)
}
