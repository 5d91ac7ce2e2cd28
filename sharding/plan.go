package sharding

import "strconv"

// Assignment gives a unit to a member.
type Assignment struct {
	Member string
	Unit   Unit
}

// InitialPlan returns a broadcast's first units: one per member of r, in
// sorted member order, holding the member's arcs of r from the start of the
// audience. The unit of the i-th member is named "u" + i. Every position
// belongs to exactly one of them.
func InitialPlan(r *Ring) []Assignment {
	if r == nil {
		return nil
	}
	arcs := r.allArcs()
	plan := make([]Assignment, len(r.ids))
	for i, id := range r.ids {
		plan[i] = Assignment{Member: id, Unit: Unit{ID: "u" + strconv.Itoa(i), Arcs: arcs[i]}}
	}
	return plan
}

// JoinMoves returns, for arcs held under the old ring, the part that each
// member of next who was not in old takes over: its arcs of next within
// held. Joiners that take nothing of held are left out, so an empty map
// means nothing to hand over. Because a consistent-hash ring moves to a
// joiner only what it gains, a single join takes about 1/N of the space
// from the fleet, where N counts members after the join. A nil old ring has
// no members. The holder keeps the rest; Unit.Carve cuts the moves out of
// its unit, taking the joiners in sorted order so every party names the
// children alike.
func JoinMoves(old, next *Ring, held Arcs) map[string]Arcs {
	moves := make(map[string]Arcs)
	if next == nil || held.IsEmpty() {
		return moves
	}
	for _, id := range next.ids {
		if old.Has(id) {
			continue
		}
		if part := next.Arcs(id).Intersect(held); !part.IsEmpty() {
			moves[id] = part
		}
	}
	return moves
}
