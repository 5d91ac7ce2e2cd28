package sharding

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// VNodesPerWeight is how many virtual nodes a member of weight 1 places on
// the ring. A member's share wanders from its fair value by about
// 1/sqrt(vnodes), so this count is what keeps the largest share of up to
// 100 equal members within 10% of the mean; see TestBalanceReport for the
// measured figures and BenchmarkNewRing100 for what it costs to build.
const VNodesPerWeight = 4096

// Ring errors.
var (
	ErrNoMembers       = errors.New("sharding: ring has no members")
	ErrEmptyMemberID   = errors.New("sharding: empty member id")
	ErrDuplicateMember = errors.New("sharding: duplicate member id")
	ErrBadWeight       = errors.New("sharding: bad member weight")
)

// Ring is an immutable consistent-hash ring. Each member places
// round(Weight*VNodesPerWeight) virtual nodes at positions that depend only
// on its own id and the node's index, so adding or removing a member moves
// only the arcs that member gains or loses. A position belongs to the member
// of the first virtual node at or after it, wrapping past the top. A
// membership change builds a new Ring; a Ring is safe for concurrent use.
type Ring struct {
	ids    []string // member ids, sorted
	points []uint64 // virtual node positions, ascending
	owners []uint32 // owners[i] indexes ids: who holds the arc ending at points[i]

	// index[b] is the first i whose points[i] lies in bucket b or above,
	// where a position's bucket is its top bits; it narrows a lookup to a
	// bucket of one or two points, so Owner does not walk a whole binary
	// search over hundreds of thousands of points.
	index []uint32
	shift uint

	// nodes[start[m]:start[m+1]] are the indexes into points of member
	// m's nodes, ascending, so a member's arcs are read off its own nodes
	// instead of a walk of the whole ring.
	nodes []uint32
	start []uint32
}

// vnode is a virtual node while the ring is being built.
type vnode struct {
	pos   uint64
	owner uint32 // index into the sorted ids
}

// NewRing builds the ring of members. The result depends on the set of
// members only, not on their order.
func NewRing(members []Member) (*Ring, error) {
	return buildRing(members, VNodesPerWeight)
}

// buildRing is NewRing with the number of virtual nodes per unit of weight
// as a parameter, so the choice of VNodesPerWeight can be measured.
func buildRing(members []Member, perWeight int) (*Ring, error) {
	if len(members) == 0 {
		return nil, ErrNoMembers
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(x, y Member) int { return strings.Compare(x.ID, y.ID) })
	r := &Ring{ids: make([]string, len(ms))}
	total := 0
	for i, m := range ms {
		if m.ID == "" {
			return nil, fmt.Errorf("sharding: new ring: member %d: %w", i, ErrEmptyMemberID)
		}
		if i > 0 && m.ID == ms[i-1].ID {
			return nil, fmt.Errorf("sharding: new ring: %q: %w", m.ID, ErrDuplicateMember)
		}
		n, err := vnodeCount(m.Weight, perWeight)
		if err != nil {
			return nil, fmt.Errorf("sharding: new ring: %q: %w", m.ID, err)
		}
		r.ids[i] = m.ID
		total += n
	}

	nodes := make([]vnode, 0, total)
	var key []byte
	for i, m := range ms {
		n, _ := vnodeCount(m.Weight, perWeight)
		for j := range n {
			// The key is the id followed by a fixed-width index, so no two
			// (id, index) pairs share a key.
			key = binary.LittleEndian.AppendUint32(append(key[:0], m.ID...), uint32(j))
			nodes = append(nodes, vnode{pos: xxhash.Sum64(key), owner: uint32(i)})
		}
	}
	// Two nodes at one position (vanishingly rare) keep the order they were
	// made in, member id then index, because the sort is stable; so the
	// same members always give the same ring. The first holds the arc and
	// the second an empty one.
	sortByPos(nodes)
	r.points = make([]uint64, len(nodes))
	r.owners = make([]uint32, len(nodes))
	for i, n := range nodes {
		r.points[i], r.owners[i] = n.pos, n.owner
	}
	r.finish()
	return r, nil
}

// sortByPos sorts nodes by position, stably: a least-significant-digit
// radix sort, a byte per pass. It is several times faster than a comparison
// sort at the hundreds of thousands of nodes a fleet's ring holds, which is
// most of what building a ring costs.
func sortByPos(nodes []vnode) {
	src, dst := nodes, make([]vnode, len(nodes))
	for shift := 0; shift < 64; shift += 8 {
		var start [257]int
		for _, n := range src {
			start[int(byte(n.pos>>shift))+1]++
		}
		for d := 1; d < len(start); d++ {
			start[d] += start[d-1]
		}
		for _, n := range src {
			d := byte(n.pos >> shift)
			dst[start[d]] = n
			start[d]++
		}
		src, dst = dst, src
	}
	// An even number of passes leaves the result in nodes.
}

// vnodeCount returns how many virtual nodes a member of weight w places.
func vnodeCount(w float64, perWeight int) (int, error) {
	if w == 0 {
		w = 1
	}
	if math.IsNaN(w) || w < MinWeight || w > MaxWeight {
		return 0, fmt.Errorf("%w: %v not in [%v, %v]", ErrBadWeight, w, MinWeight, MaxWeight)
	}
	return max(1, int(math.Round(w*float64(perWeight)))), nil
}

// finish builds the lookup structures from ids, points and owners.
func (r *Ring) finish() {
	r.buildIndex()
	r.start = make([]uint32, len(r.ids)+1)
	for _, o := range r.owners {
		r.start[o+1]++
	}
	for m := 1; m < len(r.start); m++ {
		r.start[m] += r.start[m-1]
	}
	r.nodes = make([]uint32, len(r.points))
	next := slices.Clone(r.start[:len(r.ids)])
	for i, o := range r.owners {
		r.nodes[next[o]] = uint32(i)
		next[o]++
	}
}

// buildIndex fills index with one bucket per one or two points: lookups
// stay a step or two after the bucket while the index costs at most four
// bytes a point.
func (r *Ring) buildIndex() {
	b := min(max(bits.Len(uint(len(r.points)))-1, 1), 24)
	r.shift = uint(64 - b)
	r.index = make([]uint32, 1<<b+1)
	i := 0
	for bucket := range r.index {
		for i < len(r.points) && r.points[i]>>r.shift < uint64(bucket) {
			i++
		}
		r.index[bucket] = uint32(i)
	}
}

// Owner returns the id of the member that owns pos, or "" for a nil Ring.
// It does not allocate.
func (r *Ring) Owner(pos uint64) string {
	if r == nil || len(r.points) == 0 {
		return ""
	}
	i := r.successor(pos)
	return r.ids[r.owners[i]]
}

// successor returns the index of the first point at or after pos, wrapping
// to 0 past the last.
func (r *Ring) successor(pos uint64) int {
	b := pos >> r.shift
	lo, hi := int(r.index[b]), int(r.index[b+1])
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.points[mid] < pos {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	// Nothing at or after pos in its bucket: every point of later buckets
	// is above pos, and lo is the first of them.
	if lo == len(r.points) {
		return 0
	}
	return lo
}

// Members returns the member ids, sorted.
func (r *Ring) Members() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.ids)
}

// Has reports whether id is a member of the ring.
func (r *Ring) Has(id string) bool {
	_, ok := r.memberIndex(id)
	return ok
}

func (r *Ring) memberIndex(id string) (uint32, bool) {
	if r == nil {
		return 0, false
	}
	i, ok := slices.BinarySearch(r.ids, id)
	return uint32(i), ok
}

// Arcs returns the positions member owns; empty if it is not a member. It
// costs about ten microseconds per thousand virtual nodes of the member, so
// callers should ask once per membership change, not per subscriber.
func (r *Ring) Arcs(member string) Arcs {
	m, ok := r.memberIndex(member)
	if !ok {
		return nil
	}
	return r.arcsOf(m)
}

// allArcs returns every member's arcs, indexed like ids.
func (r *Ring) allArcs() []Arcs {
	out := make([]Arcs, len(r.ids))
	for m := range out {
		out[m] = r.arcsOf(uint32(m))
	}
	return out
}

// arcsOf returns the arcs of the member with index m. The node at points[i]
// holds (points[i-1], points[i]]; the first node holds [0, points[0]] and
// also the top of the space above the last node, where the ring wraps. Of
// nodes at one position only the first holds anything.
func (r *Ring) arcsOf(m uint32) Arcs {
	nodes := r.nodes[r.start[m]:r.start[m+1]]
	out := make(Arcs, 0, len(nodes)+1)
	for _, i := range nodes {
		switch {
		case i == 0:
			out = appendMerged(out, Range{Lo: 0, Hi: r.points[0]})
		case r.points[i] != r.points[i-1]:
			out = appendMerged(out, Range{Lo: r.points[i-1] + 1, Hi: r.points[i]})
		}
	}
	if last := r.points[len(r.points)-1]; len(nodes) > 0 && nodes[0] == 0 && last != math.MaxUint64 {
		out = appendMerged(out, Range{Lo: last + 1, Hi: math.MaxUint64})
	}
	return nilIfEmpty(out)
}
