package coordinator

import (
	"math"
	"testing"
	"time"
)

func TestHeldShare(t *testing.T) {
	for _, tc := range []struct {
		name       string
		held, open int
		want       float64 // < 0: no share
	}{
		{"even", 4, 8, 0.5},
		{"uneven capacities", 2, 16, 0.125},
		{"the others finished: all of it", 2, 2, 1},
		{"after a failover", 6, 8, 0.75},
		{"unclaimed open slots count", 4, 10, 0.4},
		{"nothing held", 0, 8, -1},
		{"nothing open", 1, 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := heldShare(tc.held, tc.open)
			switch {
			case tc.want < 0 && ok:
				t.Errorf("share %v, want none", got)
			case tc.want >= 0 && (!ok || math.Abs(got-tc.want) > 1e-9):
				t.Errorf("share %v (%v), want %v", got, ok, tc.want)
			}
		})
	}
}

// Each member's rate share is the part of the open work it holds: uneven
// with uneven capacities, all of it once the other member's slots are
// done, and back to an equal split once the broadcast is over.
func TestRateShareFollowsHeldSlots(t *testing.T) {
	c := newCluster(t)
	const n = 4000
	s, l := newStream(n), newLedger(n)
	// w1 sends faster, so its slots are done while w0's are still open.
	dc := driverConfig{stream: s, ledger: l, every: 100, rate: 150}
	fast := dc
	fast.rate = 3000
	w0 := c.start("w0", memberOpts{}, dc)
	w1 := c.start("w1", memberOpts{capacity: 1.0 / 8}, fast)
	eventually(t, 10*time.Second, "two live members", func() bool { return w0.coord.LiveMembers() == 2 })
	if got := w0.coord.RateShare("rs"); got != 0.5 {
		t.Errorf("share of an unknown broadcast %v, want 1/2 (one of two live members)", got)
	}
	c.register("rs")
	eventually(t, 10*time.Second, "shares by held work", func() bool {
		s0, s1 := w0.coord.RateShare("rs"), w1.coord.RateShare("rs")
		return s0 > 0.8 && s0 < 1 && math.Abs(s0+s1-1) < 1e-9
	})
	eventually(t, 10*time.Second, "w0 to hold all the open work", func() bool { return w0.coord.RateShare("rs") == 1 })
	c.waitState("rs", StateDone, 20*time.Second)
	eventually(t, 5*time.Second, "an equal split once the broadcast is over", func() bool {
		return w0.coord.RateShare("rs") == 0.5 && w1.coord.RateShare("rs") == 0.5
	})
	if lost, dup := l.check(); len(lost)+len(dup) > 0 {
		t.Errorf("lost %d, duplicated %d", len(lost), len(dup))
	}
}
