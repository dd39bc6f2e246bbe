package balancer

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// changeLog collects the changes a SessionTable reports.
type changeLog struct {
	mu sync.Mutex // protects c
	c  []SessionChange
}

func (l *changeLog) add(c SessionChange) {
	l.mu.Lock()
	l.c = append(l.c, c)
	l.mu.Unlock()
}

// take returns the changes collected since the last take.
func (l *changeLog) take() []SessionChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.c
	l.c = nil
	return c
}

// idStats counts what a table keeps of session ids: the slots that name a
// session, the id slots allocated, and the bytes of the ids. It fails t if
// an id and its slot disagree: a slot without an id, an id without a slot,
// or an id whose hash is not the slot's key.
func idStats(t *testing.T, tb *sessionTable) (named, slots, bytes int) {
	t.Helper()
	names := *tb.names.Load()
	for i := range tb.shards {
		s := &tb.shards[i]
		s.mu.Lock()
		a := s.arr.Load()
		if len(a.ids) != len(a.s) {
			t.Errorf("shard %d: %d ids for %d slots", i, len(a.ids), len(a.s))
		}
		slots += len(a.ids)
		for j := range a.s {
			key, id := a.s[j].key.Load(), a.ids[j].id
			switch {
			case key == 0 && id != "":
				t.Errorf("shard %d slot %d: id %q kept for an empty slot", i, j, id)
			case key != 0 && id == "":
				t.Errorf("shard %d slot %d: a session without its id", i, j)
			case key != 0 && tb.key(names[a.s[j].val.Load()>>32].pool, id) != key:
				t.Errorf("shard %d slot %d: id %q is not the slot's session", i, j, id)
			}
			if id != "" {
				named++
				bytes += len(id)
			}
		}
		s.mu.Unlock()
	}
	return named, slots, bytes
}

// TestSessionTableChanges checks which changes reach the callback, on a
// clock the test moves.
func TestSessionTableChanges(t *testing.T) {
	var log changeLog
	tb := NewSessionTable(0, log.add)
	const ttl = 100 * time.Second // a quarter is 25 s
	t0 := time.Now().UnixNano()
	at := func(sec int) int64 { return t0 + int64(sec)*int64(time.Second) }
	ch := func(id, backend string) SessionChange {
		if backend == "" {
			return SessionChange{Pool: "p", ID: id}
		}
		return SessionChange{Pool: "p", ID: id, Backend: backend, TTL: ttl}
	}
	lookup := func(id string, sec int, want string) {
		t.Helper()
		got, ok := tb.t.lookupAt("p", id, ttl, at(sec))
		if want == "" && ok {
			t.Errorf("Lookup(%s) at %d s = %s, want a miss", id, sec, got)
		}
		if want != "" && got != want {
			t.Errorf("Lookup(%s) at %d s = %q %v, want %s", id, sec, got, ok, want)
		}
	}
	apply := func(c SessionChange, sec int) {
		t.Helper()
		if err := tb.applyAt(c, at(sec)); err != nil {
			t.Errorf("Apply(%+v): %v", c, err)
		}
	}
	for _, step := range []struct {
		name string
		do   func()
		want []SessionChange
	}{
		{"new pin", func() { tb.t.pinAt("p", "s1", "b1", ttl, at(0)) }, []SessionChange{ch("s1", "b1")}},
		{"re-pin to another backend", func() { tb.t.pinAt("p", "s1", "b2", ttl, at(1)) }, []SessionChange{ch("s1", "b2")}},
		{"pin to the same backend within a quarter", func() { tb.t.pinAt("p", "s1", "b2", ttl, at(20)) }, nil},
		{"lookup within a quarter", func() { lookup("s1", 25, "b2") }, nil},
		{"lookup after a quarter", func() { lookup("s1", 27, "b2") }, []SessionChange{ch("s1", "b2")}},
		// Expiry last told: 127 s. A lookup every second extends it every
		// other second (at odd seconds); it is told at 153, 179 and 205.
		{"busy session: one change per quarter", func() {
			for sec := 28; sec <= 127; sec++ {
				lookup("s1", sec, "b2")
			}
		}, []SessionChange{ch("s1", "b2"), ch("s1", "b2"), ch("s1", "b2")}},
		{"pin to the same backend after a quarter", func() { tb.t.pinAt("p", "s1", "b2", ttl, at(131)) }, []SessionChange{ch("s1", "b2")}},
		{"forget", func() { tb.Forget("p", "s1") }, []SessionChange{ch("s1", "")}},
		{"forget of unknown sessions", func() {
			tb.Forget("p", "s1")
			tb.Forget("p", "never")
			tb.Forget("q", "s2")
		}, nil},
		{"pin before expiry", func() { tb.t.pinAt("p", "s2", "b1", ttl, at(200)) }, []SessionChange{ch("s2", "b1")}},
		{"expiry", func() { lookup("s2", 301, "") }, nil},
		{"apply: pin, move, forget", func() {
			apply(ch("s3", "b1"), 400)
			lookup("s3", 401, "b1")
			apply(ch("s3", "b2"), 402)
			lookup("s3", 403, "b2")
			apply(ch("s3", ""), 404)
			lookup("s3", 405, "")
			apply(ch("unknown", ""), 404)
		}, nil},
		// An applied expiry (500) is what the peers know: a refresh is
		// told once the expiry moves a quarter from it.
		{"apply, then lookups within a quarter", func() {
			apply(ch("s4", "b1"), 400)
			lookup("s4", 420, "b1")
		}, nil},
		{"lookup a quarter after apply", func() { lookup("s4", 426, "b1") }, []SessionChange{ch("s4", "b1")}},
		// A shorter TTL (a changed Sticky.TTL) moves the expiry back.
		{"lookup with a shorter TTL", func() { tb.t.lookupAt("p", "s4", 10*time.Second, at(430)) },
			[]SessionChange{{Pool: "p", ID: "s4", Backend: "b1", TTL: 10 * time.Second}}},
	} {
		step.do()
		if diff := cmp.Diff(step.want, log.take()); diff != "" {
			t.Errorf("%s: changes (-want +got):\n%s", step.name, diff)
		}
	}

	// Eviction: a shard of one session, and two sessions for it.
	ev := NewSessionTable(sessionShards, log.add)
	first := "e0"
	second := ""
	for i := 1; i < 10000 && second == ""; i++ {
		if id := fmt.Sprint("e", i); ev.t.shard(ev.t.key("p", id)) == ev.t.shard(ev.t.key("p", first)) {
			second = id
		}
	}
	if second == "" {
		t.Fatal("no two ids share a shard")
	}
	ev.t.pinAt("p", first, "b1", ttl, at(0))
	ev.t.pinAt("p", second, "b2", ttl, at(1))
	if _, ok := ev.t.lookupAt("p", first, ttl, at(2)); ok {
		t.Fatal("a full shard kept both sessions")
	}
	want := []SessionChange{ch(first, "b1"), ch(second, "b2")}
	if diff := cmp.Diff(want, log.take()); diff != "" {
		t.Errorf("eviction: changes (-want +got):\n%s", diff)
	}
}

// TestSessionTableLookupAllocs checks that a lookup that hits allocates
// nothing, also when it extends the session and reports the refresh.
func TestSessionTableLookupAllocs(t *testing.T) {
	var told atomic.Int64
	tb := NewSessionTable(0, func(SessionChange) { told.Add(1) })
	id := strings.Repeat("0331C764C54C18BE", 2)
	now := time.Now().UnixNano()
	tb.t.pinAt("p", id, "b1", time.Minute, now)
	if n := testing.AllocsPerRun(1000, func() {
		if _, ok := tb.Lookup("p", id, time.Minute); !ok {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Errorf("Lookup allocates %v times a hit", n)
	}
	before := told.Load()
	if n := testing.AllocsPerRun(1000, func() {
		now += 20 * int64(time.Second) // more than a quarter: every lookup reports
		if _, ok := tb.t.lookupAt("p", id, time.Minute, now); !ok {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Errorf("a lookup that reports a refresh allocates %v times", n)
	}
	if told.Load() == before {
		t.Error("no refresh reported")
	}
}

// TestSessionTableApplyAll hands one table's sessions to another with All
// and Apply.
func TestSessionTableApplyAll(t *testing.T) {
	const n = 10000
	a := NewSessionTable(0, nil)
	var log changeLog
	b := NewSessionTable(0, log.add)
	pools := []string{"wso2.esb.domain/worker", "wso2.as.domain/worker", "wso2.is.domain/mgt"}
	id := func(i int) string { return fmt.Sprintf("%016X%05d", uint64(i)*0x9e3779b97f4a7c15, i) }
	ttl := func(i int) time.Duration {
		if i%10 == 0 {
			return time.Minute // expired by the time of the walk
		}
		return time.Hour + time.Duration(i)*time.Second
	}
	t0 := time.Now().UnixNano()
	for i := range n {
		a.t.pinAt(pools[i%3], id(i), fmt.Sprint("b", i%4), ttl(i), t0)
	}
	if got := a.Len(); got != n {
		t.Fatalf("a holds %d sessions, want %d", got, n)
	}
	// All, at once: every session is live.
	live := 0
	for range a.All() {
		live++
	}
	if live != n {
		t.Errorf("All yields %d sessions, want %d", live, n)
	}
	stopped := 0
	for range a.All() {
		if stopped++; stopped == 5 {
			break
		}
	}
	if stopped != 5 {
		t.Errorf("All went on after the loop broke: %d", stopped)
	}

	// Ten minutes later, on the test's clock.
	later := t0 + int64(10*time.Minute)
	type entry struct {
		backend string
		ttl     time.Duration
	}
	walk := func(tb *SessionTable) map[string]entry {
		m := map[string]entry{}
		tb.t.each(later, func(c SessionChange) bool {
			k := c.Pool + " " + c.ID
			if _, dup := m[k]; dup {
				t.Errorf("%s yielded twice", k)
			}
			m[k] = entry{c.Backend, c.TTL}
			if err := b.applyAt(c, later); err != nil {
				t.Errorf("Apply(%+v): %v", c, err)
			}
			return true
		})
		return m
	}
	fromA := walk(a)
	if got := log.take(); len(got) != 0 {
		t.Errorf("Apply reported %d changes, want none", len(got))
	}
	fromB := walk(b) // applying b's sessions to b changes nothing
	for i := range n {
		k := pools[i%3] + " " + id(i)
		ea, ina := fromA[k]
		eb, inb := fromB[k]
		if i%10 == 0 {
			if ina || inb {
				t.Errorf("session %d expired, yet yielded (%v, %v)", i, ina, inb)
			}
			continue
		}
		want := ttl(i) - 10*time.Minute
		if !ina || ea.backend != fmt.Sprint("b", i%4) || ea.ttl > want || ea.ttl <= want-time.Second {
			t.Errorf("a yields session %d as %+v (%v), want b%d with %v", i, ea, ina, i%4, want)
		}
		if !inb || eb.backend != ea.backend || eb.ttl > ea.ttl || eb.ttl <= ea.ttl-time.Second {
			t.Errorf("b yields session %d as %+v (%v), a as %+v", i, eb, inb, ea)
		}
	}
	if got, want := b.Len(), n-n/10; got != want {
		t.Errorf("b holds %d sessions, want %d", got, want)
	}
	for i := range n {
		wa, oka := a.t.lookupAt(pools[i%3], id(i), ttl(i), later)
		wb, okb := b.t.lookupAt(pools[i%3], id(i), ttl(i), later)
		if wa != wb || oka != okb || oka != (i%10 != 0) {
			t.Fatalf("session %d: a looks up %q %v, b %q %v", i, wa, oka, wb, okb)
		}
	}
}

// TestSessionTableBounded pins ten times as many sessions as the table
// holds, most expiring on the way, and checks the ids go with them.
func TestSessionTableBounded(t *testing.T) {
	const max = 100 * sessionShards
	tb := NewSessionTable(max, nil)
	t0 := time.Now().UnixNano()
	for i := range 10 * max {
		now := t0 + int64(i/1000)*int64(time.Minute) // 1000 pins a minute
		ttl := 5 * time.Minute
		if i%7 == 0 {
			ttl = time.Hour // these are evicted rather than expire
		}
		tb.t.pinAt(fmt.Sprint("pool", i%5), fmt.Sprintf("%032X", i), "b1", ttl, now)
	}
	named, slots, bytes := idStats(t, tb.t)
	if n := tb.Len(); named != n || n > max {
		t.Errorf("%d ids for %d sessions (at most %d)", named, n, max)
	}
	// A shard grows to keep its load under 3/4: under 8/3 slots a session.
	if slots > 3*max {
		t.Errorf("%d id slots for a table of %d", slots, max)
	}
	if bytes != 32*named {
		t.Errorf("ids hold %d bytes, want %d", bytes, 32*named)
	}
	// Forgetting everything (as a peer's changes) leaves no id behind.
	var all []SessionChange
	for c := range tb.All() {
		all = append(all, c)
	}
	for _, c := range all {
		c.Backend = ""
		if err := tb.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	named, _, bytes = idStats(t, tb.t)
	if n := tb.Len(); n != 0 || named != 0 || bytes != 0 {
		t.Errorf("after forgetting all live sessions: %d sessions, %d ids of %d bytes", n, named, bytes)
	}
}

// TestSessionTableApplyRefuses feeds Apply what a broken or hostile peer
// might send.
func TestSessionTableApplyRefuses(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	tb := NewSessionTable(0, func(c SessionChange) { t.Errorf("Apply reported %+v", c) })
	for _, tc := range []struct {
		name string
		c    SessionChange
		ok   bool
		ttl  time.Duration // the remaining TTL All yields at once, at most and within a minute
	}{
		{"huge id", SessionChange{Pool: "p", ID: huge, Backend: "b1", TTL: time.Hour}, false, 0},
		{"huge pool", SessionChange{Pool: huge, ID: "s", Backend: "b1", TTL: time.Hour}, false, 0},
		{"huge backend", SessionChange{Pool: "p", ID: "s", Backend: huge, TTL: time.Hour}, false, 0},
		{"huge id forgotten", SessionChange{Pool: "p", ID: huge}, false, 0},
		{"empty pool", SessionChange{ID: "s", Backend: "b1", TTL: time.Hour}, false, 0},
		{"empty id", SessionChange{Pool: "p", Backend: "b1", TTL: time.Hour}, false, 0},
		{"negative TTL", SessionChange{Pool: "p", ID: "neg", Backend: "b1", TTL: -time.Hour}, true, time.Second},
		{"zero TTL", SessionChange{Pool: "p", ID: "zero", Backend: "b1"}, true, time.Second},
		{"largest TTL", SessionChange{Pool: "p", ID: "max", Backend: "b1", TTL: math.MaxInt64}, true, maxSessionTTL},
		{"4096-byte id", SessionChange{Pool: "p", ID: huge[:4096], Backend: "b1", TTL: time.Hour}, true, time.Hour},
		{"forget unknown", SessionChange{Pool: "p", ID: "unknown"}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tb.Apply(tc.c)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrSessionChange)) {
				t.Fatalf("Apply: %v; want success %v, or ErrSessionChange", err, tc.ok)
			}
			if tc.ttl == 0 {
				return
			}
			found := false
			for c := range tb.All() {
				if c.Pool == tc.c.Pool && c.ID == tc.c.ID {
					found = true
					if c.Backend != tc.c.Backend || c.TTL <= 0 || c.TTL > tc.ttl || c.TTL < tc.ttl-time.Minute {
						t.Errorf("All yields %s %v, want %s with %v at most, a minute less at least", c.Backend, c.TTL, tc.c.Backend, tc.ttl)
					}
				}
			}
			if !found && tc.ttl > time.Second { // a one-second session may be gone already
				t.Error("the session is not in the table")
			}
		})
	}
	named, _, bytes := idStats(t, tb.t)
	if named > 4 || bytes > 4096+len("neg")+len("zero")+len("max") {
		t.Errorf("the table keeps %d ids of %d bytes", named, bytes)
	}
	// A peer naming ever new backends: the names stay bounded (by a
	// lower bound than maxAppliedNames: each new name copies the others).
	if tb.maxNames != maxAppliedNames {
		t.Fatalf("a table bounds names at %d, want %d", tb.maxNames, maxAppliedNames)
	}
	tb.maxNames = 256
	refused := 0
	for i := range 2 * tb.maxNames {
		err := tb.Apply(SessionChange{Pool: "p", ID: fmt.Sprint("s", i), Backend: fmt.Sprint("backend", i), TTL: time.Hour})
		if err != nil {
			if !errors.Is(err, ErrSessionChange) {
				t.Fatal(err)
			}
			refused++
		}
	}
	if names := len(*tb.t.names.Load()) - 1; names > tb.maxNames || refused < tb.maxNames {
		t.Errorf("%d backend names interned, %d changes refused", names, refused)
	}
	// Local pins do not keep an id no peer would take.
	tb.Pin("p", huge, "b1", time.Hour)
	if _, ok := tb.Lookup("p", huge, time.Hour); ok {
		t.Error("a SessionTable pinned an id of 1 MiB")
	}
}

// TestSessionTableSharedConcurrent runs every method at once; with -race it
// checks the locking, and after it the ids still match the sessions.
func TestSessionTableSharedConcurrent(t *testing.T) {
	var told atomic.Int64
	tb := NewSessionTable(8*sessionShards, func(SessionChange) { told.Add(1) })
	ids := make([]string, 600)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032X", uint64(i)*0x9e3779b97f4a7c15)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				id := ids[(i*7+g*13)%len(ids)]
				backend := fmt.Sprint("b", (i+g)%3)
				switch i % 5 {
				case 0:
					tb.Pin("p", id, backend, time.Hour)
				case 1:
					tb.Lookup("p", id, time.Hour)
				case 2:
					tb.Forget("p", id)
				case 3:
					if err := tb.Apply(SessionChange{Pool: "p", ID: id, Backend: backend, TTL: time.Hour}); err != nil {
						t.Error(err)
					}
				case 4:
					if err := tb.Apply(SessionChange{Pool: "p", ID: id}); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			for c := range tb.All() {
				if c.Pool != "p" || c.ID == "" || c.Backend == "" || c.TTL <= 0 {
					t.Errorf("All yields %+v", c)
				}
			}
		}
	})
	wg.Wait()
	if told.Load() == 0 {
		t.Error("no change reported")
	}
	named, _, _ := idStats(t, tb.t)
	if n := tb.Len(); named != n {
		t.Errorf("%d ids for %d sessions", named, n)
	}
}

// BenchmarkSessionTableShared compares the built-in table with a
// SessionTable holding 100,000 sessions of 32-character ids: the memory per
// session (bytes/session, ids included), and lookups that hit.
func BenchmarkSessionTableShared(b *testing.B) {
	const n = 100000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%016X%016X", uint64(i)*0x9e3779b97f4a7c15, i)
	}
	for _, tc := range []struct {
		name string
		make func() *sessionTable
	}{
		{"builtin", func() *sessionTable { return newSessionTable(1 << 20) }},
		{"shared", func() *sessionTable { return NewSessionTable(0, func(SessionChange) {}).t }},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t := tc.make()
		backends := []string{"b1", "b2", "b3", "b4"}
		for i, id := range ids {
			t.Pin("wso2.esb.domain/worker", id, backends[i%4], time.Hour)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if t.Len() != n {
			b.Fatalf("%s holds %d of %d", tc.name, t.Len(), n)
		}
		perSession := float64(after.HeapAlloc-before.HeapAlloc) / n
		b.Run(tc.name+"/Lookup", func(b *testing.B) {
			b.ReportAllocs()
			now := time.Now().UnixNano()
			i := 0
			for b.Loop() {
				if _, ok := t.lookupAt("wso2.esb.domain/worker", ids[i%n], time.Hour, now); !ok {
					b.Fatal("miss")
				}
				i++
			}
			b.ReportMetric(perSession, "bytes/session")
		})
		runtime.KeepAlive(t)
	}
}
