package balancer

import (
	"hash/maphash"
	"strings"
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
// an approximation of least-recently-used. A SessionTable's table also
// keeps the ids (slotArray.ids) and reports its changes (changed).
type sessionTable struct {
	seed    maphash.Seed
	base    int64 // origin of slot.expires, unix ns
	perCap  int   // entries per shard
	shards  [sessionShards]sessionShard
	named   bool                // a SessionTable's: slot arrays keep ids; set before use
	changed func(SessionChange) // a SessionTable's callback, or nil; set before use

	mu       sync.Mutex                           // serializes additions to the intern tables
	interned atomic.Pointer[map[internKey]uint32] // (pool, backend ID) → index; copy on write
	names    atomic.Pointer[[]internKey]          // index → (pool, backend ID); copy on write
	pinned   atomic.Pointer[[]atomic.Int64]       // index → live entries; replaced on growth
}

type internKey struct{ pool, id string }

type sessionShard struct {
	mu   sync.Mutex                // serializes writers; protects n and hand
	seq  atomic.Uint64             // odd while a writer changes the slots (a seqlock for readers)
	arr  atomic.Pointer[slotArray] // replaced when the shard grows
	n    int
	hand uint64   // next slot the expiry sweep looks at
	_    [16]byte // keep shards on separate cache lines
}

// slotArray is an open-addressing table; len(s) is a power of two.
type slotArray struct {
	mask uint64
	s    []sessionSlot
	ids  []sessionName // a SessionTable's: ids[i] names s[i]; nil otherwise; the shard's mu protects it
}

// sessionSlot is 16 bytes: a key (0 marks an empty slot) and a value
// packing the interned backend (high half) and the expiry in seconds since
// the table's base (low half). Readers load both without the lock.
type sessionSlot struct {
	key atomic.Uint64
	val atomic.Uint64
}

func packVal(backend, expires uint32) uint64 { return uint64(backend)<<32 | uint64(expires) }

func newSlotArray(n int) *slotArray {
	return &slotArray{mask: uint64(n - 1), s: make([]sessionSlot, n)}
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
		t.shards[i].arr.Store(newSlotArray(16))
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
	// Names outlive the caller's strings (parts of a request or a message).
	k = internKey{strings.Clone(pool), strings.Clone(id)}
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

// lookupAt reads without the shard lock: it retries if a writer changed
// the shard meanwhile, and takes the lock only to extend the expiry (when
// it moves by more than 1/64 of the TTL) or to remove an expired session.
func (t *sessionTable) lookupAt(pool, id string, ttl time.Duration, unixNano int64) (string, bool) {
	k := t.key(pool, id)
	now := t.sec(unixNano)
	s := t.shard(k)
	for try := 0; ; try++ {
		if try == 8 {
			// Writers keep interfering: wait for them.
			s.mu.Lock()
			v, ok := s.find(k)
			s.mu.Unlock()
			return t.found(s, k, v, ok, now, ttl)
		}
		seq := s.seq.Load()
		if seq&1 != 0 {
			continue
		}
		a := s.arr.Load()
		var v uint64
		ok := false
		for i := k & a.mask; ; i = (i + 1) & a.mask {
			key := a.s[i].key.Load()
			if key == k {
				v, ok = a.s[i].val.Load(), true
				break
			}
			if key == 0 {
				break
			}
		}
		if s.seq.Load() == seq {
			return t.found(s, k, v, ok, now, ttl)
		}
	}
}

func (t *sessionTable) found(s *sessionShard, k, v uint64, ok bool, now uint32, ttl time.Duration) (string, bool) {
	if !ok {
		return "", false
	}
	b, exp := uint32(v>>32), uint32(v)
	if now > exp {
		s.mu.Lock()
		s.writing()
		if i, ok := s.findSlot(k); ok && uint32(s.arr.Load().s[i].val.Load()) < now {
			s.remove(i)
			s.done()
			s.mu.Unlock()
			t.count(b, -1)
			return "", false
		}
		s.done()
		s.mu.Unlock()
		return "", false
	}
	// Extend the expiry only when it moves by more than 1/64 of the TTL
	// (28 s of 30 minutes): a busy session costs no write per request.
	ts := ttlSeconds(ttl)
	if want := now + ts; want > exp+max(1, ts/64) || want < exp {
		s.mu.Lock()
		if i, ok := s.findSlot(k); ok {
			a := s.arr.Load()
			b = uint32(a.s[i].val.Load() >> 32)
			a.s[i].val.Store(packVal(b, want))
			// A refresh is told once per quarter TTL (sessionName.refresh).
			if t.changed != nil && a.ids != nil && a.ids[i].refresh(want, ts/4) {
				n := (*t.names.Load())[b]
				t.changed(SessionChange{Pool: n.pool, ID: a.ids[i].id, Backend: n.id, TTL: ttl})
			}
		}
		s.mu.Unlock()
	}
	return (*t.names.Load())[b].id, true
}

// writing and done bracket a writer's changes for lock-free readers.
func (s *sessionShard) writing() { s.seq.Add(1) }
func (s *sessionShard) done()    { s.seq.Add(1) }

// Pin implements SessionStore.
func (t *sessionTable) Pin(pool, id, backendID string, ttl time.Duration) {
	t.pinAt(pool, id, backendID, ttl, time.Now().UnixNano())
}

func (t *sessionTable) pinAt(pool, id, backendID string, ttl time.Duration, unixNano int64) {
	now := t.sec(unixNano)
	t.put(pool, id, backendID, ttl, now, now+ttlSeconds(ttl), true)
}

// put pins session id of pool to backendID until exp, now being now, both
// in the table's seconds; report says whether t.changed hears of it.
func (t *sessionTable) put(pool, id, backendID string, ttl time.Duration, now, exp uint32, report bool) {
	if t.named && !shareable(pool, id, backendID) {
		return // a SessionTable keeps no id it could not share
	}
	b := t.intern(pool, backendID)
	k := t.key(pool, id)
	s := t.shard(k)
	var gone [3]uint32
	ng := 0
	s.mu.Lock()
	if i, ok := s.findSlot(k); ok {
		a := s.arr.Load()
		old := uint32(a.s[i].val.Load() >> 32)
		a.s[i].val.Store(packVal(b, exp))
		if a.ids != nil {
			if !report {
				a.ids[i].set(id, exp)
			} else if a.ids[i].note(id, exp, ttlSeconds(ttl)/4, old != b) && t.changed != nil {
				t.changed(SessionChange{Pool: pool, ID: id, Backend: backendID, TTL: ttl})
			}
		}
		s.mu.Unlock()
		if old != b {
			t.count(old, -1)
			t.count(b, 1)
		}
		return
	}
	s.writing()
	// Sweep two slots for expired sessions, so idle ones do not wait for
	// the shard to fill.
	for range 2 {
		a := s.arr.Load()
		s.hand = (s.hand + 1) & a.mask
		if a.s[s.hand].key.Load() != 0 {
			if v := a.s[s.hand].val.Load(); now > uint32(v) {
				gone[ng] = uint32(v >> 32)
				ng++
				s.remove(s.hand)
			}
		}
	}
	if s.n >= t.perCap {
		if g, ok := s.evict(k); ok {
			gone[ng] = g
			ng++
		}
	}
	a := s.arr.Load()
	if (s.n+1)*4 > len(a.s)*3 {
		a = s.grow()
	}
	i := k & a.mask
	for a.s[i].key.Load() != 0 {
		i = (i + 1) & a.mask
	}
	a.s[i].val.Store(packVal(b, exp))
	a.s[i].key.Store(k)
	s.n++
	s.done()
	if a.ids != nil {
		a.ids[i].set(id, exp)
		if report && t.changed != nil {
			t.changed(SessionChange{Pool: pool, ID: id, Backend: backendID, TTL: ttl})
		}
	}
	s.mu.Unlock()
	for _, g := range gone[:ng] {
		t.count(g, -1)
	}
	t.count(b, 1)
}

// Forget implements SessionStore.
func (t *sessionTable) Forget(pool, id string) { t.forget(pool, id, true) }

// forget removes session id of pool; report says whether t.changed hears
// of it.
func (t *sessionTable) forget(pool, id string, report bool) {
	k := t.key(pool, id)
	s := t.shard(k)
	s.mu.Lock()
	i, ok := s.findSlot(k)
	if !ok {
		s.mu.Unlock()
		return
	}
	b := uint32(s.arr.Load().s[i].val.Load() >> 32)
	s.writing()
	s.remove(i)
	s.done()
	if report && t.changed != nil {
		t.changed(SessionChange{Pool: pool, ID: id})
	}
	s.mu.Unlock()
	t.count(b, -1)
}

// find returns k's value; s.mu must be held.
func (s *sessionShard) find(k uint64) (uint64, bool) {
	i, ok := s.findSlot(k)
	if !ok {
		return 0, false
	}
	return s.arr.Load().s[i].val.Load(), true
}

// findSlot returns k's slot; s.mu must be held.
func (s *sessionShard) findSlot(k uint64) (uint64, bool) {
	a := s.arr.Load()
	for i := k & a.mask; ; i = (i + 1) & a.mask {
		switch a.s[i].key.Load() {
		case k:
			return i, true
		case 0:
			return 0, false
		}
	}
}

// evict removes the session closest to expiry among the 8 occupied slots
// that follow k's home slot. s.mu must be held, within writing/done.
func (s *sessionShard) evict(k uint64) (uint32, bool) {
	a := s.arr.Load()
	best, found := uint64(0), false
	var bestExp uint32
	seen := 0
	for i := k & a.mask; seen < 8 && seen < s.n; i = (i + 1) & a.mask {
		if a.s[i].key.Load() == 0 {
			continue
		}
		if e := uint32(a.s[i].val.Load()); !found || e < bestExp {
			best, bestExp, found = i, e, true
		}
		seen++
	}
	if !found {
		return 0, false
	}
	b := uint32(a.s[best].val.Load() >> 32)
	s.remove(best)
	return b, true
}

// remove empties slot i with backward-shift deletion, so probe sequences
// stay unbroken without tombstones. s.mu must be held, within
// writing/done.
func (s *sessionShard) remove(i uint64) {
	a := s.arr.Load()
	for j := (i + 1) & a.mask; ; j = (j + 1) & a.mask {
		key := a.s[j].key.Load()
		if key == 0 {
			break
		}
		home := key & a.mask
		// Move j back to i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			a.s[i].val.Store(a.s[j].val.Load())
			a.s[i].key.Store(key)
			if a.ids != nil {
				a.ids[i] = a.ids[j]
			}
			i = j
		}
	}
	a.s[i].key.Store(0)
	a.s[i].val.Store(0)
	if a.ids != nil {
		a.ids[i] = sessionName{} // the id goes with its session
	}
	s.n--
}

// grow doubles the table. s.mu must be held, within writing/done.
func (s *sessionShard) grow() *slotArray {
	old := s.arr.Load()
	a := newSlotArray(len(old.s) * 2)
	if old.ids != nil {
		a.ids = make([]sessionName, len(a.s))
	}
	for j := range old.s {
		key := old.s[j].key.Load()
		if key == 0 {
			continue
		}
		i := key & a.mask
		for a.s[i].key.Load() != 0 {
			i = (i + 1) & a.mask
		}
		a.s[i].key.Store(key)
		a.s[i].val.Store(old.s[j].val.Load())
		if a.ids != nil {
			a.ids[i] = old.ids[j]
		}
	}
	s.arr.Store(a)
	return a
}
