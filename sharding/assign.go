package sharding

import (
	"cmp"
	"math"
	"slices"
)

// Member is one fleet member able to take work, as Assign sees it.
type Member struct {
	// ID names the member; ids are unique among the members Assign is
	// given.
	ID string
	// Weight is the member's capacity relative to others: its quota of a
	// broadcast's open slots is proportional to it. 0 means 1; Assign
	// clamps anything else to [MinWeight, MaxWeight].
	Weight float64
}

// Weight bounds: the capacities a member may declare (the coordinator
// refuses a capacity outside them) and the range Assign clamps weights
// to. MinWeight is one unit of weightUnits, the finest Assign divides.
const (
	MinWeight = 1.0 / 64
	MaxWeight = 64.0
)

// Holding is one open slot of a broadcast and the member holding a claim
// on it: "" when no one does.
type Holding struct {
	Slot   int
	Holder string
}

// weightUnits is how finely Assign divides capacities: a weight counts as
// round(weight × weightUnits) units, so the arithmetic is in integers and
// every member computes the same answer. MinWeight is exactly one unit.
const weightUnits = 64

// Assign says which member should hold each open slot of a broadcast,
// given the members able to take work (live, not leaving) and who holds
// what now. The answer depends on the set of members and the holdings
// only, not on their order, so every member that computes it from the same
// view agrees without a leader. It returns one member id per entry of
// open, in open's order; it returns nil when members is empty. Member ids
// must be unique; a weight of 0 counts as 1, and weights are clamped to
// [MinWeight, MaxWeight].
//
// The rule:
//
//  1. Quotas. Each member's exact share of the n open slots is
//     n × weight / total weight. It gets the floor of that, and the
//     n − Σ floors slots left over go one each to members whose share has
//     a fractional part: first to those that hold more than their floor
//     already (so nobody gives up a slot only for another to take its
//     place), then by the larger fractional part, then by id. Every quota
//     is therefore within one slot of the exact share.
//  2. Stickiness. A member keeps the slots it holds, up to its quota, the
//     lowest slot numbers first.
//  3. The rest (free slots, slots a member holds beyond its quota, and
//     slots held by someone not in members, such as a leaving member) go
//     in ascending slot order to the members below quota, in id order,
//     each up to its quota.
//
// So a member that dies frees only its own slots, which go to the members
// its absence leaves below quota; a member that joins takes its quota from
// the members its arrival puts above theirs. Both move the fewest slots
// that exact quotas allow.
func Assign(members []Member, open []Holding) []string {
	if len(members) == 0 {
		return nil
	}
	ms := members
	if !slices.IsSortedFunc(ms, byID) {
		ms = slices.Clone(members)
		slices.SortFunc(ms, byID)
	}
	index := make(map[string]int32, len(ms))
	weights := make([]float64, len(ms))
	for i, mb := range ms {
		index[mb.ID] = int32(i)
		weights[i] = mb.Weight
	}
	// Slots in ascending order, as indexes into open.
	order := make([]int, len(open))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(open[a].Slot, open[b].Slot) })
	holders := make([]int32, len(open))
	for i, k := range order {
		holders[i] = -1
		if h, ok := index[open[k].Holder]; ok {
			holders[i] = h
		}
	}
	target := make([]string, len(open))
	for i, t := range AssignIndexed(weights, holders) {
		target[order[i]] = ms[t].ID
	}
	return target
}

// AssignIndexed is Assign for callers that keep members and holders as
// indexes: weights are the members' weights in id order, and holders[i]
// is the index of the member holding the i-th open slot in ascending slot
// order, or -1 for one held by no member. It returns the target member's
// index for each, in the same order, or nil when there are no members. It
// allocates O(members + slots) and runs in O(slots + members × log
// members), the cost a coordinator pays per broadcast on each change.
func AssignIndexed(weights []float64, holders []int32) []int32 {
	m := len(weights)
	if m == 0 {
		return nil
	}
	held := make([]int, m)
	for _, h := range holders {
		if h >= 0 {
			held[h]++
		}
	}
	quota := quotas(weights, len(holders), held)
	target := make([]int32, len(holders))
	kept := make([]int, m)
	for i, h := range holders {
		target[i] = -1
		if h >= 0 && kept[h] < quota[h] {
			target[i] = h
			kept[h]++
		}
	}
	next := int32(0)
	for i := range target {
		if target[i] >= 0 {
			continue
		}
		for kept[next] >= quota[next] {
			next++ // Σ quota = len(holders), so a member below quota remains
		}
		target[i] = next
		kept[next]++
	}
	return target
}

// quotas returns each member's quota of n slots (weights in member id
// order; held[i] is how many member i holds now). See Assign, step 1.
// Since members are in id order, comparing indexes compares ids.
func quotas(weights []float64, n int, held []int) []int {
	units := make([]int64, len(weights))
	var total int64
	for i, w := range weights {
		units[i] = weightOf(w)
		total += units[i]
	}
	quota := make([]int, len(weights))
	frac := make([]int64, len(weights))
	left := n
	for i := range weights {
		share := int64(n) * units[i]
		quota[i] = int(share / total)
		frac[i] = share % total
		left -= quota[i]
	}
	if left == 0 {
		return quota
	}
	// At least left+1 members have a fractional part (they sum to
	// left × total, each below total), so the left-over slots all find one.
	var cands []int
	for i := range weights {
		if frac[i] > 0 {
			cands = append(cands, i)
		}
	}
	slices.SortFunc(cands, func(a, b int) int {
		ha, hb := held[a] > quota[a], held[b] > quota[b]
		switch {
		case ha != hb:
			if ha {
				return -1
			}
			return 1
		case frac[a] != frac[b]:
			return cmp.Compare(frac[b], frac[a])
		}
		return cmp.Compare(a, b)
	})
	for _, i := range cands[:left] {
		quota[i]++
	}
	return quota
}

// weightOf is a weight in whole units of 1/weightUnits.
func weightOf(w float64) int64 {
	if w == 0 || math.IsNaN(w) {
		w = 1
	}
	w = min(max(w, MinWeight), MaxWeight)
	return int64(math.Round(w * weightUnits))
}

func byID(a, b Member) int { return cmp.Compare(a.ID, b.ID) }
