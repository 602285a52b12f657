package loadgen

import (
	"math"
	"sync"
	"time"
)

// Histogram counts latencies in buckets that grow by about 4 % each, from
// 1 µs to about 100 s: fine enough for a p99 within a few per cent, and
// small enough (about 470 buckets) to keep one per worker and merge them.
// The zero value is ready to use; it is not safe for concurrent use.
type Histogram struct {
	counts [nBuckets]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	bucketGrowth = 1.04
	nBuckets     = 470
)

var logGrowth = math.Log(bucketGrowth)

// bucketOf returns the bucket of a duration: bucket i holds durations up
// to 1µs·1.04^i.
func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	i := int(math.Ceil(math.Log(us) / logGrowth))
	if i >= nBuckets {
		return nBuckets - 1
	}
	return i
}

// upper returns the upper bound of bucket i.
func upper(i int) time.Duration {
	return time.Duration(math.Pow(bucketGrowth, float64(i)) * float64(time.Microsecond))
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.sum += d
	if d > h.max {
		h.max = d
	}
}

// Merge adds every latency of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// Count is the number of latencies recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Mean is the average latency, or 0 with none recorded.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Max is the largest latency recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the latency below which a fraction q (0..1) of the
// recorded latencies fall, as the upper bound of its bucket (never more
// than Max), or 0 with none recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(upper(i), h.max)
		}
	}
	return h.max
}

// lockedHistogram is a Histogram behind a mutex, for merging workers.
type lockedHistogram struct {
	mu sync.Mutex
	h  Histogram
}

func (l *lockedHistogram) merge(o *Histogram) {
	l.mu.Lock()
	l.h.Merge(o)
	l.mu.Unlock()
}
