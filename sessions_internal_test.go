package carbonlb

import (
	"bytes"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
)

// FuzzSessionChange decodes arbitrary bytes as a change: a change that
// decodes has non-empty strings and a TTL within a day, and encodes back
// to the bytes it was read from (TTLs of a day or more aside, which are
// capped).
func FuzzSessionChange(f *testing.F) {
	for _, c := range []balancer.SessionChange{
		{Pool: "wso2.as.domain/worker", ID: "0123456789ABCDEF0123456789ABCDEF.node-a", Backend: "10.0.0.5:9763", TTL: 30 * time.Minute},
		{Pool: "p", ID: "x"},
		{Pool: "p", ID: "y", Backend: "b", TTL: 1500 * time.Millisecond},
	} {
		f.Add(appendChange(nil, c))
	}
	f.Add([]byte{'P', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 'p', 1, 'b', 1, 'i'})
	f.Add([]byte{'F', 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, rest, err := readChange(b)
		if err != nil {
			return
		}
		if c.Pool == "" || c.ID == "" || (c.Backend == "" && c.TTL != 0) {
			t.Fatalf("decoded %+v from %q", c, b)
		}
		if c.TTL < 0 || c.TTL > maxSyncTTL {
			t.Fatalf("TTL %v from %q", c.TTL, b)
		}
		used := b[:len(b)-len(rest)]
		again := appendChange(nil, c)
		if c.TTL < maxSyncTTL && !bytes.Equal(again, used) && canonicalUvarints(used) {
			t.Fatalf("%q decoded to %+v, which encodes to %q", used, c, again)
		}
		if c2, rest2, err := readChange(again); err != nil || len(rest2) != 0 || c2 != c {
			t.Fatalf("%+v encodes to %q, which decodes to %+v, %q, %v", c, again, c2, rest2, err)
		}
	})
}

// canonicalUvarints reports whether b has no byte with the continuation
// bit followed by a zero byte, the mark of a uvarint with a redundant
// last byte (0x80 0x00 encodes 0 as 0x00 does); only changes without one
// come back byte for byte. (It may also reject canonical ones whose
// strings hold such bytes; they are then not compared.)
func canonicalUvarints(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] >= 0x80 && b[i+1] == 0 {
			return false
		}
	}
	return true
}
