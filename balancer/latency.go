package balancer

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// LatencyBuckets is the number of buckets of a Histogram.
const LatencyBuckets = 40

// Histogram is a distribution of durations in power-of-two microsecond
// buckets: Counts[i] counts the durations d with d < 2^i µs that are not
// in a lower bucket (Counts[0]: under 1 µs), except the last bucket, which
// also counts everything longer. Sum is the total of the durations.
type Histogram struct {
	Counts [LatencyBuckets]uint64
	Sum    time.Duration
}

// UpperBound is the upper bound of bucket i: 2^i µs, or the largest
// Duration for the last bucket.
func (h *Histogram) UpperBound(i int) time.Duration {
	if i >= LatencyBuckets-1 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(uint64(1)<<uint(i)) * time.Microsecond
}

// Count is the number of durations counted.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile returns the q-quantile (0 < q ≤ 1), interpolated linearly within
// the bucket that holds it, as Prometheus' histogram_quantile does; zero
// when the histogram is empty. The last, unbounded bucket reports its lower
// bound.
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range h.Counts {
		if c == 0 || float64(cum+c) < rank {
			cum += c
			continue
		}
		var lo time.Duration
		if i > 0 {
			lo = h.UpperBound(i - 1)
		}
		if i == LatencyBuckets-1 {
			return lo
		}
		hi := h.UpperBound(i)
		frac := (rank - float64(cum)) / float64(c)
		return lo + time.Duration(frac*float64(hi-lo))
	}
	return h.UpperBound(LatencyBuckets - 2)
}

// latency is a histogram of durations in power-of-two microsecond buckets
// (see Histogram), updated with atomic adds only.
type latency struct {
	b   [LatencyBuckets]atomic.Uint64
	sum atomic.Int64 // nanoseconds
}

func (l *latency) add(d time.Duration) {
	us := uint64(d / time.Microsecond)
	i := bits.Len64(us)
	if i >= len(l.b) {
		i = len(l.b) - 1
	}
	l.b[i].Add(1)
	l.sum.Add(int64(d))
}

// snapshot reads the histogram, bucket by bucket.
func (l *latency) snapshot() Histogram {
	var h Histogram
	for i := range l.b {
		h.Counts[i] = l.b[i].Load()
	}
	h.Sum = time.Duration(l.sum.Load())
	return h
}
