package sharding

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// slotFleet is a broadcast's slots and the members holding them, driven the
// way the coordinator drives them: every member computes Assign from the
// same view, claims the free slots it is given, and hands back the ones it
// holds that are given to someone else.
type slotFleet struct {
	t       *testing.T
	members []Member
	holder  []string // per slot; "" when free
	open    []bool
}

func newSlotFleet(t *testing.T, members []Member) *slotFleet {
	n := SlotCount(len(members))
	f := &slotFleet{t: t, members: slices.Clone(members), holder: make([]string, n), open: make([]bool, n)}
	for i := range f.open {
		f.open[i] = true
	}
	return f
}

func (f *slotFleet) holdings() []Holding {
	var hs []Holding
	for s, o := range f.open {
		if o {
			hs = append(hs, Holding{Slot: s, Holder: f.holder[s]})
		}
	}
	return hs
}

// converge runs rounds of claims and hand-backs until every open slot is
// held by its target. It returns how many slots live members handed back
// (moved) and how many free slots were claimed.
func (f *slotFleet) converge() (moved, claimed int) {
	f.t.Helper()
	live := map[string]bool{}
	for _, m := range f.members {
		live[m.ID] = true
	}
	for round := 0; ; round++ {
		if round == 4 {
			f.t.Fatalf("no convergence after %d rounds", round)
		}
		hs := f.holdings()
		target := Assign(f.members, hs)
		stable := true
		for i, h := range hs {
			switch {
			case h.Holder == target[i]:
			case h.Holder == "" || !live[h.Holder]:
				f.holder[h.Slot] = target[i]
				claimed++
				stable = false
			default:
				f.holder[h.Slot] = "" // handed back; claimed next round
				moved++
				stable = false
			}
		}
		if stable {
			return moved, claimed
		}
	}
}

// checkBalance fails unless every member holds within one slot of its exact
// share of the open slots, and returns the largest deviation relative to
// the exact share.
func (f *slotFleet) checkBalance(step string) float64 {
	f.t.Helper()
	count := map[string]int{}
	n := 0
	for s, o := range f.open {
		if o {
			count[f.holder[s]]++
			n++
		}
	}
	var total float64
	for _, m := range f.members {
		total += float64(weightOf(m.Weight))
	}
	worst := 0.0
	for _, m := range f.members {
		exact := float64(n) * float64(weightOf(m.Weight)) / total
		if d := math.Abs(float64(count[m.ID]) - exact); d >= 1 {
			f.t.Fatalf("%s: %s holds %d slots, its exact share is %.3f", step, m.ID, count[m.ID], exact)
		}
		if exact > 0 {
			worst = max(worst, math.Abs(float64(count[m.ID])-exact)/exact)
		}
	}
	return worst
}

func memberIDsN(prefix string, n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("%s%04d", prefix, i), Weight: 1}
	}
	return ms
}

func mixedWeights(rng *rand.Rand, ms []Member) []Member {
	for i := range ms {
		ms[i].Weight = []float64{0.5, 1, 1, 1.5, 2, 4}[rng.IntN(6)]
	}
	return ms
}

// At the start every member holds exactly its share when capacities are
// equal (the slot count is a multiple of the fleet), and within one slot
// of it otherwise; the figures show how far that is in relative terms.
func TestAssignBalanceAtStart(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 3, 5, 8, 13, 50, 99, 100, 257, 500, 999, 1000} {
		for _, mixed := range []bool{false, true} {
			ms := memberIDsN("m", n)
			if mixed {
				ms = mixedWeights(rng, ms)
			}
			f := newSlotFleet(t, ms)
			_, claimed := f.converge()
			worst := f.checkBalance("start")
			if claimed != len(f.open) {
				t.Fatalf("%d members: %d of %d slots claimed", n, claimed, len(f.open))
			}
			if !mixed && worst != 0 {
				t.Fatalf("%d equal members: a share %.1f%% off exact", n, 100*worst)
			}
			if n == 1000 || n == 100 || n == 13 {
				t.Logf("%4d members, mixed=%v: %d slots, worst share %.1f%% off exact", n, mixed, len(f.open), 100*worst)
			}
		}
	}
}

// One death frees only the dead member's slots, which the survivors below
// quota claim; no survivor gives up a slot. One join moves to the joiner
// at most its quota, every slot it takes coming from a member above quota.
// Both stay within one slot of exact shares.
func TestAssignMinimalMovesOnJoinAndLeave(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{2, 3, 4, 10, 63, 100, 1000} {
		for _, mixed := range []bool{false, true} {
			ms := memberIDsN("m", n)
			if mixed {
				ms = mixedWeights(rng, ms)
			}
			f := newSlotFleet(t, ms)
			f.converge()
			for step := range 20 {
				if rng.IntN(2) == 0 || len(f.members) == 1 {
					joiner := Member{ID: fmt.Sprintf("j%d-%d", step, rng.IntN(1e6)), Weight: 1}
					if mixed {
						joiner.Weight = []float64{0.5, 1, 2}[rng.IntN(3)]
					}
					f.members = append(f.members, joiner)
					moved, _ := f.converge()
					var total float64
					for _, m := range f.members {
						total += float64(weightOf(m.Weight))
					}
					share := float64(len(f.open)) * float64(weightOf(joiner.Weight)) / total
					if float64(moved) > math.Ceil(share) {
						t.Fatalf("%d members: a join moved %d slots; the joiner's share is %.2f", n, moved, share)
					}
				} else {
					i := rng.IntN(len(f.members))
					dead := f.members[i].ID
					f.members = slices.Delete(f.members, i, i+1)
					had := 0
					for s := range f.holder {
						if f.holder[s] == dead {
							had++
						}
					}
					moved, claimed := f.converge()
					if moved != 0 || claimed != had {
						t.Fatalf("%d members: a death moved %d live slots and claimed %d; the dead held %d",
							n, moved, claimed, had)
					}
				}
				f.checkBalance(fmt.Sprintf("%d members, step %d", n, step))
			}
		}
	}
}

// Finishing slots shrinks the open set; quotas follow it and the open
// slots stay spread within one slot of exact shares.
func TestAssignAsSlotsFinish(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	f := newSlotFleet(t, mixedWeights(rng, memberIDsN("m", 37)))
	f.converge()
	for left := len(f.open); left > 0; left-- {
		open := []int{}
		for s, o := range f.open {
			if o {
				open = append(open, s)
			}
		}
		f.open[open[rng.IntN(len(open))]] = false
		f.converge()
		f.checkBalance(fmt.Sprintf("%d open", left-1))
	}
}

// The target does not depend on the order of members or holdings.
func TestAssignIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 50 {
		ms := mixedWeights(rng, memberIDsN("x", 1+rng.IntN(60)))
		n := 1 + rng.IntN(500)
		hs := make([]Holding, n)
		for i := range hs {
			hs[i].Slot = i * 3
			if rng.IntN(3) > 0 {
				hs[i].Holder = ms[rng.IntN(len(ms))].ID
			}
			if rng.IntN(10) == 0 {
				hs[i].Holder = "gone"
			}
		}
		want := map[int]string{}
		for i, id := range Assign(ms, hs) {
			want[hs[i].Slot] = id
		}
		for range 5 {
			ms2, hs2 := slices.Clone(ms), slices.Clone(hs)
			rng.Shuffle(len(ms2), func(i, j int) { ms2[i], ms2[j] = ms2[j], ms2[i] })
			rng.Shuffle(len(hs2), func(i, j int) { hs2[i], hs2[j] = hs2[j], hs2[i] })
			for i, id := range Assign(ms2, hs2) {
				if want[hs2[i].Slot] != id {
					t.Fatalf("slot %d: %s, then %s with the input shuffled", hs2[i].Slot, want[hs2[i].Slot], id)
				}
			}
		}
	}
	if Assign(nil, []Holding{{Slot: 1}}) != nil {
		t.Fatal("no members should assign nothing")
	}
}

// BenchmarkAssign1000 is one member's decision for a broadcast of 8,000
// slots over 1,000 members: what each member computes on every change.
func BenchmarkAssign1000(b *testing.B) {
	ms := memberIDsN("m", 1000)
	hs := make([]Holding, SlotCount(1000))
	for i := range hs {
		hs[i] = Holding{Slot: i, Holder: ms[i/8].ID}
	}
	for b.Loop() {
		Assign(ms, hs)
	}
}

// BenchmarkAssignIndexed1000 is the same decision in the form the
// coordinator keeps its view in.
func BenchmarkAssignIndexed1000(b *testing.B) {
	weights := make([]float64, 1000)
	holders := make([]int32, SlotCount(1000))
	for i := range weights {
		weights[i] = 1
	}
	for i := range holders {
		holders[i] = int32(i / 8)
	}
	holders[17] = -1 // one free slot
	for b.Loop() {
		AssignIndexed(weights, holders)
	}
}
