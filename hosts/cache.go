package hosts

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// cacheShards is the number of independently written parts of a cache. A
// write copies one shard's map, so more shards make writes cheaper.
const cacheShards = 64

// cache is a map from a folded name to a positive or negative answer, built
// for lookups that neither lock nor allocate: each shard publishes an
// immutable map through an atomic pointer, and a write copies the shard's
// map (dropping expired entries on the way) and swaps it in. Lookups vastly
// outnumber writes, which happen once per TTL per name.
type cache struct {
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.Mutex // serialises writers of m
	m  atomic.Pointer[map[string]*cacheEntry]
	_  [48]byte // keeps shards on separate cache lines
}

// cacheEntry is an immutable answer. Exactly one of addrs and err is set.
type cacheEntry struct {
	addrs   []netip.Addr // shared with callers, who must not modify it
	err     *LookupError // a cached NXDOMAIN or NODATA (RFC 2308)
	expires int64        // clock reading, see Resolver.ticks

	// hostsGen is the generation of the hosts file that was checked, and
	// did not hold the name, before the query.
	hostsGen uint64
}

func newCache() *cache { return &cache{} }

// shard picks the shard of key from a few of its bytes rather than a full
// hash: the shard's map hashes the key anyway, and the choice only spreads
// the cost of writes. Names in one cluster share suffixes, so the bytes come
// from the front and the middle too.
func (c *cache) shard(key string) *cacheShard {
	n := len(key)
	if n == 0 {
		return &c.shards[0]
	}
	h := uint(n)*31 + uint(key[0])*7 + uint(key[n/2])*3 + uint(key[n/3])
	if n > 1 {
		h += uint(key[1]) * 11
	}
	return &c.shards[h%cacheShards]
}

// get returns the entry for key if there is one that has not expired at now.
func (c *cache) get(key string, now int64) *cacheEntry {
	m := c.shard(key).m.Load()
	if m == nil {
		return nil
	}
	e := (*m)[key]
	if e == nil || now >= e.expires {
		return nil
	}
	return e
}

// put stores e under key, dropping the shard's entries expired at now.
func (c *cache) put(key string, e *cacheEntry, now int64) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	var n map[string]*cacheEntry
	if old := s.m.Load(); old != nil {
		n = make(map[string]*cacheEntry, len(*old)+1)
		for k, v := range *old {
			if now < v.expires {
				n[k] = v
			}
		}
	} else {
		n = make(map[string]*cacheEntry, 1)
	}
	n[key] = e
	s.m.Store(&n)
}

// len returns the number of entries, expired or not.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		if m := c.shards[i].m.Load(); m != nil {
			n += len(*m)
		}
	}
	return n
}
