package sharding

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// footprint is the memory a ring keeps, in bytes.
func (r *Ring) footprint() int {
	return 8*len(r.points) + 4*len(r.owners) + 4*len(r.index)
}

// shares returns each member's share of the space, indexed like r.ids.
func shares(r *Ring) []float64 {
	arcs := r.allArcs()
	out := make([]float64, len(arcs))
	for i, a := range arcs {
		out[i] = a.Share()
	}
	return out
}

// spread returns the largest and smallest share relative to the mean.
func spread(r *Ring) (hi, lo float64) {
	sh := shares(r)
	n := float64(len(sh))
	hi, lo = 0, 2
	for _, s := range sh {
		hi, lo = max(hi, s*n), min(lo, s*n)
	}
	return hi, lo
}

// TestBalanceReport measures how evenly the ring spreads the space and
// prints the figures; run it with go test -v -run Balance ./sharding/.
func TestBalanceReport(t *testing.T) {
	const limit = 1.10
	t.Run("equal weights, ids worker-0..", func(t *testing.T) {
		step := 1
		if testing.Short() {
			step = 7
		}
		worst, worstN := 0.0, 0
		var line strings.Builder
		for n := 3; n <= 100; n += step {
			r := mustRing(t, memberList(workerIDs(n)...))
			hi, lo := spread(r)
			if hi > worst {
				worst, worstN = hi, n
			}
			if hi > limit {
				t.Errorf("%d members: largest share %.3f x mean, over %.2f", n, hi, limit)
			}
			fmt.Fprintf(&line, " %d:%.3f/%.3f", n, hi, lo)
			if n%10 == 0 || n+step > 100 {
				t.Logf("members:max/min x mean%s", line.String())
				line.Reset()
			}
		}
		r := mustRing(t, memberList(workerIDs(100)...))
		t.Logf("worst largest share %.3f x mean at %d members; a 100-member ring holds %d nodes in %.1f MiB",
			worst, worstN, len(r.points), float64(r.footprint())/(1<<20))
	})

	t.Run("equal weights, random ids", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(6, 6))
		for _, n := range []int{3, 10, 30, 100} {
			worst, sum := 0.0, 0.0
			const sets = 5
			for range sets {
				ids := make([]string, n)
				for i := range ids {
					ids[i] = fmt.Sprintf("%x", rng.Uint64())
				}
				hi, _ := spread(mustRing(t, memberList(ids...)))
				worst, sum = max(worst, hi), sum+hi
				if hi > limit {
					t.Errorf("%d random members: largest share %.3f x mean, over %.2f", n, hi, limit)
				}
			}
			t.Logf("%3d members, %d random id sets: largest share %.3f x mean on average, %.3f at worst", n, sets, sum/sets, worst)
		}
	})

	t.Run("weights", func(t *testing.T) {
		weights := []float64{1, 0.25, 2, 0.5, 4, 1.5, 3}
		for _, n := range []int{2, 3, 7, 20, 50} {
			ms := make([]Member, n)
			total := 0.0
			for i := range ms {
				ms[i] = Member{ID: fmt.Sprintf("worker-%d", i), Weight: weights[i%len(weights)]}
				total += ms[i].Weight
			}
			r := mustRing(t, ms)
			worstDev, worstID := 0.0, ""
			for _, m := range ms {
				want := m.Weight / total
				dev := r.Arcs(m.ID).Share()/want - 1
				if dev < 0 {
					dev = -dev
				}
				if dev > worstDev {
					worstDev, worstID = dev, m.ID
				}
				if dev > 0.10 {
					t.Errorf("%d members: %s of weight %v holds %.4f of the space, %.1f%% off its %.4f",
						n, m.ID, m.Weight, r.Arcs(m.ID).Share(), 100*dev, want)
				}
			}
			t.Logf("%2d members, weights %v...: share off its weight by %.1f%% at worst (%s)", n, weights[:min(n, len(weights))], 100*worstDev, worstID)
		}
	})
}

// TestVNodeChoice prints what other virtual node counts would give, the
// figures behind VNodesPerWeight: the largest share of 100 equal members,
// and how far past 1/N a join to two members strays, the worst case for
// the "a join moves at most 1/N + 2%" promise.
func TestVNodeChoice(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement, not a check")
	}
	for _, v := range []int{1024, 2048, VNodesPerWeight} {
		rng := rand.New(rand.NewPCG(12, 12))
		worst := 0.0
		for range 3 {
			ids := make([]string, 100)
			for i := range ids {
				ids[i] = fmt.Sprintf("%x", rng.Uint64())
			}
			r, err := buildRing(memberList(ids...), v)
			if err != nil {
				t.Fatal(err)
			}
			hi, _ := spread(r)
			worst = max(worst, hi)
		}
		var sum, sumSq float64
		over := 0
		const pairs = 300
		for range pairs {
			r, err := buildRing(memberList(fmt.Sprintf("%x", rng.Uint64()), fmt.Sprintf("%x", rng.Uint64())), v)
			if err != nil {
				t.Fatal(err)
			}
			excess := r.arcsOf(1).Share() - 0.5
			sum, sumSq = sum+excess, sumSq+excess*excess
			if excess > 0.02 {
				over++
			}
		}
		mean := sum / pairs
		t.Logf("%4d vnodes per member: 100 members, largest share %.3f x mean (worst of 3 id sets); a join to 2 members moves 1/N%+.4f on average (sd %.4f), over 1/N+2%% in %d of %d",
			v, worst, mean, math.Sqrt(sumSq/pairs-mean*mean), over, pairs)
	}
}
