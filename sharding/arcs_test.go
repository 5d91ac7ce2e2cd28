package sharding

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
)

const top = math.MaxUint64

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   []Range
		want Arcs
	}{
		{"nothing", nil, nil},
		{"one", []Range{{5, 9}}, Arcs{{5, 9}}},
		{"sorts", []Range{{20, 30}, {1, 2}}, Arcs{{1, 2}, {20, 30}}},
		{"merges overlap", []Range{{1, 10}, {5, 20}}, Arcs{{1, 20}}},
		{"merges adjacent", []Range{{1, 10}, {11, 20}}, Arcs{{1, 20}}},
		{"keeps a gap of one", []Range{{1, 10}, {12, 20}}, Arcs{{1, 10}, {12, 20}}},
		{"nested", []Range{{1, 100}, {5, 6}, {50, 60}}, Arcs{{1, 100}}},
		{"duplicates", []Range{{7, 7}, {7, 7}}, Arcs{{7, 7}}},
		{"top of space", []Range{{top - 1, top}, {top, top}}, Arcs{{top - 1, top}}},
		{"adjacent at top", []Range{{0, top - 1}, {top, top}}, Full()},
		{"wraps", []Range{{top - 4, 3}}, Arcs{{0, 3}, {top - 4, top}}},
		{"wrap merges", []Range{{top - 4, 3}, {4, 10}}, Arcs{{0, 10}, {top - 4, top}}},
		{"wrap covering all", []Range{{10, 9}}, Full()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Normalize(tt.in...)
			if !got.Equal(tt.want) {
				t.Fatalf("Normalize(%v) = %v, want %v", tt.in, got, tt.want)
			}
			if !got.IsNormalized() {
				t.Fatalf("Normalize(%v) = %v, not normalized", tt.in, got)
			}
		})
	}
}

func TestIsNormalized(t *testing.T) {
	tests := []struct {
		name string
		in   Arcs
		want bool
	}{
		{"empty", nil, true},
		{"full", Full(), true},
		{"apart", Arcs{{1, 2}, {4, 5}}, true},
		{"adjacent", Arcs{{1, 2}, {3, 5}}, false},
		{"overlapping", Arcs{{1, 4}, {3, 5}}, false},
		{"unsorted", Arcs{{4, 5}, {1, 2}}, false},
		{"reversed range", Arcs{{5, 4}}, false},
		{"after the top", Arcs{{0, top}, {0, 0}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.IsNormalized(); got != tt.want {
				t.Fatalf("%v.IsNormalized() = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSizeAndShare(t *testing.T) {
	tests := []struct {
		name     string
		in       Arcs
		wantN    uint64
		wantFull bool
		share    float64
	}{
		{"empty", nil, 0, false, 0},
		{"one position", Arcs{{7, 7}}, 1, false, 0x1p-64},
		{"full", Full(), 0, true, 1},
		{"all but one", Arcs{{0, top - 1}}, top, false, 1},
		{"lower half", Arcs{{0, 1<<63 - 1}}, 1 << 63, false, 0.5},
		{"two quarters", Arcs{{0, 1<<62 - 1}, {1 << 63, 1<<63 + 1<<62 - 1}}, 1 << 63, false, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, full := tt.in.Size()
			if n != tt.wantN || full != tt.wantFull {
				t.Fatalf("Size() = %d, %v; want %d, %v", n, full, tt.wantN, tt.wantFull)
			}
			if got := tt.in.Share(); got != tt.share {
				t.Fatalf("Share() = %v, want %v", got, tt.share)
			}
		})
	}
}

func TestSetOperations(t *testing.T) {
	a := Arcs{{0, 9}, {20, 29}, {top - 9, top}}
	b := Arcs{{5, 24}, {top, top}}
	tests := []struct {
		name string
		got  Arcs
		want Arcs
	}{
		{"union", a.Union(b), Arcs{{0, 29}, {top - 9, top}}},
		{"intersect", a.Intersect(b), Arcs{{5, 9}, {20, 24}, {top, top}}},
		{"a minus b", a.Subtract(b), Arcs{{0, 4}, {25, 29}, {top - 9, top - 1}}},
		{"b minus a", b.Subtract(a), Arcs{{10, 19}}},
		{"full minus a", Full().Subtract(a), Arcs{{10, 19}, {30, top - 10}}},
		{"a minus full", a.Subtract(Full()), nil},
		{"a minus nothing", a.Subtract(nil), a},
		{"union with full", a.Union(Full()), Full()},
		{"intersect with nothing", a.Intersect(nil), nil},
		{"union of nothing", Arcs(nil).Union(nil), nil},
		{"union touching", Arcs{{0, 4}}.Union(Arcs{{5, 9}}), Arcs{{0, 9}}},
		{"subtract splits", Arcs{{0, 100}}.Subtract(Arcs{{10, 10}, {20, 30}}), Arcs{{0, 9}, {11, 19}, {31, 100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.got.Equal(tt.want) {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestContains(t *testing.T) {
	a := Arcs{{0, 0}, {10, 20}, {top, top}}
	tests := []struct {
		pos  uint64
		want bool
	}{
		{0, true}, {1, false}, {9, false}, {10, true}, {15, true}, {20, true},
		{21, false}, {top - 1, false}, {top, true},
	}
	for _, tt := range tests {
		if got := a.Contains(tt.pos); got != tt.want {
			t.Errorf("%v.Contains(%d) = %v, want %v", a, tt.pos, got, tt.want)
		}
	}
	if Arcs(nil).Contains(0) {
		t.Error("empty arcs contain 0")
	}
	if allocs := testing.AllocsPerRun(100, func() { a.Contains(15) }); allocs != 0 {
		t.Errorf("Contains allocates %v times", allocs)
	}
}

// model is a set of the 64 positions 0..31 and 2^64-32..2^64-1 as a bit
// mask: small enough to check every answer by brute force, and spanning
// both ends of the space, where the off-by-one and overflow mistakes live.
type model uint64

func modelPos(bit int) uint64 {
	if bit < 32 {
		return uint64(bit)
	}
	return top - 63 + uint64(bit)
}

// randModelRanges returns random ranges inside the model's positions,
// some of them wrapping from the top half to the bottom one, with the
// model of their union.
func randModelRanges(rng *rand.Rand) ([]Range, model) {
	var rs []Range
	var m model
	for range rng.IntN(6) {
		x, y := rng.IntN(64), rng.IntN(64)
		lo, hi := min(x, y), max(x, y)
		if lo < 32 && hi >= 32 {
			// A range from the bottom half to the top would cover the
			// unmodelled middle; wrap the other way round instead.
			rs = append(rs, Range{Lo: modelPos(hi), Hi: modelPos(lo)})
			for b := hi; b < 64; b++ {
				m |= 1 << b
			}
			for b := 0; b <= lo; b++ {
				m |= 1 << b
			}
			continue
		}
		rs = append(rs, Range{Lo: modelPos(lo), Hi: modelPos(hi)})
		for b := lo; b <= hi; b++ {
			m |= 1 << b
		}
	}
	return rs, m
}

func checkAgainstModel(t *testing.T, what string, a Arcs, m model) {
	t.Helper()
	if !a.IsNormalized() {
		t.Fatalf("%s = %v: not normalized", what, a)
	}
	for b := range 64 {
		if got, want := a.Contains(modelPos(b)), m&(1<<b) != 0; got != want {
			t.Fatalf("%s = %v: Contains(%d) = %v, model says %v", what, a, modelPos(b), got, want)
		}
	}
	for _, outside := range []uint64{32, 1 << 40, 1 << 63, top - 64} {
		if a.Contains(outside) {
			t.Fatalf("%s = %v contains %d, outside the model", what, a, outside)
		}
	}
	if n, full := a.Size(); full || n != uint64(bits.OnesCount64(uint64(m))) {
		t.Fatalf("%s = %v: Size() = %d, %v; model has %d", what, a, n, full, bits.OnesCount64(uint64(m)))
	}
}

func TestArcsAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 20000 {
		ra, ma := randModelRanges(rng)
		rb, mb := randModelRanges(rng)
		a, b := Normalize(ra...), Normalize(rb...)
		checkAgainstModel(t, "Normalize", a, ma)
		checkAgainstModel(t, "Union", a.Union(b), ma|mb)
		checkAgainstModel(t, "Intersect", a.Intersect(b), ma&mb)
		checkAgainstModel(t, "Subtract", a.Subtract(b), ma&^mb)
		if got, want := a.Equal(b), ma == mb; got != want {
			t.Fatalf("case %d: %v.Equal(%v) = %v, model says %v", i, a, b, got, want)
		}
		if got, want := a.IsEmpty(), ma == 0; got != want {
			t.Fatalf("case %d: %v.IsEmpty() = %v, model says %v", i, a, got, want)
		}
	}
}

// TestArcsLaws checks the laws of set algebra on random arcs of the full
// 64-bit space, where no brute force is possible.
func TestArcsLaws(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range 5000 {
		pool := endpointPool(rng)
		a, b, c := randArcs(rng, pool, 8), randArcs(rng, pool, 8), randArcs(rng, pool, 8)
		laws := []struct {
			name        string
			left, right Arcs
		}{
			{"union commutes", a.Union(b), b.Union(a)},
			{"intersect commutes", a.Intersect(b), b.Intersect(a)},
			{"union associates", a.Union(b).Union(c), a.Union(b.Union(c))},
			{"intersect associates", a.Intersect(b).Intersect(c), a.Intersect(b.Intersect(c))},
			{"intersect distributes", a.Intersect(b.Union(c)), a.Intersect(b).Union(a.Intersect(c))},
			{"union distributes", a.Union(b.Intersect(c)), a.Union(b).Intersect(a.Union(c))},
			{"a = (a-b) + (a&b)", a.Subtract(b).Union(a.Intersect(b)), a},
			{"(a-b) & b = 0", a.Subtract(b).Intersect(b), nil},
			{"de Morgan union", Full().Subtract(a.Union(b)), Full().Subtract(a).Intersect(Full().Subtract(b))},
			{"de Morgan intersect", Full().Subtract(a.Intersect(b)), Full().Subtract(a).Union(Full().Subtract(b))},
			{"double complement", Full().Subtract(Full().Subtract(a)), a},
			{"a - b = a & not b", a.Subtract(b), a.Intersect(Full().Subtract(b))},
			{"normalize is idempotent", Normalize(a...), a},
		}
		for _, l := range laws {
			if !l.left.IsNormalized() || !l.left.Equal(l.right) {
				t.Fatalf("case %d: %s fails: a=%v b=%v c=%v: %v != %v", i, l.name, a, b, c, l.left, l.right)
			}
		}
		if lhs, rhs := sizeOf(a.Union(b)).add(sizeOf(a.Intersect(b))), sizeOf(a).add(sizeOf(b)); lhs != rhs {
			t.Fatalf("case %d: |a+b|+|a&b| = %v, |a|+|b| = %v; a=%v b=%v", i, lhs, rhs, a, b)
		}
		checkPartition(t, "a and its complement", []Arcs{a, Full().Subtract(a)})
		for _, p := range []uint64{pool[rng.IntN(len(pool))], rng.Uint64()} {
			if a.Union(b).Contains(p) != (a.Contains(p) || b.Contains(p)) ||
				a.Intersect(b).Contains(p) != (a.Contains(p) && b.Contains(p)) ||
				a.Subtract(b).Contains(p) != (a.Contains(p) && !b.Contains(p)) {
				t.Fatalf("case %d: membership of %d disagrees; a=%v b=%v", i, p, a, b)
			}
		}
	}
}

func TestOperationsDoNotModifyOperands(t *testing.T) {
	a := Arcs{{0, 9}, {20, 29}}
	b := Arcs{{5, 24}}
	a0, b0 := append(Arcs(nil), a...), append(Arcs(nil), b...)
	_ = a.Union(b)
	_ = a.Intersect(b)
	_ = a.Subtract(b)
	rs := []Range{{9, 1}, {3, 4}}
	_ = Normalize(rs...)
	if !a.Equal(a0) || !b.Equal(b0) || rs[0] != (Range{9, 1}) {
		t.Fatalf("operands changed: a=%v b=%v rs=%v", a, b, rs)
	}
}
