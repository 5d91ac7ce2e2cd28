package sharding

import (
	"fmt"
	"maps"
	"slices"
	"testing"
)

func TestInitialPlan(t *testing.T) {
	for _, n := range []int{1, 2, 5, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := mustRing(t, memberList(workerIDs(n)...))
			plan := InitialPlan(r)
			members := r.Members()
			if len(plan) != n {
				t.Fatalf("plan has %d units for %d members", len(plan), n)
			}
			var parts []Arcs
			for i, a := range plan {
				if a.Member != members[i] || a.Unit.ID != fmt.Sprintf("u%d", i) || a.Unit.Cursor != (Cursor{}) {
					t.Fatalf("assignment %d = %s %s %v", i, a.Member, a.Unit.ID, a.Unit.Cursor)
				}
				if !a.Unit.Arcs.Equal(r.Arcs(a.Member)) {
					t.Fatalf("unit of %s does not hold its ring arcs", a.Member)
				}
				parts = append(parts, a.Unit.Arcs)
			}
			checkPartition(t, "initial plan", parts)
		})
	}
}

func TestJoinMoves(t *testing.T) {
	old := mustRing(t, memberList("a", "b", "c"))
	joined := mustRing(t, memberList("a", "b", "c", "d"))
	twoJoined := mustRing(t, memberList("a", "b", "c", "d", "e"))
	left := mustRing(t, memberList("a", "b"))
	tests := []struct {
		name      string
		old, next *Ring
		held      Arcs
		want      map[string]Arcs
	}{
		{"one joins, all held", old, joined, Full(), map[string]Arcs{"d": joined.Arcs("d")}},
		{"one joins, a's arcs held", old, joined, old.Arcs("a"), map[string]Arcs{"d": joined.Arcs("d").Intersect(old.Arcs("a"))}},
		{"two join", old, twoJoined, Full(), map[string]Arcs{"d": twoJoined.Arcs("d"), "e": twoJoined.Arcs("e")}},
		{"nothing held", old, joined, nil, map[string]Arcs{}},
		{"held part the joiner does not take", old, joined, joined.Arcs("a"), map[string]Arcs{}},
		{"no change", old, old, Full(), map[string]Arcs{}},
		{"a member left", old, left, Full(), map[string]Arcs{}},
		{"from no ring", nil, left, Full(), map[string]Arcs{"a": left.Arcs("a"), "b": left.Arcs("b")}},
		{"to no ring", old, nil, Full(), map[string]Arcs{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := JoinMoves(tt.old, tt.next, tt.held)
			if !maps.EqualFunc(got, tt.want, Arcs.Equal) {
				t.Fatalf("JoinMoves = %v keys, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.want)))
			}
		})
	}
}

// TestJoinHandover hands a joiner its part of every unit of a plan, the way
// holders do, and checks that the joiner ends up with exactly its ring
// arcs, about 1/N of the space, while the holders keep the rest.
func TestJoinHandover(t *testing.T) {
	old := mustRing(t, memberList(workerIDs(9)...))
	next := mustRing(t, memberList(append(workerIDs(9), "late")...))
	var kept, moved []Arcs
	for _, a := range InitialPlan(old) {
		moves := JoinMoves(old, next, a.Unit.Arcs)
		joiners := slices.Sorted(maps.Keys(moves))
		parts := make([]Arcs, len(joiners))
		for i, j := range joiners {
			parts[i] = moves[j]
		}
		children := a.Unit.Carve(parts...)
		kept = append(kept, children[0].Arcs)
		for _, c := range children[1:] {
			moved = append(moved, c.Arcs)
		}
	}
	var all Arcs
	for _, m := range moved {
		all = all.Union(m)
	}
	if !all.Equal(next.Arcs("late")) {
		t.Fatal("the joiner did not receive exactly its ring arcs")
	}
	checkPartition(t, "after the join", append(kept, moved...))
	if share := all.Share(); share > 1.0/10+0.02 {
		t.Fatalf("a join to 10 members moved %.4f of the space", share)
	}
	t.Logf("a join to 10 members moved %.4f of the space (1/N = 0.1)", all.Share())
}
