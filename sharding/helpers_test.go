package sharding

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// count is an exact count of positions, 0 to 2^64, in 128 bits.
type count struct{ hi, lo uint64 }

var wholeSpace = count{hi: 1}

func sizeOf(a Arcs) count {
	n, full := a.Size()
	if full {
		return wholeSpace
	}
	return count{lo: n}
}

func (c count) add(d count) count {
	lo, carry := bits.Add64(c.lo, d.lo, 0)
	return count{hi: c.hi + d.hi + carry, lo: lo}
}

func (c count) String() string {
	if c.hi == 0 {
		return fmt.Sprint(c.lo)
	}
	return fmt.Sprintf("%d*2^64+%d", c.hi, c.lo)
}

// endpointPool returns values to draw range ends from. Arcs drawn from one
// pool share ends, so they overlap, touch and nest often enough to exercise
// every branch of the set algebra, which independent 64-bit randoms would
// almost never do.
func endpointPool(rng *rand.Rand) []uint64 {
	pool := []uint64{0, 1, 2, math.MaxUint64 - 1, math.MaxUint64, 1 << 63, 1<<63 - 1}
	for range 10 {
		v := rng.Uint64()
		pool = append(pool, v, v+1, v-1)
	}
	return pool
}

// randArcs returns normalized Arcs of up to maxRanges ranges with ends from
// pool, sometimes empty and sometimes full.
func randArcs(rng *rand.Rand, pool []uint64, maxRanges int) Arcs {
	switch rng.IntN(20) {
	case 0:
		return nil
	case 1:
		return Full()
	}
	rs := make([]Range, rng.IntN(maxRanges)+1)
	for i := range rs {
		x, y := pool[rng.IntN(len(pool))], pool[rng.IntN(len(pool))]
		rs[i] = Range{Lo: min(x, y), Hi: max(x, y)}
	}
	return Normalize(rs...)
}

// checkPartition fails t unless the arcs are pairwise disjoint and cover
// the whole space: their sizes add up to exactly 2^64 and their union is
// everything, which together leave no room for an overlap.
func checkPartition(t *testing.T, what string, parts []Arcs) {
	t.Helper()
	var sum count
	var union Arcs
	for _, a := range parts {
		if !a.IsNormalized() {
			t.Fatalf("%s: arcs not normalized: %v", what, a)
		}
		sum = sum.add(sizeOf(a))
		union = union.Union(a)
	}
	if sum != wholeSpace || !union.Equal(Full()) {
		t.Fatalf("%s: %d parts cover %v positions (want 2^64), union %v", what, len(parts), sum, union)
	}
}

// samplePositions returns positions to probe: random ones, hashes of
// random subscriber ids, and the edges of the space.
func samplePositions(rng *rand.Rand, n int) []uint64 {
	ps := []uint64{0, 1, math.MaxUint64, math.MaxUint64 - 1, 1 << 63}
	for i := range n {
		if i%2 == 0 {
			ps = append(ps, rng.Uint64())
		} else {
			ps = append(ps, Position(fmt.Sprintf("subscriber-%d", rng.Uint64())))
		}
	}
	return ps
}
