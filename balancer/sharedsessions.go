package balancer

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SessionChange is one change to a SessionTable's learned sessions. It is
// a plain value, to be copied and sent freely.
type SessionChange struct {
	Pool    string        // the pool (Service.Pool) the session belongs to
	ID      string        // the session id (the cookie's value)
	Backend string        // the backend ID it is pinned to; "" when the session was forgotten
	TTL     time.Duration // the session's remaining idle lifetime (0 with Backend "")
}

// ErrSessionChange is wrapped by the errors SessionTable.Apply returns for
// a change it refuses.
var ErrSessionChange = errors.New("balancer: bad session change")

const (
	// maxSessionString bounds the pool, id and backend ID of a session a
	// SessionTable keeps: no browser need keep a longer cookie (RFC 6265,
	// section 6.1, asks for 4096 bytes per cookie, name included), and a
	// peer must not make the table hold megabytes per session.
	maxSessionString = 4096
	// maxAppliedNames bounds the (pool, backend ID) pairs Apply may make
	// the table intern. Interned names are never dropped, so without a
	// bound a peer naming ever new backends would grow them without end.
	maxAppliedNames = 4096
	// maxSessionTTL is the longest lifetime the table can hold: expiries
	// are 32-bit seconds (see ttlSeconds).
	maxSessionTTL = 1 << 31 * time.Second
)

// SessionTable is the built-in session store with the session ids kept, so
// that instances can share it: it reports every change made through its
// SessionStore methods to a callback, which may send it to the other
// instances; it applies the changes they send (Apply); and it lists its
// live sessions for an instance that joins (All). As Config.Sessions of a
// Balancer in StickyLearn mode it takes the built-in table's fast path (a
// lookup that hits allocates nothing, and takes a lock only when it
// extends the session), and Status reports its pinned counts.
//
// Only changes made here travel: each instance expires idle sessions and
// evicts sessions from a full shard on its own. Every change carries the
// session's remaining lifetime, so an instance that applies it expires the
// session when the instance that made it does, to the second. A refresh
// travels only once it moves the expiry by a quarter of the TTL, so the
// other instances may expire a session up to a quarter of the TTL before
// the instance that serves it; a transport that must not may apply changes
// with a quarter added to their TTL.
//
// Memory: besides the table's 16 bytes a slot, a SessionTable keeps 24
// bytes a slot and a copy of the id, in arrays parallel to the slots that
// an id leaves with its session, so it is bounded by the table's size
// whatever peers send. With 100,000 sessions of 32-byte ids that is 123
// bytes a session, against 37 for the built-in table
// (BenchmarkSessionTableShared). An id, pool or backend ID longer than
// 4096 bytes is not kept: Pin ignores it and Apply refuses it.
//
// A SessionTable must be made by NewSessionTable. Its methods are safe for
// concurrent use, also by several Balancers.
type SessionTable struct {
	t        *sessionTable
	maxNames int      // maxAppliedNames; lower in tests
	arrived  arrivals // wakes requests that wait for a session (Sticky.Await)
}

// arrivals wakes the requests waiting for sessions to arrive by Apply.
// Apply looks at one atomic when nobody waits.
type arrivals struct {
	waiting atomic.Int32
	mu      sync.Mutex
	ch      chan struct{} // closed by the next Apply that pins; nil when nobody took it
}

// next returns a channel closed by the next Apply that pins a session.
func (a *arrivals) next() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch == nil {
		a.ch = make(chan struct{})
	}
	return a.ch
}

// signal wakes the waiters after a pin.
func (a *arrivals) signal() {
	if a.waiting.Load() == 0 {
		return
	}
	a.mu.Lock()
	if a.ch != nil {
		close(a.ch)
		a.ch = nil
	}
	a.mu.Unlock()
}

// await waits until session id of pool is in the table, at most d or until
// ctx ends, and reports whether it came. A waiter counts itself before it
// takes the channel and looks the session up, so an Apply that pins after
// the lookup finds it counted and closes the channel it holds.
func (t *SessionTable) await(ctx context.Context, pool, id string, ttl, d time.Duration) bool {
	t.arrived.waiting.Add(1)
	defer t.arrived.waiting.Add(-1)
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		c := t.arrived.next()
		if _, ok := t.t.lookupAt(pool, id, ttl, time.Now().UnixNano()); ok {
			return true
		}
		select {
		case <-c:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

var _ SessionStore = (*SessionTable)(nil)

// NewSessionTable returns a table of at most max sessions (0 or less:
// 1,048,576; like Config.MaxSessions, as 64 shards of max/64 each) that
// calls changed (if not nil) with every change made through Pin, Forget
// and Lookup:
//
//   - a new session, or a session pinned to another backend, with its full
//     TTL;
//   - a Forget of a session the table holds, with Backend "";
//   - a refresh, that is a Lookup or a Pin to the same backend that
//     extends a session's life, only when its expiry has moved by more than
//     a quarter of the TTL since the last change reported (or applied) for
//     it, with its full TTL: a busy session costs one change per TTL/4, not
//     one per request.
//
// changed hears nothing of a session that expires or is evicted from a
// full shard, nor of what Apply does.
//
// changed is called synchronously by the goroutine that makes the change,
// on the request path, with the session's shard locked: the changes of one
// session reach it in the order they were made; changes of different
// sessions may come concurrently. It must be fast, must not block (it
// would hold up requests), and must not call the table's methods (they
// would wait for the lock it holds): enqueue or encode the change and
// return. The strings of a change may share memory with a request; copy
// them to keep them for long.
func NewSessionTable(max int, changed func(SessionChange)) *SessionTable {
	if max <= 0 {
		max = 1 << 20
	}
	t := newSessionTable(max)
	t.named = true
	t.changed = changed
	for i := range t.shards {
		a := t.shards[i].arr.Load()
		a.ids = make([]sessionName, len(a.s))
	}
	return &SessionTable{t: t, maxNames: maxAppliedNames}
}

// Lookup returns the backend ID pinned to session id of pool and extends
// the session's idle lifetime to ttl. It implements SessionStore.
func (t *SessionTable) Lookup(pool, id string, ttl time.Duration) (string, bool) {
	return t.t.Lookup(pool, id, ttl)
}

// Pin pins session id of pool to backendID with idle lifetime ttl. It
// implements SessionStore.
func (t *SessionTable) Pin(pool, id, backendID string, ttl time.Duration) {
	t.t.Pin(pool, id, backendID, ttl)
}

// Forget removes session id of pool. It implements SessionStore.
func (t *SessionTable) Forget(pool, id string) { t.t.Forget(pool, id) }

// Len returns the number of sessions held, expired ones not yet removed
// included.
func (t *SessionTable) Len() int { return t.t.Len() }

// Apply makes a change that came from another instance, without calling
// changed: a Backend of "" forgets the session; any other pins it with
// expiry now+TTL, a TTL under a second counting as one second and one
// beyond the table's range (about 68 years) as that range. It refuses,
// with an error wrapping ErrSessionChange and changing nothing, a change
// with an empty Pool or ID, a Pool, ID or Backend longer than 4096 bytes,
// and one naming a (Pool, Backend) pair new to a table that already knows
// 4096 of them.
func (t *SessionTable) Apply(c SessionChange) error {
	return t.applyAt(c, time.Now().UnixNano())
}

func (t *SessionTable) applyAt(c SessionChange, unixNano int64) error {
	switch {
	case c.Pool == "":
		return fmt.Errorf("%w: empty pool", ErrSessionChange)
	case c.ID == "":
		return fmt.Errorf("%w: empty id", ErrSessionChange)
	case len(c.Pool) > maxSessionString:
		return fmt.Errorf("%w: pool of %d bytes, more than %d", ErrSessionChange, len(c.Pool), maxSessionString)
	case len(c.ID) > maxSessionString:
		return fmt.Errorf("%w: id of %d bytes, more than %d", ErrSessionChange, len(c.ID), maxSessionString)
	case len(c.Backend) > maxSessionString:
		return fmt.Errorf("%w: backend ID of %d bytes, more than %d", ErrSessionChange, len(c.Backend), maxSessionString)
	}
	tb := t.t
	if c.Backend == "" {
		tb.forget(c.Pool, c.ID, false)
		return nil
	}
	if _, ok := (*tb.interned.Load())[internKey{c.Pool, c.Backend}]; !ok && len(*tb.names.Load())-1 >= t.maxNames {
		return fmt.Errorf("%w: a backend new to a table that knows %d backends already", ErrSessionChange, t.maxNames)
	}
	ttl := min(max(c.TTL, time.Second), maxSessionTTL)
	now := tb.sec(unixNano)
	exp := tb.sec(unixNano + int64(ttl))
	if exp <= now {
		exp = now + 1 // unixNano before the table's base
	}
	tb.put(c.Pool, c.ID, c.Backend, ttl, now, exp, false)
	t.arrived.signal()
	return nil
}

// All yields the live sessions (not expired), each with its remaining TTL,
// shard by shard. It is safe while the table is in use: a session changed
// during the walk may be yielded with either value or not at all. The
// changes it yields, applied to an empty table, give that table the same
// sessions. No lock is held while yield runs.
func (t *SessionTable) All() iter.Seq[SessionChange] {
	return func(yield func(SessionChange) bool) {
		t.t.each(time.Now().UnixNano(), yield)
	}
}

// each yields the sessions live at unixNano: a shard's are copied under
// its lock, then yielded without it, so a slow consumer holds up no
// request.
func (t *sessionTable) each(unixNano int64, yield func(SessionChange) bool) {
	var buf []SessionChange
	for i := range t.shards {
		s := &t.shards[i]
		buf = buf[:0]
		s.mu.Lock()
		names := *t.names.Load() // after the lock: holds every backend the slots name
		a := s.arr.Load()
		for j := range a.s {
			if a.s[j].key.Load() == 0 {
				continue
			}
			v := a.s[j].val.Load()
			// The remaining lifetime is counted to the start of the
			// expiry's second, so a table that applies it never keeps
			// the session longer than this one.
			left := time.Duration(t.base + int64(uint32(v))*int64(time.Second) - unixNano)
			if left <= 0 {
				continue
			}
			n := names[v>>32]
			buf = append(buf, SessionChange{Pool: n.pool, ID: a.ids[j].id, Backend: n.id, TTL: left})
		}
		s.mu.Unlock()
		for _, c := range buf {
			if !yield(c) {
				return
			}
		}
	}
}

// sessionName is what a SessionTable keeps of the session in a slot: its
// id, and the expiry last reported to changed (or applied), from which the
// quarter-TTL rule of refreshes counts.
type sessionName struct {
	id       string
	reported uint32
}

// set records that session id expires at exp, as its peers know. The id is
// copied: the caller's may be part of a request or a message.
func (n *sessionName) set(id string, exp uint32) {
	if n.id != id {
		n.id = strings.Clone(id)
	}
	n.reported = exp
}

// note records that session id now expires at exp and reports whether the
// change is to be told: a new id, a new backend (moved), or a refresh.
func (n *sessionName) note(id string, exp, quarter uint32, moved bool) bool {
	if n.id == id && !moved {
		return n.refresh(exp, quarter)
	}
	n.set(id, exp)
	return true
}

// refresh records that the session now expires at exp and reports whether
// that is to be told: when exp is more than quarter seconds from the
// expiry last told.
func (n *sessionName) refresh(exp, quarter uint32) bool {
	if exp <= n.reported+quarter && exp+quarter >= n.reported {
		return false
	}
	n.reported = exp
	return true
}

// shareable reports whether a SessionTable keeps a session of these
// names: a table that cannot share a session does not hold it either, so
// that all its instances route it alike.
func shareable(pool, id, backendID string) bool {
	return pool != "" && id != "" && backendID != "" &&
		len(pool) <= maxSessionString && len(id) <= maxSessionString && len(backendID) <= maxSessionString
}
