package sharding

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The tests here drive a simulated fleet through random sequences of joins,
// crashes, splits and carves, with the package doing what workers and the
// coordinator will do with it, and check after every step that every hash
// is owned by exactly one unit.

// holding is a unit and the member that holds it.
type holding struct {
	member string
	unit   Unit
}

type fleet struct {
	t        *testing.T
	rng      *rand.Rand
	ring     *Ring
	holdings []holding
	// worstJoinExcess is the largest share a join moved beyond 1/N.
	worstJoinExcess float64
	joins, leaves   int
}

func newFleet(t *testing.T, rng *rand.Rand, n int) *fleet {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("m-%x", rng.Uint64())
	}
	f := &fleet{t: t, rng: rng, ring: mustRing(t, memberList(ids...))}
	for _, a := range InitialPlan(f.ring) {
		f.holdings = append(f.holdings, holding{member: a.Member, unit: a.Unit})
	}
	return f
}

// arcsByMember returns every member's arcs of r in one walk of the ring.
func arcsByMember(r *Ring) map[string]Arcs {
	all := r.allArcs()
	out := make(map[string]Arcs, len(all))
	for i, id := range r.ids {
		out[id] = all[i]
	}
	return out
}

// join adds a member: the ring moves it only what it gains, at most about
// 1/N of the space, and every holder hands it the part of its units that
// JoinMoves names.
func (f *fleet) join() {
	joiner := fmt.Sprintf("m-%x", f.rng.Uint64())
	next := mustRing(f.t, memberList(append(f.ring.Members(), joiner)...))
	before, after := arcsByMember(f.ring), arcsByMember(next)
	for id, a := range before {
		if gained := after[id].Subtract(a); !gained.IsEmpty() {
			f.t.Fatalf("join of %s: %s gained %v", joiner, id, gained)
		}
	}
	n := float64(len(next.ids))
	moved := after[joiner].Share()
	if moved > 1/n+0.02 {
		f.t.Fatalf("join to %v members moved %.4f of the space, more than 1/N+2%%", n, moved)
	}
	f.worstJoinExcess = max(f.worstJoinExcess, moved-1/n)

	var kept []holding
	var handed Arcs
	for _, h := range f.holdings {
		moves := JoinMoves(f.ring, next, h.unit.Arcs)
		if len(moves) == 0 {
			kept = append(kept, h)
			continue
		}
		joiners := slices.Sorted(maps.Keys(moves))
		parts := make([]Arcs, len(joiners))
		for i, j := range joiners {
			parts[i] = moves[j]
		}
		children := h.unit.Carve(parts...)
		kept = appendUnit(kept, h.member, children[0])
		for i, c := range children[1:] {
			handed = handed.Union(c.Arcs)
			kept = appendUnit(kept, joiners[i], c)
		}
	}
	if !handed.Equal(after[joiner]) {
		f.t.Fatalf("join of %s: holders handed over %.4f of the space, its ring share is %.4f", joiner, handed.Share(), after[joiner].Share())
	}
	f.ring, f.holdings = next, kept
	f.joins++
}

// leave crashes a member: on the ring only its arcs change owner, and its
// units are split among the survivors, each taking the child Pick names.
func (f *fleet) leave() {
	if len(f.ring.ids) < 2 {
		return
	}
	leaver := f.ring.ids[f.rng.IntN(len(f.ring.ids))]
	survivors := slices.DeleteFunc(f.ring.Members(), func(id string) bool { return id == leaver })
	next := mustRing(f.t, memberList(survivors...))
	before, after := arcsByMember(f.ring), arcsByMember(next)
	for _, id := range survivors {
		if lost := before[id].Subtract(after[id]); !lost.IsEmpty() {
			f.t.Fatalf("leave of %s: %s lost %v", leaver, id, lost)
		}
		if gained := after[id].Subtract(before[id]); !gained.Subtract(before[leaver]).IsEmpty() {
			f.t.Fatalf("leave of %s: %s gained arcs the leaver did not hold", leaver, id)
		}
	}

	var kept []holding
	var orphaned, adopted Arcs
	for _, h := range f.holdings {
		if h.member != leaver {
			kept = append(kept, h)
			continue
		}
		orphaned = orphaned.Union(h.unit.Arcs)
		children := h.unit.Split(len(survivors))
		// Survivors learn of each other in no particular order.
		view := slices.Clone(survivors)
		f.rng.Shuffle(len(view), func(i, j int) { view[i], view[j] = view[j], view[i] })
		for _, s := range survivors {
			i, ok := Pick(view, s)
			if !ok {
				f.t.Fatalf("Pick(%v, %s) failed", view, s)
			}
			adopted = adopted.Union(children[i].Arcs)
			kept = appendUnit(kept, s, children[i])
		}
	}
	if !adopted.Equal(orphaned) {
		f.t.Fatalf("leave of %s: survivors adopted %v of its %v", leaver, adopted.Share(), orphaned.Share())
	}
	f.ring, f.holdings = next, kept
	f.leaves++
}

// split divides a random unit k ways among random members.
func (f *fleet) split() {
	i := f.rng.IntN(len(f.holdings))
	h := f.holdings[i]
	f.holdings = slices.Delete(f.holdings, i, i+1)
	for _, c := range h.unit.Split(1 + f.rng.IntN(6)) {
		f.holdings = appendUnit(f.holdings, f.ring.ids[f.rng.IntN(len(f.ring.ids))], c)
	}
}

// carve cuts random, possibly overlapping, arcs out of a random unit.
func (f *fleet) carve() {
	i := f.rng.IntN(len(f.holdings))
	h := f.holdings[i]
	f.holdings = slices.Delete(f.holdings, i, i+1)
	pool := endpointPool(f.rng)
	for _, r := range h.unit.Arcs[:min(len(h.unit.Arcs), 4)] {
		pool = append(pool, r.Lo, r.Hi, r.Lo+(r.Hi-r.Lo)/2)
	}
	parts := make([]Arcs, 1+f.rng.IntN(3))
	for j := range parts {
		parts[j] = randArcs(f.rng, pool, 4)
	}
	for _, c := range h.unit.Carve(parts...) {
		f.holdings = appendUnit(f.holdings, f.ring.ids[f.rng.IntN(len(f.ring.ids))], c)
	}
}

// appendUnit records u as held by member, dropping it if empty, as the
// coordinator does: an empty unit has no work.
func appendUnit(hs []holding, member string, u Unit) []holding {
	if u.Empty() {
		return hs
	}
	return append(hs, holding{member: member, unit: u})
}

// check fails unless every hash lies in exactly one unit. The number of
// units holding x is the number of ranges starting at or below x less the
// number ending below x; with every range's starts and ends sorted apart,
// that is 1 for every x exactly when the first start is 0, the last end is
// the top and each start follows the previous end. It also probes random
// hashes one by one, checks unit ids are unique and that units survive
// encoding.
func (f *fleet) check(step string) {
	f.t.Helper()
	var los, his []uint64
	ids := make(map[string]bool, len(f.holdings))
	for _, h := range f.holdings {
		if !h.unit.Arcs.IsNormalized() {
			f.t.Fatalf("%s: unit %s not normalized", step, h.unit.ID)
		}
		if ids[h.unit.ID] {
			f.t.Fatalf("%s: two units named %s", step, h.unit.ID)
		}
		ids[h.unit.ID] = true
		for _, r := range h.unit.Arcs {
			los, his = append(los, r.Lo), append(his, r.Hi)
		}
	}
	slices.Sort(los)
	slices.Sort(his)
	if len(los) == 0 || los[0] != 0 || his[len(his)-1] != math.MaxUint64 {
		f.t.Fatalf("%s: units do not reach both ends of the space", step)
	}
	for i := 1; i < len(los); i++ {
		if los[i] != his[i-1]+1 {
			f.t.Fatalf("%s: a range ends at %d and the next starts at %d: a gap or an overlap", step, his[i-1], los[i])
		}
	}
	for _, p := range samplePositions(f.rng, 200) {
		owners := 0
		for _, h := range f.holdings {
			if h.unit.Arcs.Contains(p) {
				owners++
			}
		}
		if owners != 1 {
			f.t.Fatalf("%s: hash %#x is in %d units", step, p, owners)
		}
	}
	for _, h := range f.holdings[:min(len(f.holdings), 3)] {
		text, err := h.unit.MarshalText()
		var back Unit
		if err != nil || back.UnmarshalText(text) != nil || !unitsEqual(back, h.unit) {
			f.t.Fatalf("%s: unit %s does not survive encoding: %v", step, h.unit.ID, err)
		}
	}
}

func TestFleetProperties(t *testing.T) {
	sequences, steps := 8, 12
	if testing.Short() {
		sequences, steps = 3, 8
	}
	var worstExcess float64
	var joins, leaves int
	for s := range sequences {
		rng := rand.New(rand.NewPCG(10, uint64(s)))
		// Half the fleets are small, where a join moves the most and
		// splits leave the fewest positions per child.
		n := 1 + rng.IntN(200)
		if s%2 == 0 {
			n = 1 + rng.IntN(6)
		}
		t.Run(fmt.Sprintf("seq%d-%dmembers", s, n), func(t *testing.T) {
			f := newFleet(t, rng, n)
			f.check("initial plan")
			for step := range steps {
				var op string
				switch rng.IntN(4) {
				case 0:
					op = "join"
					f.join()
				case 1:
					op = "leave"
					f.leave()
				case 2:
					op = "split"
					f.split()
				default:
					op = "carve"
					f.carve()
				}
				f.check(fmt.Sprintf("step %d (%s, %d members, %d units)", step, op, len(f.ring.ids), len(f.holdings)))
			}
			worstExcess = max(worstExcess, f.worstJoinExcess)
			joins, leaves = joins+f.joins, leaves+f.leaves
		})
	}
	t.Logf("%d joins, %d leaves; the largest join moved 1/N%+.4f of the space", joins, leaves, worstExcess)
}

// TestJoinLeaveRing checks the ring alone on many random member sets: a
// join moves at most 1/N + 2% of the space, all of it to the joiner, and a
// leave moves only the leaver's arcs.
func TestJoinLeaveRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	sets := 40
	if testing.Short() {
		sets = 10
	}
	worst, worstN := math.Inf(-1), 0
	for s := range sets {
		n := 1 + rng.IntN(200)
		if s%2 == 0 {
			n = 1 + rng.IntN(8)
		}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%x", rng.Uint64())
		}
		joiner := fmt.Sprintf("%x", rng.Uint64())
		small := mustRing(t, memberList(ids...))
		big := mustRing(t, memberList(append(ids, joiner)...))
		before, after := arcsByMember(small), arcsByMember(big)
		var changed Arcs
		for _, id := range ids {
			// Seen as a join the members lose only to the joiner; seen as
			// the joiner leaving, they gain only what it held.
			lost := before[id].Subtract(after[id])
			if !lost.Subtract(after[joiner]).IsEmpty() || !after[id].Subtract(before[id]).IsEmpty() {
				t.Fatalf("set %d: %s's arcs changed beyond the joiner's", s, id)
			}
			changed = changed.Union(lost)
		}
		if !changed.Equal(after[joiner]) {
			t.Fatalf("set %d: the joiner's arcs are not exactly what the others lost", s)
		}
		excess := after[joiner].Share() - 1/float64(n+1)
		if excess > 0.02 {
			t.Fatalf("set %d: a join to %d members moved 1/N%+.4f", s, n+1, excess)
		}
		if excess > worst {
			worst, worstN = excess, n+1
		}
	}
	t.Logf("%d random joins and leaves: the largest moved 1/N%+.4f of the space (at %d members)", sets, worst, worstN)
}
