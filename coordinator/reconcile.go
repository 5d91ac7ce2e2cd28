package coordinator

import (
	"fmt"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// reconcile compares the view with what should be and does this member's
// part of closing the gap. Every action is a txn whose compares prove the
// view it was decided on is still current, so members acting on the same
// view at once cannot both succeed, and a stale view costs a failed compare,
// never a wrong write.
func (c *Coordinator) reconcile(l *lease) {
	live := c.view.live()
	c.live.Store(int64(len(live)))
	c.noteMembership(live)
	c.checkHeld(l)
	c.publishEndpoints(l)
	now := time.Now()
	work := archiveWork{sweep: len(live) > 0 && live[0].ID == c.cfg.MemberID}
	for _, b := range c.view.sorted() {
		if !b.hasState {
			continue
		}
		switch b.state.State {
		case StatePending:
			if !now.Before(b.state.NotBefore) {
				c.start(l, b, live)
			}
		case StateRunning, StatePaused:
			// Paused broadcasts keep their claims (workers wait while
			// paused) and still fail over, so a resume finds every unit
			// owned.
			c.claimOrTakeOver(l, b, live)
			if b.state.State == StateRunning {
				c.complete(l, b)
			}
		default:
			// Nothing more happens to the units of a broadcast that is
			// over; keeping only its state and claims bounds the view by
			// the broadcasts in flight, not by every one there ever was.
			clear(b.units)
			clear(b.arcs)
			if j, ok := c.archiveDue(b, now); ok {
				work.jobs = append(work.jobs, j)
			}
		}
	}
	c.noteShares()
	if len(work.jobs) > 0 || work.sweep {
		c.archiver.offer(work)
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
		if cv, ok := b.claims[cl.unit.ID]; !ok || cv.createRev != cl.token {
			// A write in flight may be the Finish or Handoff that deleted
			// the claim; it ends the claim itself, so leave it be.
			if !cl.mu.TryLock() {
				continue
			}
			if !cl.ended.Load() {
				c.log.Warn("claim gone from etcd; dropping it", "broadcast", cl.broadcast, "unit", cl.unit.ID)
				cl.lose(ErrNotOwner)
			}
			cl.mu.Unlock()
			continue
		}
		if b.hasState && b.state.State.Terminal() {
			c.release(l, cl, b.state.State)
		}
	}
}

// release ends a claim on a broadcast that is over and deletes the claim
// key, so the status shows no one working on it.
func (c *Coordinator) release(l *lease, cl *Claim, st State) {
	cl.lose(errBroadcastOver)
	ctx, cancel := c.opCtx(l)
	defer cancel()
	if _, err := c.txn(ctx, "release", []clientv3.Cmp{cl.isOwner()}, clientv3.OpDelete(cl.claimKey)); err != nil {
		c.log.Warn("release claim", "broadcast", cl.broadcast, "unit", cl.unit.ID, "state", st, "err", err)
	}
}

// maxTxnBytes is what one txn may carry here, under etcd's default request
// limit of 1.5 MiB (--max-request-bytes) with room for overhead.
const maxTxnBytes = 1 << 20

// start moves a pending broadcast to running with one open unit per live
// member, from sharding.InitialPlan over the live members' ring.
func (c *Coordinator) start(l *lease, b *broadcastView, live []sharding.Member) {
	if len(live) == 0 {
		return
	}
	now := time.Now().UTC()
	st := b.state
	st.State, st.UpdatedAt, st.StartedAt = StateRunning, now, now
	val, err := encode(st)
	if err != nil {
		c.log.Error("start broadcast", "broadcast", b.id, "err", err)
		return
	}
	ops, inPlan, err := startOps(c.keys, b.id, val, live, c.ring, now)
	if err != nil {
		c.log.Error("start broadcast", "broadcast", b.id, "err", err)
		return
	}
	if inPlan < len(live) {
		c.log.Warn("start: fleet too large for one transaction; the members last by id get no initial unit",
			"broadcast", b.id, "members", len(live), "in_plan", inPlan)
	}
	ctx, cancel := c.opCtx(l)
	defer cancel()
	cmp := clientv3.Compare(clientv3.ModRevision(c.keys.state(b.id)), "=", b.stateRev)
	resp, err := c.txn(ctx, "start", []clientv3.Cmp{cmp}, ops...)
	switch {
	case err != nil:
		c.log.Warn("start broadcast", "broadcast", b.id, "err", err)
	case resp.Succeeded:
		c.log.Info("started broadcast", "broadcast", b.id, "units", inPlan)
	}
}

// startOps returns the ops of a start: the state put (stateVal) and the
// two puts of each initial unit, and how many members got a unit. ring may
// be the ring of live, to save building it again.
//
// The ops must fit one txn, in count and in bytes. The count allows 63
// units; members beyond that (by id) get no unit of this broadcast until a
// failover gives them one. The bytes are the arcs: a ring member's share is
// thousands of ranges (tens of KB), so past a dozen members the ring's plan
// does not fit, and the space is instead cut into equal contiguous units,
// one range each. Any partition is as correct as another; the ring's plan
// is preferred only because it honours capacities. See docs/ETCD.md.
func startOps(k keys, id, stateVal string, live []sharding.Member, ring *sharding.Ring, now time.Time) ([]clientv3.Op, int, error) {
	members := live[:min(len(live), (maxTxnOps-1)/2)]
	if len(members) < len(live) || ring == nil {
		var err error
		if ring, err = sharding.NewRing(members); err != nil {
			return nil, 0, fmt.Errorf("coordinator: start %s: %w", id, err)
		}
	}
	plan := sharding.InitialPlan(ring)
	for round := 0; ; round++ {
		ops := []clientv3.Op{clientv3.OpPut(k.state(id), stateVal)}
		size := len(stateVal)
		for _, a := range plan {
			puts, n, err := newUnitOps(k, id, a.Unit, a.Member, now)
			if err != nil {
				return nil, 0, err
			}
			ops, size = append(ops, puts...), size+n
		}
		if size <= maxTxnBytes || round > 0 {
			return ops, len(plan), nil
		}
		whole := sharding.Unit{ID: "u", Arcs: sharding.Full()}
		plan = plan[:0]
		for i, u := range whole.Split(len(members)) {
			plan = append(plan, sharding.Assignment{Member: members[i].ID, Unit: u})
		}
	}
}

// claimOrTakeOver claims the open units assigned to this member and takes
// over orphans: open units without a claim whose assignee is gone, leaving,
// or empty.
func (c *Coordinator) claimOrTakeOver(l *lease, b *broadcastView, live []sharding.Member) {
	self := c.cfg.MemberID
	for _, u := range b.sortedUnits() {
		if u.err != nil || u.rec.Status != unitOpen {
			continue
		}
		if _, claimed := b.claims[u.unit.ID]; claimed {
			continue
		}
		switch a := u.rec.Assignee; {
		case a == self:
			if !c.holds(c.keys.claim(b.id, u.unit.ID)) {
				c.claimUnit(l, b, u)
			}
		case a == "" || !c.view.active(a):
			c.takeOver(l, b, u, live)
		}
	}
}

// claimUnit claims u for this member under its lease. The claim key's
// create revision is the fencing token.
func (c *Coordinator) claimUnit(l *lease, b *broadcastView, u *unitView) {
	key := c.keys.claim(b.id, u.unit.ID)
	ctx, cancel := c.opCtx(l)
	defer cancel()
	resp, err := c.txn(ctx, "claim", []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(u.key), "=", u.modRev),
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
	}, clientv3.OpPut(key, c.cfg.MemberID, clientv3.WithLease(l.id)))
	if err != nil {
		c.log.Warn("claim unit", "broadcast", b.id, "unit", u.unit.ID, "err", err)
		return
	}
	if !resp.Succeeded {
		return // the view was stale; the next event brings the news
	}
	cl, err := newClaim(c.claimDeps, l, b.id, u, key, resp.Header.Revision)
	if err != nil {
		c.log.Error("claim unit", "broadcast", b.id, "unit", u.unit.ID, "err", err)
		return
	}
	cl.base = c.ring
	c.mu.Lock()
	c.held[key] = cl
	c.m.unitsHeld.Set(float64(len(c.held)))
	c.mu.Unlock()
	c.m.claims.Inc()
	c.log.Info("claimed unit", "broadcast", b.id, "unit", u.unit.ID,
		"cursor", u.unit.Cursor.Seq, "share", u.rec.Share, "token", cl.token)
	c.queue.push(cl)
}

// takeOver splits an orphan's remainder, from its last checkpoint, into
// one child per live member (the i-th child to the i-th member by id), or
// reassigns it whole when one member is live. docs/ETCD.md gives the
// transaction (Transactions, 6: take-over).
func (c *Coordinator) takeOver(l *lease, b *broadcastView, u *unitView, live []sharding.Member) {
	ids := takeOverMembers(live, u.unit.ID)
	if len(ids) == 0 {
		return
	}
	now := time.Now().UTC()
	parent := u.rec
	parent.UpdatedAt = now
	var ops []clientv3.Op
	if len(ids) == 1 {
		parent.Assignee = ids[0]
	} else {
		parent.Status = unitSplit
		for i, child := range u.unit.Split(len(ids)) {
			if child.Empty() {
				continue // a remainder smaller than k positions
			}
			puts, _, err := newUnitOps(c.keys, b.id, child, ids[i], now)
			if err != nil {
				c.log.Error("take over", "broadcast", b.id, "unit", u.unit.ID, "err", err)
				return
			}
			ops = append(ops, puts...)
			parent.Children = append(parent.Children, child.ID)
		}
		if len(parent.Children) == 0 {
			parent.Status = unitDone // no position left to hold
		}
	}
	val, err := encode(parent)
	if err != nil {
		c.log.Error("take over", "broadcast", b.id, "unit", u.unit.ID, "err", err)
		return
	}
	ops = append([]clientv3.Op{clientv3.OpPut(u.key, val)}, ops...)
	claimKey := c.keys.claim(b.id, u.unit.ID)
	ctx, cancel := c.opCtx(l)
	defer cancel()
	resp, err := c.txn(ctx, "takeover", []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(u.key), "=", u.modRev),
		clientv3.Compare(clientv3.CreateRevision(claimKey), "=", 0),
	}, ops...)
	switch {
	case err != nil:
		c.log.Warn("take over orphan", "broadcast", b.id, "unit", u.unit.ID, "err", err)
	case resp.Succeeded:
		c.m.failovers.Inc()
		c.log.Info("took over orphan unit", "broadcast", b.id, "unit", u.unit.ID,
			"was", u.rec.Assignee, "members", len(ids), "cursor", u.unit.Cursor.Seq)
	}
}

// takeOverMembers returns the members an orphan's remainder goes to, sorted
// by id. The parent's put plus two puts per child must fit one txn, so at
// most (maxTxnOps-1)/2 = 63 members take part; with more live members, a
// window of that many starting at a place chosen by the unit's id is used,
// so different orphans spread over different members.
func takeOverMembers(live []sharding.Member, unitID string) []string {
	ids := make([]string, len(live))
	for i, m := range live {
		ids[i] = m.ID
	}
	const most = (maxTxnOps - 1) / 2
	if len(ids) <= most {
		return ids
	}
	at := int(xxhash.Sum64String(unitID) % uint64(len(ids)))
	out := make([]string, 0, most)
	for i := range most {
		out = append(out, ids[(at+i)%len(ids)])
	}
	// Sorted, so the i-th child goes to the i-th member by id.
	slices.Sort(out)
	return out
}

// complete ends a running broadcast that has no open unit left: done, or
// expired if any record was counted expired. The compare on the units'
// mod revisions proves no unit changed since the view was taken.
func (c *Coordinator) complete(l *lease, b *broadcastView) {
	if len(b.units) == 0 {
		return
	}
	var sum Counters
	for _, u := range b.units {
		if u.rec.Status != unitDone && u.rec.Status != unitSplit {
			return
		}
		sum = sum.Add(u.rec.Counters)
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
	ctx, cancel := c.opCtx(l)
	defer cancel()
	resp, err := c.txn(ctx, "complete", []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(c.keys.state(b.id)), "=", b.stateRev),
		clientv3.Compare(clientv3.ModRevision(c.keys.units(b.id)), "<", c.view.rev+1).WithPrefix(),
	}, clientv3.OpPut(c.keys.state(b.id), val))
	switch {
	case err != nil:
		c.log.Warn("complete broadcast", "broadcast", b.id, "err", err)
	case resp.Succeeded:
		c.log.Info("broadcast finished", "broadcast", b.id, "state", st.State, "scanned", sum.Scanned,
			"delivered", sum.Delivered, "failed", sum.Failed)
	}
}
