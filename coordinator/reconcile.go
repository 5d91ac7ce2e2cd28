package coordinator

import (
	"time"

	"github.com/cespare/xxhash/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// reconcile compares the view with what should be and does this member's
// part of closing the gap. Every action is a txn whose compares prove the
// view it was decided on is still current, so members acting on the same
// view at once cannot both succeed, and a stale view costs a failed compare,
// never a wrong write. A broadcast whose inputs (its slots' claims and done
// markers, the membership, this member's claims) did not change since the
// last reconcile costs nothing.
func (c *Coordinator) reconcile(l *lease) {
	live := c.view.live()
	c.live.Store(int64(len(live)))
	c.checkHeld(l)
	now := time.Now()
	c.wakeAt = time.Time{}
	for _, b := range c.view.broadcasts {
		if !b.hasState {
			continue
		}
		switch b.state.State {
		case StatePending:
			if now.Before(b.state.NotBefore) {
				if c.wakeAt.IsZero() || b.state.NotBefore.Before(c.wakeAt) {
					c.wakeAt = b.state.NotBefore
				}
				continue
			}
			if c.leads(b.id, live) {
				c.start(l, b, live)
			}
		case StateRunning, StatePaused:
			// Paused broadcasts keep their claims (workers wait while
			// paused) and still fail over, so a resume finds every slot
			// held.
			if b.slots == 0 {
				continue // paused before it started
			}
			c.assign(l, b)
			if b.state.State == StateRunning && b.doneCount == b.slots && c.leads(b.id, live) {
				c.complete(l, b)
			}
		default:
			if b.holder != nil {
				b.over()
				delete(c.acted, b.id)
			}
		}
	}
}

// leads reports whether this member is the one that starts and completes
// broadcast id: the live member with the highest hash of (id, member), so
// the duty spreads over the fleet and moves only when its holder leaves.
// Any member could do it safely (the transactions compare the state's
// revision); naming one spares the others a read and a refused write.
func (c *Coordinator) leads(id string, live []sharding.Member) bool {
	var best uint64
	var leader string
	for _, m := range live {
		if h := xxhash.Sum64String(id + "\x00" + m.ID); leader == "" || h > best {
			best, leader = h, m.ID
		}
	}
	return leader == c.cfg.MemberID
}

// retry schedules another reconcile after an etcd operation failed.
func (c *Coordinator) retry() {
	if c.retryAt.IsZero() {
		c.retryAt = time.Now().Add(c.cfg.ReconcileInterval)
	}
}

// checkHeld ends held claims that the view shows lost (the claim key is
// gone or belongs to another token) and releases those of broadcasts that
// are over.
func (c *Coordinator) checkHeld(l *lease) {
	for _, cl := range c.heldClaims() {
		if c.view.rev < cl.token || cl.ended.Load() {
			continue // the view has not caught up with the claim yet, or it ended
		}
		b, ok := c.view.broadcasts[cl.broadcast]
		if !ok {
			cl.lose(ErrNotOwner)
			continue
		}
		if b.hasState && b.state.State.Terminal() {
			c.release(l, cl, b.state.State)
			continue
		}
		if cl.slot < len(b.token) && b.token[cl.slot] == cl.token {
			continue
		}
		// A write in flight may be the Finish or Handoff that deleted the
		// claim; it ends the claim itself, so leave it be.
		if !cl.mu.TryLock() {
			continue
		}
		if !cl.ended.Load() {
			c.log.Warn("claim gone from etcd; dropping it", "broadcast", cl.broadcast, "slot", cl.slot)
			cl.lose(ErrNotOwner)
		}
		cl.mu.Unlock()
	}
}

// release ends a claim on a broadcast that is over and deletes the claim
// key, so the status shows no one working on it.
func (c *Coordinator) release(l *lease, cl *Claim, st State) {
	cl.lose(errBroadcastOver)
	ctx, cancel := c.opCtx(l)
	defer cancel()
	if _, err := c.txn(ctx, "release", []clientv3.Cmp{cl.isOwner()}, []clientv3.Op{clientv3.OpDelete(cl.claimKey)}, nil); err != nil {
		c.log.Warn("release claim", "broadcast", cl.broadcast, "slot", cl.slot, "state", st, "err", err)
	}
}

// maxTxnBytes is what one txn may carry here, under etcd's default request
// limit of 1.5 MiB (--max-request-bytes) with room for overhead.
const maxTxnBytes = 1 << 20

// start moves a pending broadcast to running and fixes its slot count:
// sharding.SlotCount of the live members. Nothing else is written: a slot
// without a progress key starts at the beginning, and the members claim
// the slots the assignment gives them as soon as they see the state.
func (c *Coordinator) start(l *lease, b *broadcastView, live []sharding.Member) {
	if len(live) == 0 {
		return
	}
	st := b.state
	st.State, st.UpdatedAt, st.Slots = StateRunning, time.Now().UTC(), sharding.SlotCount(len(live))
	val, err := encode(st)
	if err != nil {
		c.log.Error("start broadcast", "broadcast", b.id, "err", err)
		return
	}
	ctx, cancel := c.opCtx(l)
	defer cancel()
	cmp := clientv3.Compare(clientv3.ModRevision(c.keys.state(b.id)), "=", b.stateRev)
	resp, err := c.txn(ctx, "start", []clientv3.Cmp{cmp}, []clientv3.Op{clientv3.OpPut(c.keys.state(b.id), val)}, nil)
	switch {
	case err != nil:
		c.log.Warn("start broadcast", "broadcast", b.id, "err", err)
		c.retry()
	case resp.Succeeded:
		c.log.Info("started broadcast", "broadcast", b.id, "slots", st.Slots, "members", len(live))
	}
}

// assign computes, from the view, which member should hold each open slot
// (sharding.AssignIndexed), claims the free slots it names this member
// for, and asks the worker to hand back the slots this member holds that
// it names someone else for.
func (c *Coordinator) assign(l *lease, b *broadcastView) {
	in := inputs{broadcast: b.gen, members: c.view.membersGen, held: c.heldGen.Load()}
	if c.acted[b.id] == in {
		return
	}
	c.acted[b.id] = in
	weights, liveOf := c.view.liveIndex()
	if len(weights) == 0 {
		return
	}
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
	var free []int
	for i, s := range open {
		mine := target[i] == self && self >= 0
		switch h := b.holder[s]; {
		case h < 0 && mine:
			free = append(free, s)
		case h == selfName && !mine:
			c.mu.Lock()
			cl := c.held[c.keys.claim(b.id, s)]
			c.mu.Unlock()
			if cl != nil && cl.token == b.token[s] && !cl.handoffPending() {
				c.log.Info("asking for a slot back: another member should hold it now", "broadcast", b.id, "slot", s)
				cl.requestHandoff()
			}
		}
	}
	c.claimSlots(l, b, free)
}

// maxClaimsPerTxn bounds the slots one claim transaction takes: two
// compares and two operations each, within etcd's 128.
const maxClaimsPerTxn = 32

// claimSlots claims slots of b for this member under its lease, as many
// per transaction as etcd allows. Each claim proves the slot is neither
// claimed nor done, and reads the slot's progress in the same transaction,
// so the worker resumes exactly where the last holder's last write left
// it. The claim key's create revision is the fencing token.
func (c *Coordinator) claimSlots(l *lease, b *broadcastView, slots []int) {
	for len(slots) > 0 {
		batch := slots[:min(len(slots), maxClaimsPerTxn)]
		slots = slots[len(batch):]
		cmps := make([]clientv3.Cmp, 0, 2*len(batch))
		ops := make([]clientv3.Op, 0, 2*len(batch))
		for _, s := range batch {
			key := c.keys.claim(b.id, s)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(c.keys.done(b.id, s)), "=", 0))
			ops = append(ops, clientv3.OpPut(key, c.cfg.MemberID, clientv3.WithLease(l.id)),
				clientv3.OpGet(c.keys.progress(b.id, s)))
		}
		ctx, cancel := c.opCtx(l)
		resp, err := c.txn(ctx, "claim", cmps, ops, nil)
		cancel()
		if err != nil {
			c.log.Warn("claim slots", "broadcast", b.id, "slots", len(batch), "err", err)
			c.retry()
			return
		}
		if !resp.Succeeded {
			return // the view was stale; the event that made it so brings the news
		}
		for j, s := range batch {
			var val []byte
			if kvs := resp.Responses[2*j+1].GetResponseRange().Kvs; len(kvs) == 1 {
				val = kvs[0].Value
			}
			rec, err := decodeProgress(val)
			var cl *Claim
			if err == nil {
				cl, err = newClaim(c.claimDeps, l, b.id, s, b.slots, rec, resp.Header.Revision)
			}
			if err != nil {
				// Held, so nobody else resumes it wrongly; not worked, so
				// the status shows it stuck. Only a hand-edited key gets here.
				c.log.Error("claimed a slot whose progress cannot be read", "broadcast", b.id, "slot", s, "err", err)
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
			c.log.Debug("claimed slot", "broadcast", b.id, "slot", s, "cursor", cl.start.Cursor.Seq,
				"pending", len(cl.start.Pending), "token", cl.token)
			c.queue.push(cl)
		}
		c.log.Info("claimed slots", "broadcast", b.id, "slots", len(batch), "token", resp.Header.Revision)
	}
}

// complete ends a running broadcast whose every slot is done: done, or
// expired if any record was counted expired. Done markers are never
// removed while a broadcast runs, so seeing them all proves the broadcast
// is complete; the compare on the state's revision proves nobody paused
// or cancelled it meanwhile. The counters come from the slots' progress,
// final since each was written with its done marker.
func (c *Coordinator) complete(l *lease, b *broadcastView) {
	ctx, cancel := c.opCtx(l)
	defer cancel()
	resp, err := c.cli.Get(ctx, c.keys.progresses(b.id), clientv3.WithPrefix())
	if err != nil {
		c.log.Warn("complete broadcast: read progress", "broadcast", b.id, "err", err)
		c.retry()
		return
	}
	var sum Counters
	for _, kv := range resp.Kvs {
		rec, err := decodeProgress(kv.Value)
		if err != nil {
			c.log.Error("complete broadcast", "broadcast", b.id, "key", string(kv.Key), "err", err)
			continue
		}
		sum = sum.Add(rec.Counters)
	}
	st := b.state
	st.State, st.UpdatedAt = StateDone, time.Now().UTC()
	if sum.Expired > 0 {
		st.State = StateExpired
	}
	val, err := encode(st)
	if err != nil {
		c.log.Error("complete broadcast", "broadcast", b.id, "err", err)
		return
	}
	tresp, err := c.txn(ctx, "complete", []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(c.keys.state(b.id)), "=", b.stateRev),
	}, []clientv3.Op{clientv3.OpPut(c.keys.state(b.id), val)}, nil)
	switch {
	case err != nil:
		c.log.Warn("complete broadcast", "broadcast", b.id, "err", err)
		c.retry()
	case tresp.Succeeded:
		c.log.Info("broadcast finished", "broadcast", b.id, "state", st.State, "scanned", sum.Scanned,
			"delivered", sum.Delivered, "failed", sum.Failed)
	}
}
