package coordinator

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

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

// noteShares publishes how many slots of each broadcast this member holds
// (claims not ended), with the broadcast's slot count. Run's goroutine
// only: it reads the view.
func (c *Coordinator) noteShares() {
	held := map[string]heldSlots{}
	for _, cl := range c.heldClaims() {
		if cl.ended.Load() {
			continue
		}
		h := held[cl.broadcast]
		h.held, h.slots = h.held+1, cl.slots
		held[cl.broadcast] = h
	}
	c.shares.Store(&held)
}

// heldSlots is how many of a broadcast's slots this member holds.
type heldSlots struct{ held, slots int }

// heldShare is the fraction of a broadcast's open hash space that held
// open slots cover: slots are equal, so it is held over open. It reports
// false when there is no open slot or none is held.
func heldShare(held, open int) (float64, bool) {
	if held <= 0 || open <= 0 {
		return 0, false
	}
	return min(float64(held)/float64(open), 1), true
}

// openCacheFor is how long a broadcast's count of open slots is reused.
const openCacheFor = time.Second

// RateShare is the fraction of broadcast id's fleet-wide rate this member
// should send at: the part of the broadcast's open slots that it holds.
// When it holds none, the share is 1/LiveMembers. The held slots are as of
// the last reconcile; the open ones are counted in etcd (the done markers)
// at most once a second, by the caller's goroutine: only a broadcast's
// leader watches them.
func (c *Coordinator) RateShare(id string) float64 {
	m := c.shares.Load()
	if m == nil || (*m)[id].held == 0 {
		return 1 / float64(max(1, c.LiveMembers()))
	}
	h := (*m)[id]
	s, _ := heldShare(h.held, c.openSlots(id, h.slots))
	return s
}

// openSlots is how many of broadcast id's slots are not done, counted at
// most once per openCacheFor; slots when the count cannot be read.
func (c *Coordinator) openSlots(id string, slots int) int {
	c.mu.Lock()
	o, ok := c.open[id]
	c.mu.Unlock()
	if ok && time.Since(o.at) < openCacheFor {
		return o.open
	}
	open := slots
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	resp, err := c.cli.Get(ctx, c.keys.dones(id), clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err == nil {
		open = max(slots-int(resp.Count), 0)
	}
	c.mu.Lock()
	c.open[id] = openCount{open: open, at: time.Now()}
	if len(c.open) > 64 {
		for k, v := range c.open {
			if time.Since(v.at) >= openCacheFor {
				delete(c.open, k)
			}
		}
	}
	c.mu.Unlock()
	return open
}

// openCount is a broadcast's open slots as last counted.
type openCount struct {
	open int
	at   time.Time
}
