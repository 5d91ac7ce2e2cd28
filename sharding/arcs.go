package sharding

import (
	"math"
	"slices"
)

// Every operation on Arcs expects normalized operands, as every Arcs this
// package returns is; Normalize makes any list of ranges so. None modifies
// its operands, and every result is freshly allocated, so an Arcs may be
// shared between units and goroutines once built.

// Full returns the whole hash space as Arcs.
func Full() Arcs { return Arcs{{Lo: 0, Hi: math.MaxUint64}} }

// Normalize returns the set of positions covered by ranges: sorted by Lo,
// overlapping and adjacent ranges merged. A range with Lo > Hi is read as an
// arc that wraps past the top of the space, [Lo, MaxUint64] ∪ [0, Hi], which
// is how an arc of the ring is naturally written. ranges is not modified.
func Normalize(ranges ...Range) Arcs {
	rs := make([]Range, 0, len(ranges)+1)
	for _, r := range ranges {
		if r.Lo <= r.Hi {
			rs = append(rs, r)
			continue
		}
		rs = append(rs, Range{Lo: r.Lo, Hi: math.MaxUint64}, Range{Lo: 0, Hi: r.Hi})
	}
	slices.SortFunc(rs, func(x, y Range) int {
		switch {
		case x.Lo < y.Lo:
			return -1
		case x.Lo > y.Lo:
			return 1
		}
		return 0
	})
	var out Arcs
	for _, r := range rs {
		out = appendMerged(out, r)
	}
	return out
}

// appendMerged appends r to a, merging it into the last range when they
// overlap or touch. r.Lo must not be below the last range's Lo.
func appendMerged(a Arcs, r Range) Arcs {
	if n := len(a); n > 0 {
		last := &a[n-1]
		// last.Hi+1 would overflow at the top of the space; the comparison
		// is written so that it cannot.
		if last.Hi == math.MaxUint64 || r.Lo <= last.Hi+1 {
			last.Hi = max(last.Hi, r.Hi)
			return a
		}
	}
	return append(a, r)
}

// IsNormalized reports whether a is in the form every operation expects:
// each range has Lo <= Hi, and ranges are sorted, apart and not adjacent.
func (a Arcs) IsNormalized() bool {
	for i, r := range a {
		if r.Lo > r.Hi {
			return false
		}
		if i > 0 && (a[i-1].Hi == math.MaxUint64 || r.Lo <= a[i-1].Hi+1) {
			return false
		}
	}
	return true
}

// Contains reports whether pos lies in a. It is a binary search over the
// ranges and does not allocate, so it can sit on the per-subscriber path.
func (a Arcs) Contains(pos uint64) bool {
	// Find the first range whose Hi is at or above pos; pos is in the set
	// exactly when that range starts at or below it.
	lo, hi := 0, len(a)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if a[mid].Hi < pos {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo < len(a) && a[lo].Lo <= pos
}

// Union returns the positions in a or b.
func (a Arcs) Union(b Arcs) Arcs {
	out := make(Arcs, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var r Range
		if j >= len(b) || (i < len(a) && a[i].Lo <= b[j].Lo) {
			r, i = a[i], i+1
		} else {
			r, j = b[j], j+1
		}
		out = appendMerged(out, r)
	}
	return nilIfEmpty(out)
}

// Intersect returns the positions in both a and b.
func (a Arcs) Intersect(b Arcs) Arcs {
	var out Arcs
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		lo, hi := max(a[i].Lo, b[j].Lo), min(a[i].Hi, b[j].Hi)
		if lo <= hi {
			out = append(out, Range{Lo: lo, Hi: hi})
		}
		// The range that ends first cannot meet anything further on.
		if a[i].Hi < b[j].Hi {
			i++
		} else {
			j++
		}
	}
	return out
}

// Subtract returns the positions in a that are not in b.
func (a Arcs) Subtract(b Arcs) Arcs {
	var out Arcs
	j := 0
	for _, r := range a {
		lo := r.Lo
		// Skip what of b lies wholly below this range.
		for j < len(b) && b[j].Hi < lo {
			j++
		}
		covered := false
		for k := j; k < len(b) && b[k].Lo <= r.Hi; k++ {
			if b[k].Lo > lo {
				out = append(out, Range{Lo: lo, Hi: b[k].Lo - 1})
			}
			if b[k].Hi >= r.Hi {
				covered = true
				break
			}
			lo = b[k].Hi + 1
		}
		if !covered {
			out = append(out, Range{Lo: lo, Hi: r.Hi})
		}
	}
	return out
}

// Equal reports whether a and b hold the same positions. Nil and empty are
// equal.
func (a Arcs) Equal(b Arcs) bool { return slices.Equal(a, b) }

// IsEmpty reports whether a holds no position.
func (a Arcs) IsEmpty() bool { return len(a) == 0 }

// Size returns the exact number of positions in a. The count ranges from 0
// to 2^64 inclusive, one more value than a uint64 holds, so the one count
// that does not fit, the whole space, is reported as full with n = 0;
// otherwise full is false and n is the count.
func (a Arcs) Size() (n uint64, full bool) {
	for _, r := range a {
		w := r.Hi - r.Lo + 1 // wraps to 0 only for the whole space
		if w == 0 {
			return 0, true
		}
		n += w
		// Disjoint ranges add up to at most 2^64, so a sum that wraps
		// has reached the whole space.
		if n < w {
			return 0, true
		}
	}
	return n, false
}

// Share returns the fraction of the hash space a holds, from 0 to 1.
func (a Arcs) Share() float64 {
	n, full := a.Size()
	if full {
		return 1
	}
	return float64(n) / (1 << 64)
}

func nilIfEmpty(a Arcs) Arcs {
	if len(a) == 0 {
		return nil
	}
	return a
}
