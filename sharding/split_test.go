package sharding

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	cur := Cursor{Seq: 42, Offset: 4096}
	tests := []struct {
		name string
		arcs Arcs
		k    int
		want []Arcs
	}{
		{"whole space in two", Full(), 2, []Arcs{{{0, 1<<63 - 1}}, {{1 << 63, top}}}},
		{"whole space in four", Full(), 4, []Arcs{
			{{0, 1<<62 - 1}}, {{1 << 62, 1<<63 - 1}}, {{1 << 63, 3<<62 - 1}}, {{3 << 62, top}}}},
		// 2^64 = 3*6148914691236517205 + 1: the first two children get
		// floor(S/3) positions each and the last the one left over.
		{"whole space in three", Full(), 3, []Arcs{
			{{0, 6148914691236517204}}, {{6148914691236517205, 12297829382473034409}}, {{12297829382473034410, top}}}},
		{"one", Arcs{{5, 9}, {20, 29}}, 1, []Arcs{{{5, 9}, {20, 29}}}},
		{"cuts inside a range", Arcs{{0, 9}}, 2, []Arcs{{{0, 4}}, {{5, 9}}}},
		{"spans ranges", Arcs{{0, 2}, {10, 12}, {20, 22}}, 2, []Arcs{{{0, 2}, {10, 10}}, {{11, 12}, {20, 22}}}},
		{"ends exactly on a range", Arcs{{0, 2}, {10, 12}}, 2, []Arcs{{{0, 2}}, {{10, 12}}}},
		{"fewer positions than children", Arcs{{7, 8}}, 4, []Arcs{nil, {{7, 7}}, nil, {{8, 8}}}},
		{"empty", nil, 3, []Arcs{nil, nil, nil}},
		{"at the top", Arcs{{top - 3, top}}, 2, []Arcs{{{top - 3, top - 2}}, {{top - 1, top}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := Unit{ID: "u1", Arcs: tt.arcs, Cursor: cur}
			got := parent.Split(tt.k)
			if len(got) != len(tt.want) {
				t.Fatalf("Split(%d) gave %d children", tt.k, len(got))
			}
			for i, c := range got {
				if c.ID != fmt.Sprintf("u1.%d", i) || c.Cursor != cur {
					t.Errorf("child %d: id %q cursor %v", i, c.ID, c.Cursor)
				}
				if !c.Arcs.Equal(tt.want[i]) {
					t.Errorf("child %d arcs %v, want %v", i, c.Arcs, tt.want[i])
				}
				if c.Empty() != tt.want[i].IsEmpty() {
					t.Errorf("child %d: Empty() = %v", i, c.Empty())
				}
			}
		})
	}
}

func TestSplitNothing(t *testing.T) {
	for _, k := range []int{0, -1} {
		if got := (Unit{ID: "u", Arcs: Full()}).Split(k); got != nil {
			t.Errorf("Split(%d) = %v, want nil", k, got)
		}
	}
}

func TestSplitDoesNotAlias(t *testing.T) {
	parent := Unit{ID: "u", Arcs: Arcs{{1, 2}, {5, 9}}}
	for _, k := range []int{1, 2} {
		for _, c := range parent.Split(k) {
			if len(c.Arcs) > 0 {
				c.Arcs[0].Lo = 99
			}
		}
	}
	if !parent.Arcs.Equal(Arcs{{1, 2}, {5, 9}}) {
		t.Fatalf("splitting changed the parent: %v", parent.Arcs)
	}
}

// TestSplitProperties splits random units into random numbers of children
// and checks that the children cover the parent exactly and that their
// sizes differ by at most one position.
func TestSplitProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 3000 {
		parent := Unit{ID: "p", Arcs: randArcs(rng, endpointPool(rng), 12), Cursor: Cursor{Seq: uint64(i)}}
		k := 1 + rng.IntN(40)
		if i%10 == 0 {
			k = 1 + rng.IntN(1000)
		}
		children := parent.Split(k)
		if len(children) != k {
			t.Fatalf("Split(%d) gave %d children", k, len(children))
		}
		var union Arcs
		var sum count
		var small, large uint64 = top, 0
		for _, c := range children {
			if !c.Arcs.IsNormalized() || !c.Arcs.Subtract(parent.Arcs).IsEmpty() {
				t.Fatalf("case %d: child %s = %v, not normalized or outside %v", i, c.ID, c.Arcs, parent.Arcs)
			}
			if !union.Intersect(c.Arcs).IsEmpty() {
				t.Fatalf("case %d: child %s overlaps an earlier child", i, c.ID)
			}
			union = union.Union(c.Arcs)
			sum = sum.add(sizeOf(c.Arcs))
			if k > 1 {
				n, _ := c.Arcs.Size() // at most 2^63 for k >= 2
				small, large = min(small, n), max(large, n)
			}
		}
		if !union.Equal(parent.Arcs) || sum != sizeOf(parent.Arcs) {
			t.Fatalf("case %d: children of %v cover %v (%v positions)", i, parent.Arcs, union, sum)
		}
		if k > 1 && large-small > 1 {
			t.Fatalf("case %d: child sizes range from %d to %d", i, small, large)
		}
	}
}

func TestCarve(t *testing.T) {
	cur := Cursor{Seq: 9}
	parent := Unit{ID: "u2", Arcs: Arcs{{0, 99}, {200, 299}}, Cursor: cur}
	tests := []struct {
		name  string
		parts []Arcs
		want  []Arcs
	}{
		{"no parts", nil, []Arcs{parent.Arcs}},
		{"one part", []Arcs{{{50, 249}}}, []Arcs{{{0, 49}, {250, 299}}, {{50, 99}, {200, 249}}}},
		{"two parts", []Arcs{{{0, 9}}, {{290, 400}}}, []Arcs{{{10, 99}, {200, 289}}, {{0, 9}}, {{290, 299}}}},
		{"part outside", []Arcs{{{100, 199}}}, []Arcs{parent.Arcs, nil}},
		{"everything", []Arcs{Full()}, []Arcs{nil, parent.Arcs}},
		{"overlapping parts, first wins", []Arcs{{{0, 59}}, {{50, 99}}}, []Arcs{{{200, 299}}, {{0, 59}}, {{60, 99}}}},
		{"empty part", []Arcs{nil, {{200, 299}}}, []Arcs{{{0, 99}}, nil, {{200, 299}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parent.Carve(tt.parts...)
			if len(got) != len(tt.want) {
				t.Fatalf("Carve gave %d children, want %d", len(got), len(tt.want))
			}
			for i, c := range got {
				if c.ID != fmt.Sprintf("u2.%d", i) || c.Cursor != cur {
					t.Errorf("child %d: id %q cursor %v", i, c.ID, c.Cursor)
				}
				if !c.Arcs.Equal(tt.want[i]) {
					t.Errorf("child %d arcs %v, want %v", i, c.Arcs, tt.want[i])
				}
			}
		})
	}
	if !parent.Arcs.Equal(Arcs{{0, 99}, {200, 299}}) {
		t.Fatalf("carving changed the parent: %v", parent.Arcs)
	}
}

func TestCarveProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for i := range 3000 {
		pool := endpointPool(rng)
		parent := Unit{ID: "p", Arcs: randArcs(rng, pool, 10)}
		parts := make([]Arcs, rng.IntN(5))
		for j := range parts {
			parts[j] = randArcs(rng, pool, 4)
		}
		children := parent.Carve(parts...)
		var union Arcs
		var sum count
		for j, c := range children {
			if !c.Arcs.IsNormalized() || !union.Intersect(c.Arcs).IsEmpty() {
				t.Fatalf("case %d: child %d = %v is not normalized or overlaps", i, j, c.Arcs)
			}
			if j > 0 && !c.Arcs.Subtract(parts[j-1]).IsEmpty() {
				t.Fatalf("case %d: child %d = %v strays outside its part %v", i, j, c.Arcs, parts[j-1])
			}
			union = union.Union(c.Arcs)
			sum = sum.add(sizeOf(c.Arcs))
		}
		if !union.Equal(parent.Arcs) || sum != sizeOf(parent.Arcs) {
			t.Fatalf("case %d: children cover %v, parent %v", i, union, parent.Arcs)
		}
		for _, p := range parts {
			if !children[0].Arcs.Intersect(p).IsEmpty() {
				t.Fatalf("case %d: the kept child %v still holds part of %v", i, children[0].Arcs, p)
			}
		}
	}
}

func TestPick(t *testing.T) {
	tests := []struct {
		name    string
		members []string
		self    string
		want    int
		ok      bool
	}{
		{"first", []string{"b", "a", "c"}, "a", 0, true},
		{"middle", []string{"b", "a", "c"}, "b", 1, true},
		{"last", []string{"b", "a", "c"}, "c", 2, true},
		{"alone", []string{"a"}, "a", 0, true},
		{"absent", []string{"b", "a"}, "z", -1, false},
		{"no members", nil, "a", -1, false},
		{"duplicates count once", []string{"c", "a", "a", "b"}, "c", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.members)
			i, ok := Pick(tt.members, tt.self)
			if i != tt.want || ok != tt.ok {
				t.Fatalf("Pick(%v, %q) = %d, %v; want %d, %v", tt.members, tt.self, i, ok, tt.want, tt.ok)
			}
			if !slices.Equal(in, tt.members) {
				t.Fatal("Pick reordered its argument")
			}
		})
	}
}

// TestPickTakesEveryChild checks the point of Pick: survivors that each see
// the member list in their own order still take k different children.
func TestPickTakesEveryChild(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for range 200 {
		survivors := workerIDs(1 + rng.IntN(30))
		children := Unit{ID: "u0", Arcs: Full()}.Split(len(survivors))
		taken := make(map[string]string)
		for _, self := range survivors {
			view := slices.Clone(survivors)
			rng.Shuffle(len(view), func(i, j int) { view[i], view[j] = view[j], view[i] })
			i, ok := Pick(view, self)
			if !ok {
				t.Fatalf("%s not picked from %v", self, view)
			}
			if other, dup := taken[children[i].ID]; dup {
				t.Fatalf("%s and %s both take %s", self, other, children[i].ID)
			}
			taken[children[i].ID] = self
		}
		if len(taken) != len(children) {
			t.Fatalf("%d survivors took %d of %d children", len(survivors), len(taken), len(children))
		}
	}
}
