package coordinator

// A broadcast's rate_per_sec is for the whole fleet. Split evenly among the
// live members, the fleet runs well below it whenever the work is spread
// unevenly: at a broadcast's tail, where members that finished their units
// keep their share idle, or after a failover or between members of
// different capacities. So each member sends at the part of the
// broadcast's open work that it holds.
//
// The measure of work is the hash space: each open unit's fraction of it
// (its record's share). A unit's remaining records are not known here (its
// cursor counts records read from a stream whose length only the worker
// could tell), but they need not be: the held parts of the open units sum
// to one over the fleet, so every member that holds work sends, together
// at the full rate, and a unit that finishes stops counting at once. A
// member whose units have less left than their arcs suggest finishes
// sooner and its share goes to the others.

// noteShares publishes this member's share of each broadcast in which it
// holds an open unit. Run's goroutine only: it reads the view.
func (c *Coordinator) noteShares() {
	held := map[string]map[string]bool{}
	for _, cl := range c.heldClaims() {
		if cl.ended.Load() {
			continue
		}
		if held[cl.broadcast] == nil {
			held[cl.broadcast] = map[string]bool{}
		}
		held[cl.broadcast][cl.unit.ID] = true
	}
	shares := make(map[string]float64, len(held))
	for id, units := range held {
		b, ok := c.view.broadcasts[id]
		if !ok {
			continue
		}
		if s, ok := heldShare(b, units); ok {
			shares[id] = s
		}
	}
	c.shares.Store(&shares)
}

// heldShare is the fraction of b's open hash space that the units in held
// (by unit id) cover. It reports false when b has no open unit, or none of
// them is held.
func heldShare(b *broadcastView, held map[string]bool) (float64, bool) {
	var mine, open float64
	for name, u := range b.units {
		if u.undecodable || u.rec.Status != unitOpen {
			continue
		}
		w := u.rec.Share
		if w <= 0 && u.err == nil {
			w = u.unit.Arcs.Share() // a record written without its share
		}
		open += w
		if held[name] {
			mine += w
		}
	}
	if mine <= 0 || open <= 0 {
		return 0, false
	}
	return min(mine/open, 1), true
}

// RateShare is the fraction of broadcast id's fleet-wide rate this member
// should send at: the part of the broadcast's open hash space that the
// units it holds cover, as of the last reconcile. When it holds no open
// unit of the broadcast, or has not reconciled since it took one, the
// share is 1/LiveMembers.
func (c *Coordinator) RateShare(id string) float64 {
	if m := c.shares.Load(); m != nil {
		if s, ok := (*m)[id]; ok {
			return s
		}
	}
	return 1 / float64(max(1, c.LiveMembers()))
}
