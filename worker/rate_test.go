package worker

import (
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sink"
)

// TestFleetRateFollowsHeldWork: rate_per_sec is shared by the work each
// worker holds, not equally by the workers, so with uneven shares the
// fleet still runs at about the rate. Here w2, at an eighth of w1's
// capacity, holds about a ninth of the broadcast: split equally, w1 would
// send its eight ninths at half the rate, and the fleet would run at
// little more than half of it.
func TestFleetRateFollowsHeldWork(t *testing.T) {
	const perSec = 1000
	e := newEnv(t, sink.Config{})
	w1 := e.startWorker("w1", workerOpts{intake: true})
	e.startWorker("w2", workerOpts{capacity: 1.0 / 8})
	waitFor(t, 10*time.Second, "two live workers", func() bool { return w1.w.coord.LiveMembers() == 2 })
	spec := synthetic("uneven", e.endpoint(), 3300)
	spec["endpoint"].(map[string]any)["rate_per_sec"] = perSec
	e.trigger(spec)
	var share float64
	waitFor(t, 10*time.Second, "w1 to hold its part", func() bool {
		share = w1.w.coord.RateShare("uneven")
		return share > 0.8 && share < 1
	})
	st := e.waitDone("uneven", 60*time.Second)
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s, want done", st.State)
	}
	stats := e.sink.Stats()
	n := stats.Broadcasts["uneven"].Delivered
	took := stats.LastDeliveryAt.Sub(stats.FirstDeliveryAt)
	ratio := float64(n) / took.Seconds() / perSec
	// What an equal split would have given: the larger part at half the
	// rate.
	most := max(st.Workers["w1"].Delivered, st.Workers["w2"].Delivered)
	equal := float64(n) / float64(2*most)
	t.Logf("%d deliveries in %v: %.2f of the rate (w1's share %.3f; an equal split would give %.2f); by worker %+v",
		n, took.Round(time.Millisecond), ratio, share, equal, st.Workers)
	if equal > 0.7 {
		t.Fatalf("the work was split too evenly (an equal split gives %.2f of the rate) to tell the splits apart", equal)
	}
	if ratio < 0.75 {
		t.Errorf("the fleet ran at %.2f of rate_per_sec; sharing by held work should keep it near 1", ratio)
	}
	if ratio > 1.2 {
		t.Errorf("the fleet ran at %.2f of rate_per_sec: above the limit", ratio)
	}
}
