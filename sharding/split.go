package sharding

import (
	"math/bits"
	"slices"
	"strconv"
)

// Split divides u into k children that together hold exactly u's arcs,
// with no gap and no overlap, and hash-space shares that differ by at most
// one position: child i takes the positions from i*S/k to (i+1)*S/k - 1
// counted in ascending order through u's arcs, where S is u.Arcs.Size(),
// cutting inside a range where a boundary falls. Every child resumes from
// u's Cursor and is named u.ID + "." + i, so every survivor that computes
// the split gets the same children and Pick tells it which is its own.
// Children of a unit smaller than k positions may be empty. Split returns
// nil for k < 1.
func (u Unit) Split(k int) []Unit {
	if k < 1 {
		return nil
	}
	children := make([]Unit, k)
	for i := range children {
		children[i] = Unit{ID: childID(u.ID, i), Cursor: u.Cursor}
	}
	if k == 1 {
		children[0].Arcs = slices.Clone(u.Arcs)
		return children
	}

	// The boundaries i*S/k are computed in 128 bits: S may be 2^64, and
	// i*S overflows 64 bits long before that. Each quotient fits in 64
	// bits because i < k makes it less than S.
	n, full := u.Arcs.Size()
	var sizeHi uint64
	if full {
		sizeHi = 1 // S = 2^64, held as (1, 0)
	}
	c := newCutter(u.Arcs, len(u.Arcs)/k+2)
	var prev uint64
	for i := 1; i < k; i++ {
		hi, lo := bits.Mul64(uint64(i), n)
		hi += uint64(i) * sizeHi
		next, _ := bits.Div64(hi, lo, uint64(k))
		children[i-1].Arcs = c.take(next - prev)
		prev = next
	}
	// The last child takes whatever is left, so the cover is exact by
	// construction rather than by arithmetic.
	children[k-1].Arcs = c.rest()
	return children
}

// Carve cuts parts out of u: it returns len(parts)+1 children, where child 0
// is what is left of u after removing every part (what u's holder keeps)
// and child i is u's arcs within parts[i-1]. Should parts overlap, a
// position goes to the first part that holds it, so the children never
// overlap and always cover u exactly. Children are named u.ID + "." + i,
// keep u's Cursor, and may be empty; see Unit.Empty.
func (u Unit) Carve(parts ...Arcs) []Unit {
	children := make([]Unit, len(parts)+1)
	rest := slices.Clone(u.Arcs)
	for i, p := range parts {
		children[i+1] = Unit{ID: childID(u.ID, i+1), Arcs: rest.Intersect(p), Cursor: u.Cursor}
		rest = rest.Subtract(p)
	}
	children[0] = Unit{ID: childID(u.ID, 0), Arcs: nilIfEmpty(rest), Cursor: u.Cursor}
	return children
}

// Pick returns self's index among members sorted by id, duplicates counted
// once, and whether self is among them. It is the rule by which k
// survivors each take a different child of a Split into k without a
// leader: each passes the same member list (the k distinct survivors) and
// takes child i. Without self it returns -1, false.
func Pick(members []string, self string) (i int, ok bool) {
	ids := slices.Clone(members)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	i, ok = slices.BinarySearch(ids, self)
	if !ok {
		return -1, false
	}
	return i, true
}

func childID(parent string, i int) string { return parent + "." + strconv.Itoa(i) }

// cutter hands out consecutive runs of positions from arcs, in ascending
// order.
type cutter struct {
	arcs Arcs
	i    int    // the range being cut
	lo   uint64 // first position of arcs[i] not yet handed out
	hint int    // how many ranges a run is expected to span
}

func newCutter(a Arcs, hint int) *cutter {
	c := &cutter{arcs: a, hint: hint}
	if len(a) > 0 {
		c.lo = a[0].Lo
	}
	return c
}

// take returns the next n positions (fewer if the arcs run out).
func (c *cutter) take(n uint64) Arcs {
	if n == 0 {
		return nil
	}
	out := make(Arcs, 0, c.hint)
	for n > 0 && c.i < len(c.arcs) {
		hi := c.arcs[c.i].Hi
		// Positions left in this range are hi-c.lo+1, which overflows for
		// the whole space; compare against hi-c.lo instead.
		if n-1 < hi-c.lo {
			out = append(out, Range{Lo: c.lo, Hi: c.lo + n - 1})
			c.lo += n
			return out
		}
		out = append(out, Range{Lo: c.lo, Hi: hi})
		n -= hi - c.lo + 1 // cannot overflow: here it is at most n
		c.advance()
	}
	return nilIfEmpty(out)
}

// rest returns every position not yet handed out.
func (c *cutter) rest() Arcs {
	if c.i >= len(c.arcs) {
		return nil
	}
	out := make(Arcs, 0, len(c.arcs)-c.i)
	out = append(out, Range{Lo: c.lo, Hi: c.arcs[c.i].Hi})
	return append(out, c.arcs[c.i+1:]...)
}

func (c *cutter) advance() {
	c.i++
	if c.i < len(c.arcs) {
		c.lo = c.arcs[c.i].Lo
	}
}
