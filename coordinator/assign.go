package coordinator

import (
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// The assignment of a running broadcast's slots, and how claims follow it.
//
// The broadcast's leader computes the target holder of each open slot from
// its view of the claims (sharding.AssignIndexed). It creates the claims of
// the free slots, each under its target's lease, with a note for the
// target at P/assigned/<member>/<id>/<slot> in the same transaction, sixty
// slots a transaction; and it asks for a slot back by rewriting its
// holder's note. Every member watches its own notes: it takes up the
// claims they announce, and hands back the slots asked back. So only the
// leader sees every claim, and a start or a failover costs each other
// member an event per slot it gains or loses, not one per slot of the
// fleet. Each claim is a key under its holder's lease, created only if
// absent, whose create revision is the holder's fencing token: a claim and
// its note die with the holder's lease whoever wrote them.

// noteBack is the value of a note whose slot the leader asks back.
const noteBack = "back"

// assign, as the broadcast's leader, computes which member should hold
// each open slot, claims the free slots for their targets and asks back
// the slots held by a member the assignment no longer names.
func (c *Coordinator) assign(l *lease, b *broadcastView) {
	in := inputs{broadcast: b.gen, members: c.view.membersGen}
	if c.acted[b.id] == in || !c.view.slotsWatched {
		return
	}
	c.acted[b.id] = in
	weights, liveOf := c.view.liveIndex()
	if len(weights) == 0 {
		return
	}
	live := c.view.live()
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
	var grants, backs []grant
	for i, s := range open {
		switch h := b.holder[s]; {
		case h < 0:
			m := live[target[i]].ID
			if mv, ok := c.view.members[m]; ok && mv.lease != 0 {
				grants = append(grants, grant{slot: s, member: m, lease: mv.lease})
			}
		case holders[i] != target[i] && b.asked[s] != b.token[s]:
			// Held by a member above its quota, or by one leaving or
			// gone (whose lease will end its claim anyway).
			m := c.view.names[h]
			if mv, ok := c.view.members[m]; ok && mv.lease != 0 {
				backs = append(backs, grant{slot: s, member: m, lease: mv.lease, token: b.token[s]})
			}
		}
	}
	c.claimFor(l, b, grants)
	c.askBack(l, b, backs)
}

// grant is a claim the leader creates (slot for member, under its lease),
// or asks back (token: the claim's).
type grant struct {
	slot   int
	member string
	lease  int64
	token  int64
}

// maxGrantsPerTxn bounds the claims one transaction creates: two compares
// and two operations each, within etcd's 128.
const maxGrantsPerTxn = 60

// claimFor creates the claims of grants, as many per transaction as etcd
// allows, one transaction after another: each is a watch event for every
// member, and etcd answers lease renewals only between the transactions it
// applies, so a fleet's start must not crowd them out. Each claim proves
// its slot neither claimed nor done. A failed compare means the view was
// stale: the watch brings the change that made it so, and the leader
// computes again. A failed transaction (a target's lease just ended, etcd
// unreachable) is tried again after a retry interval.
func (c *Coordinator) claimFor(l *lease, b *broadcastView, grants []grant) {
	for len(grants) > 0 {
		batch := grants[:min(len(grants), maxGrantsPerTxn)]
		grants = grants[len(batch):]
		cmps := make([]clientv3.Cmp, 0, 2*len(batch))
		ops := make([]clientv3.Op, 0, 2*len(batch))
		for _, g := range batch {
			key := c.keys.claim(b.id, g.slot)
			lease := clientv3.WithLease(clientv3.LeaseID(g.lease))
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(c.keys.done(b.id, g.slot)), "=", 0))
			ops = append(ops, clientv3.OpPut(key, g.member, lease), clientv3.OpPut(c.keys.note(g.member, b.id, g.slot), "", lease))
		}
		ctx, cancel := c.opCtx(l)
		resp, err := c.txn(ctx, "claim", cmps, ops, nil)
		cancel()
		switch {
		case err != nil:
			c.log.Warn("claim slots", "broadcast", b.id, "slots", len(batch), "err", err)
			c.retry()
			return
		case !resp.Succeeded:
			return
		}
		c.log.Debug("claimed slots for their members", "broadcast", b.id, "slots", len(batch), "token", resp.Header.Revision)
	}
}

// askBack asks the holders of backs for their slots: it rewrites each
// claim's note, under its holder's lease, if the claim is still the one
// the view shows (the note's create revision is the claim's). The holder
// hands the slot back at a drained checkpoint, and the leader claims it
// for its target once the claim is gone.
func (c *Coordinator) askBack(l *lease, b *broadcastView, backs []grant) {
	const most = maxTxnOps - 8
	for len(backs) > 0 {
		batch := backs[:min(len(backs), most)]
		backs = backs[len(batch):]
		cmps := make([]clientv3.Cmp, 0, len(batch))
		ops := make([]clientv3.Op, 0, len(batch))
		for _, g := range batch {
			note := c.keys.note(g.member, b.id, g.slot)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(note), "=", g.token))
			ops = append(ops, clientv3.OpPut(note, noteBack, clientv3.WithLease(clientv3.LeaseID(g.lease))))
		}
		ctx, cancel := c.opCtx(l)
		resp, err := c.txn(ctx, "ask back", cmps, ops, nil)
		cancel()
		switch {
		case err != nil:
			c.log.Warn("ask slots back", "broadcast", b.id, "slots", len(batch), "err", err)
			c.retry()
			return
		case !resp.Succeeded:
			// A note changed since the view: ask one at a time, so the
			// others are not held up by it.
			if len(batch) > 1 {
				for _, g := range batch {
					c.askBack(l, b, []grant{g})
				}
			}
			continue
		}
		for _, g := range batch {
			b.asked[g.slot] = g.token
		}
		c.log.Info("asked slots back: the assignment gives them to others", "broadcast", b.id, "slots", len(batch))
	}
}

// adoption is a claim created for this member, as its note announced it,
// not yet taken up.
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
		if n, live := c.view.notes[slotRef{a.broadcast, a.slot}]; !ok || b.slots == 0 || a.slot >= b.slots || !live || n.token != a.token {
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
			cl, err = newClaim(c.claimDeps, l, a.broadcast, a.slot, c.view.broadcasts[a.broadcast].slots, rec, a.token)
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
