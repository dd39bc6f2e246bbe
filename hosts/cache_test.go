package hosts

import (
	"net/netip"
	"testing"
)

func TestCacheExpiresAndSweeps(t *testing.T) {
	c := newCache()
	a := []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	c.put("a.example.", &cacheEntry{addrs: a, expires: 10}, 0)
	if e := c.get("a.example.", 9); e == nil || e.addrs[0] != a[0] {
		t.Fatalf("get before expiry = %v", e)
	}
	if e := c.get("a.example.", 10); e != nil {
		t.Fatalf("get at expiry = %v, want nil", e)
	}
	if e := c.get("b.example.", 0); e != nil {
		t.Fatalf("get of an absent key = %v", e)
	}
	// Writes drop the expired entries of their shard; fill every shard.
	for i := range 1000 {
		c.put(string(rune('a'+i%26))+string(rune('a'+i/26%26))+".example.", &cacheEntry{addrs: a, expires: 20}, 0)
	}
	n := c.len()
	for i := range 1000 {
		c.put(string(rune('a'+i%26))+string(rune('a'+i/26%26))+".example.", &cacheEntry{addrs: a, expires: 40}, 30)
	}
	if got := c.len(); got > n || got == 0 {
		t.Errorf("len = %d after rewriting %d expired entries, want at most %d", got, 1000, n)
	}
}
