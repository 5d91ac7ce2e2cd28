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
	c.adopt(l)
	c.checkHeld(l)
	c.publishEndpoints(l)
	now := time.Now()
	c.wakeAt = time.Time{}
	c.wantSlots = false
	work := archiveWork{sweep: len(live) > 0 && live[0].ID == c.cfg.MemberID}
	if work.sweep {
		// The sweep is offered again at least this often, so it runs
		// even in a fleet where nothing changes.
		c.wakeBy(now.Add(c.archiver.sweepEvery))
	}
	for _, b := range c.view.broadcasts {
		if !b.hasState {
			continue
		}
		switch b.state.State {
		case StatePending:
			if now.Before(b.state.NotBefore) {
				c.wakeBy(b.state.NotBefore)
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
			if !c.leads(b.id, live) {
				continue
			}
			c.wantSlots = true
			c.assign(l, b)
			if b.state.State == StateRunning && c.view.slotsWatched && b.doneCount == b.slots {
				c.complete(l, b)
			}
		default:
			if b.holder != nil {
				b.over()
				delete(c.acted, b.id)
			}
			if !c.leads(b.id, live) {
				continue
			}
			if j, due := c.archiveDue(b, now); !due.IsZero() {
				c.wakeBy(due)
			} else {
				work.jobs = append(work.jobs, j)
				// Offered again until its keys are gone from the view: the
				// archiver may fail, and retries on a later offer.
				c.wakeBy(now.Add(time.Second))
			}
		}
	}
	c.noteShares()
	if len(work.jobs) > 0 || work.sweep {
		c.archiver.offer(work)
	}
}

// leads reports whether this member is broadcast id's leader: the one that
// starts it, creates its claims, completes it and archives it. It is the
// live member with the highest hash of (id, member), so the duty spreads
// over the fleet's broadcasts and moves only when its holder leaves. Any
// member could do each of these safely (every transaction compares what
// it decided on); naming one spares the others reads and refused writes,
// and lets one transaction create the claims of many members.
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

// wakeBy makes the next reconcile come no later than t, event or not.
func (c *Coordinator) wakeBy(t time.Time) {
	if c.wakeAt.IsZero() || t.Before(c.wakeAt) {
		c.wakeAt = t
	}
}

// retry schedules another reconcile after an etcd operation failed.
func (c *Coordinator) retry() {
	if c.retryAt.IsZero() {
		c.retryAt = time.Now().Add(c.cfg.ReconcileInterval)
	}
}

// checkHeld ends held claims that the view shows lost (the claim's note is
// gone, or belongs to another claim), asks the worker for those the leader
// asked back, and releases those of broadcasts that are over.
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
		n, ok := c.view.notes[slotRef{cl.broadcast, cl.slot}]
		if ok && n.token == cl.token {
			if n.back && !cl.handoffPending() {
				c.log.Info("asked for a slot back: another member should hold it now", "broadcast", cl.broadcast, "slot", cl.slot)
				cl.requestHandoff()
			}
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
	if _, err := c.txn(ctx, "release", []clientv3.Cmp{cl.isOwner()}, cl.drop(), nil); err != nil {
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
	now := time.Now().UTC()
	st := b.state
	st.State, st.UpdatedAt, st.StartedAt, st.Slots = StateRunning, now, now, sharding.SlotCount(len(live))
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
