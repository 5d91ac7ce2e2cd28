package sharding

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestNewRingErrors(t *testing.T) {
	tests := []struct {
		name    string
		members []Member
		want    error
	}{
		{"no members", nil, ErrNoMembers},
		{"empty id", []Member{{ID: "a"}, {ID: ""}}, ErrEmptyMemberID},
		{"duplicate", []Member{{ID: "a"}, {ID: "b"}, {ID: "a", Weight: 2}}, ErrDuplicateMember},
		{"negative weight", []Member{{ID: "a", Weight: -1}}, ErrBadWeight},
		{"weight too small", []Member{{ID: "a", Weight: MinWeight / 2}}, ErrBadWeight},
		{"weight too large", []Member{{ID: "a", Weight: MaxWeight * 2}}, ErrBadWeight},
		{"NaN weight", []Member{{ID: "a", Weight: math.NaN()}}, ErrBadWeight},
		{"infinite weight", []Member{{ID: "a", Weight: math.Inf(1)}}, ErrBadWeight},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRing(tt.members)
			if !errors.Is(err, tt.want) || r != nil {
				t.Fatalf("NewRing(%v) = %v, %v; want nil, %v", tt.members, r, err, tt.want)
			}
		})
	}
}

func TestNewRingAcceptsWeightBounds(t *testing.T) {
	for _, w := range []float64{0, MinWeight, 1, MaxWeight} {
		if _, err := NewRing([]Member{{ID: "a", Weight: w}, {ID: "b"}}); err != nil {
			t.Errorf("weight %v: %v", w, err)
		}
	}
}

// TestRingVNodePositions checks positions by hand: a virtual node sits at
// the xxhash of its member's id followed by its index as four
// little-endian bytes, owns its own position, and the position after it
// belongs to the next node.
func TestRingVNodePositions(t *testing.T) {
	r := mustRing(t, memberList("alpha", "beta", "gamma"))
	for _, id := range []string{"alpha", "beta", "gamma"} {
		for _, j := range []uint32{0, 1, 7, VNodesPerWeight - 1} {
			key := binary.LittleEndian.AppendUint32([]byte(id), j)
			p := xxhash.Sum64(key)
			if got := r.Owner(p); got != id {
				t.Errorf("Owner(node %d of %s at %#x) = %q", j, id, p, got)
			}
			if !r.Arcs(id).Contains(p) {
				t.Errorf("Arcs(%s) misses its node %d at %#x", id, j, p)
			}
			i := r.successor(p)
			next := r.points[(i+1)%len(r.points)]
			if got, want := r.Owner(p+1), r.ids[r.owners[(i+1)%len(r.points)]]; p != next && got != want {
				t.Errorf("Owner(%#x) = %q, want %q, owner of the next node at %#x", p+1, got, want, next)
			}
		}
	}
	if n := len(r.points); n != 3*VNodesPerWeight {
		t.Errorf("ring holds %d nodes, want %d", n, 3*VNodesPerWeight)
	}
}

func TestRingWrapsToFirstNode(t *testing.T) {
	r := mustRing(t, memberList("a", "b", "c", "d"))
	first := r.ids[r.owners[0]]
	last := r.points[len(r.points)-1]
	for _, p := range []uint64{0, r.points[0], last + 1, math.MaxUint64} {
		if got := r.Owner(p); got != first {
			t.Errorf("Owner(%#x) = %q, want %q, owner of the first node", p, got, first)
		}
	}
	if got := r.Owner(last); got != r.ids[r.owners[len(r.points)-1]] {
		t.Errorf("Owner(last node) = %q", got)
	}
}

func TestRingIsIndependentOfMemberOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	ms := []Member{{ID: "w1"}, {ID: "w2", Weight: 2}, {ID: "w3", Weight: 0.5}, {ID: "w4"}, {ID: "w5", Weight: 1}}
	want := mustRing(t, ms)
	for range 5 {
		shuffled := slices.Clone(ms)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := mustRing(t, shuffled)
		if !slices.Equal(got.points, want.points) || !slices.Equal(got.owners, want.owners) || !slices.Equal(got.ids, want.ids) {
			t.Fatalf("ring of %v differs from ring of %v", shuffled, ms)
		}
	}
	if !mustRing(t, memberList("a", "b")).Arcs("a").Equal(mustRing(t, []Member{{ID: "b", Weight: 1}, {ID: "a", Weight: 0}}).Arcs("a")) {
		t.Fatal("weight 0 does not mean 1")
	}
}

func TestRingOwnerAgreesWithArcs(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{1, 2, 3, 17, 60} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ms := memberList(workerIDs(n)...)
			for i := range ms {
				ms[i].Weight = []float64{0, 0.25, 1, 3}[rng.IntN(4)]
			}
			r := mustRing(t, ms)
			arcs := make(map[string]Arcs)
			var parts []Arcs
			for _, id := range r.Members() {
				arcs[id] = r.Arcs(id)
				parts = append(parts, arcs[id])
			}
			checkPartition(t, "member arcs", parts)
			probe := samplePositions(rng, 2000)
			for _, p := range r.points[:min(len(r.points), 500)] {
				probe = append(probe, p-1, p, p+1)
			}
			for _, p := range probe {
				if owner := r.Owner(p); !arcs[owner].Contains(p) {
					t.Fatalf("Owner(%#x) = %q, whose arcs do not contain it", p, owner)
				}
			}
			walked := walkArcs(r)
			for i, id := range r.ids {
				if !walked[i].Equal(arcs[id]) {
					t.Fatalf("Arcs(%q) differs from a walk of the ring", id)
				}
			}
		})
	}
}

func TestRingSingleMemberOwnsAll(t *testing.T) {
	r := mustRing(t, memberList("solo"))
	if !r.Arcs("solo").Equal(Full()) {
		t.Fatalf("Arcs(solo) = %v, want the whole space", r.Arcs("solo"))
	}
	for _, p := range []uint64{0, 12345, math.MaxUint64} {
		if got := r.Owner(p); got != "solo" {
			t.Fatalf("Owner(%d) = %q", p, got)
		}
	}
}

func TestRingMembers(t *testing.T) {
	r := mustRing(t, memberList("c", "a", "b"))
	got := r.Members()
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("Members() = %v", got)
	}
	got[0] = "changed"
	if r.Members()[0] != "a" {
		t.Fatal("Members returns the ring's own slice")
	}
	if !r.Has("b") || r.Has("d") {
		t.Fatal("Has is wrong")
	}
	if r.Arcs("d") != nil {
		t.Fatal("Arcs of a stranger is not empty")
	}
}

func TestNilRing(t *testing.T) {
	var r *Ring
	if r.Owner(1) != "" || r.Members() != nil || r.Arcs("a") != nil || r.Has("a") {
		t.Fatal("nil ring is not empty")
	}
	if InitialPlan(r) != nil {
		t.Fatal("plan of a nil ring is not empty")
	}
}

func TestOwnerDoesNotAllocate(t *testing.T) {
	r := mustRing(t, memberList(workerIDs(10)...))
	if allocs := testing.AllocsPerRun(1000, func() { r.Owner(Position("subscriber-42")) }); allocs != 0 {
		t.Fatalf("Position+Owner allocates %v times", allocs)
	}
}

// walkArcs returns every member's arcs by walking the ring point by point,
// the obvious way, to check the faster per-member reading against.
func walkArcs(r *Ring) []Arcs {
	out := make([]Arcs, len(r.ids))
	n := len(r.points)
	for i := range n {
		lo := uint64(0)
		if i > 0 {
			lo = r.points[i-1] + 1
		}
		if i == 0 || r.points[i] != r.points[i-1] {
			out[r.owners[i]] = append(out[r.owners[i]], Range{Lo: lo, Hi: r.points[i]})
		}
	}
	if last := r.points[n-1]; last != math.MaxUint64 {
		out[r.owners[0]] = append(out[r.owners[0]], Range{Lo: last + 1, Hi: math.MaxUint64})
	}
	for m := range out {
		out[m] = Normalize(out[m]...)
	}
	return out
}

// TestRingCollidingNodes builds a ring by hand with nodes of two members on
// one position: the first in member order holds the arc, the second an
// empty one, and the ring still partitions the space.
func TestRingCollidingNodes(t *testing.T) {
	r := &Ring{
		ids:    []string{"a", "b"},
		points: []uint64{10, 10, 20, math.MaxUint64},
		owners: []uint32{0, 1, 1, 0},
	}
	r.finish()
	tests := []struct {
		pos  uint64
		want string
	}{{0, "a"}, {10, "a"}, {11, "b"}, {20, "b"}, {21, "a"}, {math.MaxUint64, "a"}}
	for _, tt := range tests {
		if got := r.Owner(tt.pos); got != tt.want {
			t.Errorf("Owner(%d) = %q, want %q", tt.pos, got, tt.want)
		}
	}
	if got, want := r.Arcs("a"), (Arcs{{0, 10}, {21, math.MaxUint64}}); !got.Equal(want) {
		t.Errorf("Arcs(a) = %v, want %v", got, want)
	}
	checkPartition(t, "colliding ring", []Arcs{r.Arcs("a"), r.Arcs("b")})
	if walked := walkArcs(r); !walked[0].Equal(r.Arcs("a")) || !walked[1].Equal(r.Arcs("b")) {
		t.Errorf("Arcs differ from a walk of the ring: %v", walked)
	}
}

func TestSortByPosIsStable(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	nodes := make([]vnode, 5000)
	for i := range nodes {
		// Few distinct positions, so that ties are common; owner tells
		// the nodes apart.
		nodes[i] = vnode{pos: uint64(rng.IntN(50)) << (rng.IntN(8) * 8), owner: uint32(i)}
	}
	want := slices.Clone(nodes)
	slices.SortStableFunc(want, func(x, y vnode) int { return cmp.Compare(x.pos, y.pos) })
	sortByPos(nodes)
	if !slices.Equal(nodes, want) {
		t.Fatal("sortByPos differs from a stable sort by position")
	}
}

func memberList(ids ...string) []Member {
	ms := make([]Member, len(ids))
	for i, id := range ids {
		ms[i] = Member{ID: id}
	}
	return ms
}

func workerIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("worker-%d", i)
	}
	return ids
}

func mustRing(t testing.TB, ms []Member) *Ring {
	t.Helper()
	r, err := NewRing(ms)
	if err != nil {
		t.Fatalf("NewRing: %v", err)
	}
	return r
}
