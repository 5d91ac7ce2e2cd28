package coordinator

import (
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// The assignment of a running broadcast's slots, and how claims follow it.
//
// Every member computes the same target holder for each open slot from its
// view (sharding.AssignIndexed). The broadcast's leader creates the claims
// of the free slots, each under its target's lease, sixty a transaction;
// every other member only hands back the slots it holds that are no longer
// its, and takes up (adopts) the claims created for it. One member writing
// the claims of a whole fleet, in a few transactions, instead of each
// member its own in one or more: a start or a failover then costs etcd,
// and every member watching, a few revisions instead of one per member.
// Each claim is still a key under its holder's lease, created only if
// absent, whose create revision is the holder's fencing token: a claim
// dies with its holder's lease whoever wrote it.

// assign computes, from the view, which member should hold each open slot;
// as the broadcast's leader it claims the free slots for their targets,
// and it asks the worker to hand back the slots this member holds that
// the assignment gives someone else.
func (c *Coordinator) assign(l *lease, b *broadcastView, leader bool) {
	in := inputs{broadcast: b.gen, members: c.view.membersGen, held: c.heldGen.Load(), leader: leader}
	if c.acted[b.id] == in {
		return
	}
	c.acted[b.id] = in
	weights, liveOf := c.view.liveIndex()
	if len(weights) == 0 {
		return
	}
	live := c.view.live()
	selfName := c.view.intern(c.cfg.MemberID)
	self := int32(-1)
	if int(selfName) < len(liveOf) {
		self = liveOf[selfName]
	}
	open := make([]int, 0, b.slots-b.doneCount)
	holders := make([]int32, 0, b.slots-b.doneCount)
	for s := range b.slots {
		if b.done[s] {
			continue
		}
		h := b.holder[s]
		if h >= 0 {
			if int(h) < len(liveOf) {
				h = liveOf[h]
			} else {
				h = -1
			}
		}
		open = append(open, s)
		holders = append(holders, h)
	}
	target := sharding.AssignIndexed(weights, holders)
	var grants []grant
	for i, s := range open {
		switch h := b.holder[s]; {
		case h < 0 && leader:
			m := live[target[i]].ID
			if mv, ok := c.view.members[m]; ok && mv.lease != 0 {
				grants = append(grants, grant{slot: s, member: m, lease: mv.lease})
			}
		case h == selfName && target[i] != self:
			c.mu.Lock()
			cl := c.held[c.keys.claim(b.id, s)]
			c.mu.Unlock()
			if cl != nil && cl.token == b.token[s] && !cl.handoffPending() {
				c.log.Info("asking for a slot back: another member should hold it now", "broadcast", b.id, "slot", s)
				cl.requestHandoff()
			}
		}
	}
	c.claimFor(l, b, grants)
}

// grant is a claim the leader creates: slot for member, under its lease.
type grant struct {
	slot   int
	member string
	lease  int64
}

// maxGrantsPerTxn bounds the claims one transaction creates: two compares
// each, within etcd's 128.
const maxGrantsPerTxn = 60

// grantsInFlight is how many claim transactions the leader has in flight
// at once: etcd commits concurrent transactions together, so a start's
// hundred-odd transactions (8,000 slots) take a fraction of the time one
// after another would.
const grantsInFlight = 8

// claimFor creates the claims of grants, as many per transaction as etcd
// allows, several transactions at once; it returns once all are answered.
// Each claim proves its slot neither claimed nor done. A failed compare
// means the view was stale: the watch brings the change that made it so,
// and the leader computes again. A failed transaction (a target's lease
// just ended, etcd unreachable) is tried again after a retry interval.
func (c *Coordinator) claimFor(l *lease, b *broadcastView, grants []grant) {
	var (
		wg     sync.WaitGroup
		sem    = make(chan struct{}, grantsInFlight)
		failed atomic.Bool
	)
	for len(grants) > 0 {
		batch := grants[:min(len(grants), maxGrantsPerTxn)]
		grants = grants[len(batch):]
		cmps := make([]clientv3.Cmp, 0, 2*len(batch))
		ops := make([]clientv3.Op, 0, len(batch))
		for _, g := range batch {
			key := c.keys.claim(b.id, g.slot)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(c.keys.done(b.id, g.slot)), "=", 0))
			ops = append(ops, clientv3.OpPut(key, g.member, clientv3.WithLease(clientv3.LeaseID(g.lease))))
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() {
				<-sem
				wg.Done()
			}()
			ctx, cancel := c.opCtx(l)
			resp, err := c.txn(ctx, "claim", cmps, ops, nil)
			cancel()
			switch {
			case err != nil:
				c.log.Warn("claim slots", "broadcast", b.id, "slots", len(cmps)/2, "err", err)
				failed.Store(true)
			case resp.Succeeded:
				c.log.Debug("claimed slots for their members", "broadcast", b.id, "slots", len(cmps)/2, "token", resp.Header.Revision)
			}
		}()
	}
	wg.Wait()
	if failed.Load() {
		c.retry()
	}
}

// adoption is a claim the view shows created for this member, not yet
// taken up.
type adoption struct {
	broadcast string
	slot      int
	token     int64 // the claim key's create revision
	lease     int64 // the lease it was created under
}

// adopt takes up the claims created for this member under its current
// lease: it reads each slot's progress, in a transaction that proves the
// claims still hold, and hands the claims to the worker. A claim under an
// earlier lease of this member's is left to die with that lease. Run's
// goroutine only.
func (c *Coordinator) adopt(l *lease) {
	todo := c.view.mine
	c.view.mine = nil
	var batch []adoption
	for _, a := range todo {
		if a.lease != int64(l.id) || c.holds(c.keys.claim(a.broadcast, a.slot)) {
			continue
		}
		b, ok := c.view.broadcasts[a.broadcast]
		if !ok || b.slots == 0 || a.slot >= len(b.token) || b.token[a.slot] != a.token {
			continue // gone already, or not a broadcast this view can run
		}
		batch = append(batch, a)
		if len(batch) == maxGrantsPerTxn {
			c.adoptBatch(l, batch)
			batch = nil
		}
	}
	if len(batch) > 0 {
		c.adoptBatch(l, batch)
	}
}

// adoptBatch reads the progress of the claims in batch, if they all still
// hold, and takes them up; if one no longer holds, each is tried alone.
func (c *Coordinator) adoptBatch(l *lease, batch []adoption) {
	cmps := make([]clientv3.Cmp, 0, len(batch))
	ops := make([]clientv3.Op, 0, len(batch))
	for _, a := range batch {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.keys.claim(a.broadcast, a.slot)), "=", a.token))
		ops = append(ops, clientv3.OpGet(c.keys.progress(a.broadcast, a.slot)))
	}
	ctx, cancel := c.opCtx(l)
	resp, err := c.txn(ctx, "adopt", cmps, ops, nil)
	cancel()
	if err != nil {
		c.log.Warn("take up claims", "slots", len(batch), "err", err)
		c.view.mine = append(c.view.mine, batch...)
		c.retry()
		return
	}
	if !resp.Succeeded {
		if len(batch) > 1 {
			for _, a := range batch {
				c.adoptBatch(l, []adoption{a})
			}
		}
		return // a lone claim that no longer holds: nothing to take up
	}
	n := 0
	for j, a := range batch {
		var val []byte
		if kvs := resp.Responses[j].GetResponseRange().Kvs; len(kvs) == 1 {
			val = kvs[0].Value
		}
		rec, err := decodeProgress(val)
		var cl *Claim
		if err == nil {
			cl, err = newClaim(c.claimDeps, l, a.broadcast, a.slot, len(c.view.broadcasts[a.broadcast].token), rec, a.token)
		}
		if err != nil {
			// Held, so nobody else resumes it wrongly; not worked, so the
			// status shows it stuck. Only a hand-edited key gets here.
			c.log.Error("claimed a slot whose progress cannot be read", "broadcast", a.broadcast, "slot", a.slot, "err", err)
			continue
		}
		c.mu.Lock()
		c.held[cl.claimKey] = cl
		c.m.unitsHeld.Set(float64(len(c.held)))
		c.mu.Unlock()
		c.heldGen.Add(1)
		c.m.claims.Inc()
		if rec.Owner != "" && !rec.Released {
			c.m.failovers.Inc()
		}
		c.log.Debug("took up a claim", "broadcast", a.broadcast, "slot", a.slot, "cursor", cl.start.Cursor.Seq,
			"pending", len(cl.start.Pending), "token", cl.token)
		c.queue.push(cl)
		n++
	}
	c.log.Info("took up claims", "slots", n)
}
