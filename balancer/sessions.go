package balancer

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// SessionStore keeps the learned session → backend pins of StickyLearn. The
// built-in store is an in-memory table; a shared store (a database, a
// replicated cache) lets several balancer instances honour each other's
// learned sessions. Methods are called concurrently from request
// goroutines, so they must be safe for concurrent use, and fast: Lookup
// runs on every request that carries a session id.
type SessionStore interface {
	// Lookup returns the backend ID pinned to session id in pool and
	// extends the session's idle lifetime to ttl.
	Lookup(pool, id string, ttl time.Duration) (backendID string, ok bool)
	// Pin pins session id in pool to backendID with idle lifetime ttl.
	Pin(pool, id, backendID string, ttl time.Duration)
	// Forget removes session id of pool.
	Forget(pool, id string)
}

// sessionShards is the number of independently locked parts of the table.
const sessionShards = 64

// sessionTable is the built-in SessionStore: 64 independently locked
// open-addressing hash tables of 16-byte slots, keyed by a 64-bit seeded
// hash of (pool, session id), valued by an interned backend and an expiry.
// A lookup costs one probe sequence in one cache line in the common case.
// The session id itself is not stored: with a random per-table seed, two
// sessions would share a slot with probability about 3·10^-8 for a million
// sessions. When a shard is full (MaxSessions/64 entries), a new session
// evicts the one closest to expiry among the next 8 slots: for equal TTLs,
// an approximation of least-recently-used.
type sessionTable struct {
	seed   maphash.Seed
	base   int64 // origin of slot.expires, unix ns
	perCap int       // entries per shard
	shards [sessionShards]sessionShard

	mu       sync.Mutex                           // serializes additions to the intern tables
	interned atomic.Pointer[map[internKey]uint32] // (pool, backend ID) → index; copy on write
	names    atomic.Pointer[[]internKey]          // index → (pool, backend ID); copy on write
	pinned   atomic.Pointer[[]atomic.Int64]       // index → live entries; replaced on growth
}

type internKey struct{ pool, id string }

type sessionShard struct {
	mu    sync.Mutex    // protects the fields below
	slots []sessionSlot // len is a power of two; key 0 marks an empty slot
	n     int
	hand  uint64   // next slot the expiry sweep looks at
	_     [24]byte // keep shards on separate cache lines
}

type sessionSlot struct {
	key     uint64
	backend uint32 // interned (pool, backend ID)
	expires uint32 // seconds since table base
}

func newSessionTable(max int) *sessionTable {
	t := &sessionTable{seed: maphash.MakeSeed(), base: time.Now().UnixNano()}
	t.perCap = (max + sessionShards - 1) / sessionShards
	if t.perCap < 1 {
		t.perCap = 1
	}
	m := map[internKey]uint32{}
	t.interned.Store(&m)
	names := []internKey{{}} // index 0 unused
	t.names.Store(&names)
	p := make([]atomic.Int64, 1)
	t.pinned.Store(&p)
	for i := range t.shards {
		t.shards[i].slots = make([]sessionSlot, 16)
	}
	return t
}

func (t *sessionTable) key(pool, id string) uint64 {
	k := maphash.String(t.seed, id) ^ (maphash.String(t.seed, pool) * 0x9e3779b97f4a7c15)
	if k == 0 {
		k = 1 // 0 marks an empty slot
	}
	return k
}

// sec converts a unix time in ns to the table's seconds. The request path
// passes the time it already read: a clock read costs as much as a lookup.
func (t *sessionTable) sec(unixNano int64) uint32 {
	d := unixNano - t.base
	if d < 0 {
		return 0
	}
	return uint32(d / int64(time.Second))
}

func ttlSeconds(ttl time.Duration) uint32 {
	s := ttl / time.Second
	if s < 1 {
		s = 1
	}
	if s > 1<<31 {
		s = 1 << 31
	}
	return uint32(s)
}

func (t *sessionTable) intern(pool, id string) uint32 {
	k := internKey{pool, id}
	if i, ok := (*t.interned.Load())[k]; ok {
		return i
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.interned.Load()
	if i, ok := old[k]; ok {
		return i
	}
	names := append(append([]internKey(nil), *t.names.Load()...), k)
	i := uint32(len(names) - 1)
	m := make(map[internKey]uint32, len(old)+1)
	for kk, v := range old {
		m[kk] = v
	}
	m[k] = i
	oldp := *t.pinned.Load()
	p := make([]atomic.Int64, len(names))
	for j := range oldp {
		p[j].Store(oldp[j].Load())
	}
	// Counts added to the old slice between the copy and the swap are
	// lost; the count is a Status figure, not used for routing.
	t.pinned.Store(&p)
	t.names.Store(&names)
	t.interned.Store(&m)
	return i
}

func (t *sessionTable) count(i uint32, d int64) {
	p := *t.pinned.Load()
	if int(i) < len(p) {
		p[i].Add(d)
	}
}

// Pinned returns the number of live sessions pinned to backend id of pool.
func (t *sessionTable) Pinned(pool, id string) int {
	i, ok := (*t.interned.Load())[internKey{pool, id}]
	if !ok {
		return 0
	}
	p := *t.pinned.Load()
	if int(i) >= len(p) {
		return 0
	}
	n := p[i].Load()
	if n < 0 {
		n = 0
	}
	return int(n)
}

// Len returns the number of sessions in the table, expired ones not yet
// removed included.
func (t *sessionTable) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

func (t *sessionTable) shard(k uint64) *sessionShard { return &t.shards[k>>58] }

// Lookup implements SessionStore.
func (t *sessionTable) Lookup(pool, id string, ttl time.Duration) (string, bool) {
	return t.lookupAt(pool, id, ttl, time.Now().UnixNano())
}

func (t *sessionTable) lookupAt(pool, id string, ttl time.Duration, unixNano int64) (string, bool) {
	k := t.key(pool, id)
	now := t.sec(unixNano)
	s := t.shard(k)
	s.mu.Lock()
	i, ok := s.find(k)
	if !ok {
		s.mu.Unlock()
		return "", false
	}
	e := &s.slots[i]
	b := e.backend
	if now > e.expires {
		s.remove(i)
		s.mu.Unlock()
		t.count(b, -1)
		return "", false
	}
	e.expires = now + ttlSeconds(ttl)
	s.mu.Unlock()
	return (*t.names.Load())[b].id, true
}

// Pin implements SessionStore.
func (t *sessionTable) Pin(pool, id, backendID string, ttl time.Duration) {
	t.pinAt(pool, id, backendID, ttl, time.Now().UnixNano())
}

func (t *sessionTable) pinAt(pool, id, backendID string, ttl time.Duration, unixNano int64) {
	b := t.intern(pool, backendID)
	k := t.key(pool, id)
	now := t.sec(unixNano)
	exp := now + ttlSeconds(ttl)
	s := t.shard(k)
	var gone [2]uint32
	ng := 0
	s.mu.Lock()
	if i, ok := s.find(k); ok {
		e := &s.slots[i]
		old := e.backend
		e.backend, e.expires = b, exp
		s.mu.Unlock()
		if old != b {
			t.count(old, -1)
			t.count(b, 1)
		}
		return
	}
	// Sweep two slots for expired sessions, so idle ones do not wait for
	// the shard to fill.
	for range 2 {
		s.hand = (s.hand + 1) & uint64(len(s.slots)-1)
		if e := s.slots[s.hand]; e.key != 0 && now > e.expires {
			gone[ng] = e.backend
			ng++
			s.remove(s.hand)
		}
	}
	if s.n >= t.perCap {
		if b, ok := s.evict(k); ok && ng < len(gone) {
			gone[ng] = b
			ng++
		}
	}
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	i := k & mask
	for s.slots[i].key != 0 {
		i = (i + 1) & mask
	}
	s.slots[i] = sessionSlot{key: k, backend: b, expires: exp}
	s.n++
	s.mu.Unlock()
	for _, g := range gone[:ng] {
		t.count(g, -1)
	}
	t.count(b, 1)
}

// Forget implements SessionStore.
func (t *sessionTable) Forget(pool, id string) {
	k := t.key(pool, id)
	s := t.shard(k)
	s.mu.Lock()
	i, ok := s.find(k)
	if !ok {
		s.mu.Unlock()
		return
	}
	b := s.slots[i].backend
	s.remove(i)
	s.mu.Unlock()
	t.count(b, -1)
}

func (s *sessionShard) find(k uint64) (uint64, bool) {
	mask := uint64(len(s.slots) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch s.slots[i].key {
		case k:
			return i, true
		case 0:
			return 0, false
		}
	}
}

// evict removes the session closest to expiry among the 8 occupied slots
// that follow k's home slot.
func (s *sessionShard) evict(k uint64) (uint32, bool) {
	mask := uint64(len(s.slots) - 1)
	best, found := uint64(0), false
	seen := 0
	for i := k & mask; seen < 8 && seen < s.n; i = (i + 1) & mask {
		e := &s.slots[i]
		if e.key == 0 {
			continue
		}
		if !found || e.expires < s.slots[best].expires {
			best, found = i, true
		}
		seen++
	}
	if !found {
		return 0, false
	}
	b := s.slots[best].backend
	s.remove(best)
	return b, true
}

// remove empties slot i with backward-shift deletion, so probe sequences
// stay unbroken without tombstones.
func (s *sessionShard) remove(i uint64) {
	mask := uint64(len(s.slots) - 1)
	for j := (i + 1) & mask; s.slots[j].key != 0; j = (j + 1) & mask {
		home := s.slots[j].key & mask
		// Move j back to i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = sessionSlot{}
	s.n--
}

func (s *sessionShard) grow() {
	old := s.slots
	s.slots = make([]sessionSlot, len(old)*2)
	mask := uint64(len(s.slots) - 1)
	for _, e := range old {
		if e.key == 0 {
			continue
		}
		i := e.key & mask
		for s.slots[i].key != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = e
	}
}
