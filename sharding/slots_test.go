package sharding

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestSlotCount(t *testing.T) {
	for _, tt := range []struct{ members, want int }{
		{0, MinSlots}, {1, 8}, {3, 24}, {100, 800}, {1000, 8000}, {1024, 8192}, {5000, MaxSlots},
	} {
		if got := SlotCount(tt.members); got != tt.want {
			t.Errorf("SlotCount(%d) = %d, want %d", tt.members, got, tt.want)
		}
	}
}

// The n slot ranges are contiguous, ascending, cover the space, differ in
// size by at most one position, and agree with SlotOf at every boundary.
func TestSlotRangesPartitionTheSpace(t *testing.T) {
	two64 := new(big.Int).Lsh(big.NewInt(1), 64)
	for _, n := range []int{1, 2, 3, 7, 8, 24, 1000, 8000, MaxSlots} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			floor := new(big.Int).Div(two64, big.NewInt(int64(n)))
			var prev Range
			for s := range n {
				r := SlotRange(s, n)
				switch {
				case s == 0 && r.Lo != 0:
					t.Fatalf("slot 0 starts at %x", r.Lo)
				case s > 0 && r.Lo != prev.Hi+1:
					t.Fatalf("slot %d starts at %x, after %x", s, r.Lo, prev.Hi)
				case r.Hi < r.Lo:
					t.Fatalf("slot %d is empty", s)
				}
				size := new(big.Int).SetUint64(r.Hi - r.Lo)
				size.Add(size, big.NewInt(1))
				if d := new(big.Int).Sub(size, floor); d.Sign() < 0 || d.Cmp(big.NewInt(1)) > 0 {
					t.Fatalf("slot %d holds %v positions, want %v or one more", s, size, floor)
				}
				if SlotOf(r.Lo, n) != s || SlotOf(r.Hi, n) != s {
					t.Fatalf("slot %d: SlotOf its bounds = %d, %d", s, SlotOf(r.Lo, n), SlotOf(r.Hi, n))
				}
				if s > 0 && SlotOf(r.Lo-1, n) != s-1 {
					t.Fatalf("slot %d: the position before it is in slot %d", s, SlotOf(r.Lo-1, n))
				}
				prev = r
			}
			if prev.Hi != math.MaxUint64 {
				t.Fatalf("last slot ends at %x", prev.Hi)
			}
		})
	}
}

func TestSlotOfRandomPositions(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		n := 1 + rng.IntN(MaxSlots)
		p := rng.Uint64()
		s := SlotOf(p, n)
		if s < 0 || s >= n {
			t.Fatalf("SlotOf(%x, %d) = %d", p, n, s)
		}
		if r := SlotRange(s, n); p < r.Lo || p > r.Hi {
			t.Fatalf("%x is in slot %d of %d, whose range %x..%x misses it", p, s, n, r.Lo, r.Hi)
		}
	}
}

// subscriberIDs returns n ids shaped like real ones, so lookups hash
// strings of a realistic length.
func subscriberIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("subscriber-%08d", i*7919)
	}
	return ids
}

func BenchmarkSlotOf(b *testing.B) {
	ids := subscriberIDs(1024)
	var sink int
	for i := 0; b.Loop(); i++ {
		sink += SlotOf(Position(ids[i&1023]), 8000)
	}
	_ = sink
}
