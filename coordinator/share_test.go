package coordinator

import (
	"math"
	"testing"
	"time"

	"github.com/herald-dev/herald/sharding"
)

// shareView is a hand-made broadcast view: units by id with their share of
// the hash space and status.
func shareView(units map[string]struct {
	share  float64
	status unitStatus
}) *broadcastView {
	b := &broadcastView{id: "b", units: map[string]*unitView{}}
	for id, u := range units {
		b.units[id] = &unitView{rec: unitRecord{ID: id, Share: u.share, Status: u.status}}
	}
	return b
}

func TestHeldShare(t *testing.T) {
	type unit = struct {
		share  float64
		status unitStatus
	}
	for _, tc := range []struct {
		name  string
		units map[string]unit
		held  []string
		want  float64 // < 0: no share
	}{
		{"even", map[string]unit{"u1": {0.5, unitOpen}, "u2": {0.5, unitOpen}}, []string{"u1"}, 0.5},
		{"uneven capacities", map[string]unit{"u1": {0.9, unitOpen}, "u2": {0.1, unitOpen}}, []string{"u2"}, 0.1},
		{"the others finished: all of it", map[string]unit{"u1": {0.5, unitDone}, "u2": {0.3, unitDone}, "u3": {0.2, unitOpen}},
			[]string{"u3"}, 1},
		{"split parents do not count", map[string]unit{
			"u1": {0.5, unitSplit}, "u1.0": {0.25, unitOpen}, "u1.1": {0.25, unitOpen}, "u2": {0.5, unitOpen},
		}, []string{"u1.0", "u2"}, 0.75},
		{"after a failover", map[string]unit{
			"u1": {1.0 / 3, unitOpen}, "u2": {1.0 / 3, unitDone}, "u3": {1.0 / 3, unitSplit},
			"u3.0": {1.0 / 6, unitOpen}, "u3.1": {1.0 / 6, unitOpen},
		}, []string{"u1", "u3.0"}, 0.75},
		{"unclaimed open units count", map[string]unit{"u1": {0.4, unitOpen}, "u2": {0.6, unitOpen}}, []string{"u1"}, 0.4},
		{"held unit done", map[string]unit{"u1": {0.5, unitDone}, "u2": {0.5, unitOpen}}, []string{"u1"}, -1},
		{"nothing held", map[string]unit{"u1": {0.5, unitOpen}}, nil, -1},
		{"nothing open", map[string]unit{"u1": {1, unitDone}}, []string{"u1"}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := map[string]bool{}
			for _, id := range tc.held {
				held[id] = true
			}
			got, ok := heldShare(shareView(tc.units), held)
			switch {
			case tc.want < 0 && ok:
				t.Errorf("share %v, want none", got)
			case tc.want >= 0 && (!ok || math.Abs(got-tc.want) > 1e-9):
				t.Errorf("share %v (%v), want %v", got, ok, tc.want)
			}
		})
	}
}

// A record without its share is measured by its arcs; an undecodable one is
// left out.
func TestHeldShareMeasuresArcs(t *testing.T) {
	half := sharding.Unit{ID: "u1", Arcs: sharding.Arcs{{Lo: 0, Hi: math.MaxUint64 / 2}}}
	b := &broadcastView{id: "b", units: map[string]*unitView{
		"u1": {rec: unitRecord{ID: "u1", Status: unitOpen}, unit: half},
		"u2": {rec: unitRecord{ID: "u2", Share: 0.5, Status: unitOpen}},
		"u3": {undecodable: true},
	}}
	got, ok := heldShare(b, map[string]bool{"u1": true})
	if !ok || math.Abs(got-0.5) > 1e-9 {
		t.Errorf("share %v (%v), want 0.5", got, ok)
	}
}

// Each member's rate share is the part of the open work it holds: uneven
// with uneven capacities, all of it once the other member's unit is done,
// and back to an equal split once the broadcast is over.
func TestRateShareFollowsHeldUnits(t *testing.T) {
	c := newCluster(t)
	const n = 2000
	s, l := newStream(n), newLedger(n)
	dc := driverConfig{stream: s, ledger: l, every: 100, rate: 600}
	w0 := c.start("w0", memberOpts{}, dc)
	w1 := c.start("w1", memberOpts{capacity: 1.0 / 8}, dc)
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
