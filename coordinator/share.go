package coordinator

// A broadcast's rate_per_sec is for the whole fleet. Split evenly among the
// live members, the fleet runs well below it whenever the work is spread
// unevenly: at a broadcast's tail, where members that finished their slots
// keep their share idle, or after a failover or between members of
// different capacities. So each member sends at the part of the
// broadcast's open work that it holds.
//
// The measure of work is the hash space: every slot holds an equal part of
// it. A slot's remaining records are not known here (its cursor counts
// records read from a stream whose length only the worker could tell), but
// they need not be: the held open slots sum to all the open slots over the
// fleet, so every member that holds work sends, together at the full
// rate, and a slot that finishes stops counting at once. A member whose
// slots have less left than others' finishes sooner and its share goes to
// the others.

// noteShares publishes this member's share of each broadcast in which it
// holds an open slot. Run's goroutine only: it reads the view.
func (c *Coordinator) noteShares() {
	held := map[string]int{}
	for _, cl := range c.heldClaims() {
		if cl.ended.Load() {
			continue
		}
		if b, ok := c.view.broadcasts[cl.broadcast]; ok && cl.slot < len(b.done) && !b.done[cl.slot] {
			held[cl.broadcast]++
		}
	}
	shares := make(map[string]float64, len(held))
	for id, n := range held {
		if s, ok := heldShare(c.view.broadcasts[id], n); ok {
			shares[id] = s
		}
	}
	c.shares.Store(&shares)
}

// heldShare is the fraction of b's open hash space that n held open slots
// cover: slots are equal, so it is n over the open slots. It reports false
// when b has no open slot or none is held.
func heldShare(b *broadcastView, n int) (float64, bool) {
	open := b.slots - b.doneCount
	if n <= 0 || open <= 0 {
		return 0, false
	}
	return min(float64(n)/float64(open), 1), true
}

// RateShare is the fraction of broadcast id's fleet-wide rate this member
// should send at: the part of the broadcast's open slots that it holds, as
// of the last reconcile. When it holds no open slot of the broadcast, or
// has not reconciled since it took one, the share is 1/LiveMembers.
func (c *Coordinator) RateShare(id string) float64 {
	if m := c.shares.Load(); m != nil {
		if s, ok := (*m)[id]; ok {
			return s
		}
	}
	return 1 / float64(max(1, c.LiveMembers()))
}
