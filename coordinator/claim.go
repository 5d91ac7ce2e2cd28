package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// errClaimEnded is the cause of a claim's context once the claim was
// finished, handed off or released: the work is not lost, it is done with.
var errClaimEnded = errors.New("coordinator: claim ended")

// Claim is this member's exclusive hold on one unit of one broadcast. The
// worker streams the unit from Unit().Cursor and reports progress through
// Checkpoint; it ends the claim with Finish (the unit is done) or, when
// HandoffRequested is closed, with Handoff after it stopped and drained. A
// worker that cannot get either written gives the claim up with Release.
//
// Every write is a transaction that first proves the claim still holds
// (isOwner), so a member whose lease expired can never overwrite its
// successor's progress; such a write returns ErrNotOwner and ends the
// claim's context.
//
// A Claim is used from two goroutines: the worker's, which calls its
// exported methods, and the Coordinator's Run goroutine, which asks for
// hand-offs and ends claims it finds lost. The fields are grouped by who
// owns them.
type Claim struct {
	// Immutable after newClaim; read from any goroutine.
	deps      claimDeps
	broadcast string
	unitKey   string
	claimKey  string
	token     int64 // create revision of the claim key: the fencing token
	unit      sharding.Unit
	start     Progress
	ctx       context.Context
	cancel    context.CancelCauseFunc // safe to call from any goroutine, more than once

	ended       atomic.Bool   // set by lose or end, on any goroutine; never cleared
	handoff     chan struct{} // closed once, through handoffOnce, by requestHandoff
	handoffOnce sync.Once

	// base is the ring when the claim was taken; joiners are the members
	// of a later ring that are not in it. Only Run's goroutine uses it.
	base *sharding.Ring

	// mu serialises the claim's writes (Checkpoint, Finish, Handoff, Release) and
	// guards rec and moves. It is taken before Coordinator.mu: a refused
	// write ends the claim, which calls forget, while mu is held.
	mu    sync.Mutex
	rec   unitRecord               // the unit record as this claim last wrote (or read) it
	moves map[string]sharding.Arcs // set by requestHandoff on Run's goroutine; read by Handoff
}

// claimDeps is what a Claim needs from the member that took it, given at
// construction, so that a Claim holds no pointer back to its Coordinator.
type claimDeps struct {
	member  string // this member's id: owner of the checkpoints, assignee of what it keeps
	keys    keys
	m       *metrics
	txn     func(ctx context.Context, op string, cmps []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error)
	leaving func() bool  // whether the member is leaving: a hand-off then releases the unit
	forget  func(*Claim) // removes an ended claim from the member's held set
}

func newClaim(deps claimDeps, l *lease, broadcast string, u *unitView, claimKey string, token int64) (*Claim, error) {
	start, err := u.rec.progress()
	if err != nil {
		return nil, err
	}
	cl := &Claim{
		deps: deps, broadcast: broadcast, unitKey: u.key, claimKey: claimKey, token: token,
		unit: u.unit, start: start, rec: u.rec, handoff: make(chan struct{}),
	}
	// Derived from the lease's context, so that passing the lease deadline
	// ends every claim at the same instant.
	cl.ctx, cl.cancel = context.WithCancelCause(l.ctx)
	return cl, nil
}

// isOwner is the compare that proves the claim still holds its unit: the
// claim key's create revision is still this claim's token. A deleted claim
// key (its lease expired, or the unit was finished or handed off) compares
// as 0, and one claimed again since has a later revision, so a claim that
// is over never passes it. Every transaction written on the claim's
// behalf (Checkpoint, Finish, Handoff, Release, and the release of a claim
// on a broadcast that is over) carries it.
func (cl *Claim) isOwner() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(cl.claimKey), "=", cl.token)
}

// Broadcast is the id of the broadcast the unit belongs to.
func (cl *Claim) Broadcast() string { return cl.broadcast }

// Unit is the claimed unit; its Cursor is where work resumes. Its Arcs are
// shared and must not be modified.
func (cl *Claim) Unit() sharding.Unit { return cl.unit }

// Progress is what the unit record held when the claim was taken: the
// resume cursor and the unit's counters so far, which the worker continues
// to accumulate (counters in later reports are cumulative for the unit).
func (cl *Claim) Progress() Progress {
	p := cl.start
	p.InvalidSamples = slices.Clone(p.InvalidSamples)
	return p
}

// Context ends when the claim is over: lost (fenced, lease deadline
// passed, session ended), the broadcast cancelled, the member stopped, or
// the claim finished or handed off. Once it ends, the worker must not send
// anything more for this unit.
func (cl *Claim) Context() context.Context { return cl.ctx }

// HandoffRequested is closed when the coordinator wants the unit back: a
// member joined and takes part of it, or this member is leaving. The worker
// should stop reading, let what is in flight finish, and call Handoff with
// its exact progress.
func (cl *Claim) HandoffRequested() <-chan struct{} { return cl.handoff }

// Checkpoint records p as the unit's progress. It returns ErrNotOwner when
// the claim no longer holds (the worker must stop sending), and
// ErrCursorBackwards for a cursor behind the recorded one.
func (cl *Claim) Checkpoint(ctx context.Context, p Progress) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	rec, err := cl.advance("checkpoint", p)
	if err != nil {
		return err
	}
	val, err := encode(rec)
	if err != nil {
		return err
	}
	cl.deps.m.checkpoints.Inc()
	if err := cl.write(ctx, "checkpoint", clientv3.OpPut(cl.unitKey, val)); err != nil {
		cl.deps.m.checkpointFailures.Inc()
		return err
	}
	cl.rec = rec
	return nil
}

// Finish records p as the unit's final progress, marks the unit done and
// releases the claim.
func (cl *Claim) Finish(ctx context.Context, p Progress) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	rec, err := cl.advance("finish", p)
	if err != nil {
		return err
	}
	rec.Status = unitDone
	val, err := encode(rec)
	if err != nil {
		return err
	}
	if err := cl.write(ctx, "finish", clientv3.OpPut(cl.unitKey, val), clientv3.OpDelete(cl.claimKey)); err != nil {
		return err
	}
	cl.end()
	return nil
}

// Handoff gives the unit back at p, which must be exact: the worker has
// stopped and nothing before p.Cursor is in flight. If members joined, the
// unit is carved: the part the joiners now own goes to them as new units,
// the rest to a new unit this member claims again, all resuming at p. If
// this member is leaving, the unit is released for the survivors to split.
// Otherwise it is simply returned to this member, to be claimed afresh.
func (cl *Claim) Handoff(ctx context.Context, p Progress) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	rec, err := cl.advance("handoff", p)
	if err != nil {
		return err
	}
	var ops []clientv3.Op
	switch {
	case cl.deps.leaving():
		rec.Assignee = ""
		ops, err = cl.replace(rec)
	case len(cl.moves) > 0:
		ops, err = cl.carve(rec, p.Cursor)
	default:
		rec.Assignee = cl.deps.member
		ops, err = cl.replace(rec)
	}
	if err != nil {
		return err
	}
	if err := cl.write(ctx, "handoff", ops...); err != nil {
		return err
	}
	cl.deps.m.handoffs.Inc()
	cl.end()
	return nil
}

// Release gives the claim up without recording progress, when the worker
// could not write Finish or Handoff: it deletes the claim key, if the
// claim still holds, and ends the claim. It returns ErrNotOwner when the
// claim no longer holds; after any other error the claim still holds and
// Release may be tried again.
//
// The unit record stays as last checkpointed, so whoever claims the unit
// next resumes from the last checkpoint and sends again, under the same
// idempotency keys, what this claim finished after it. The record still
// names this member as the unit's assignee: this member claims it again at
// its next reconcile, once its view shows the claim key gone, and the
// worker starts it afresh. That is deliberate: a member whose lease is
// alive is as good a place as any to run the unit, and a write that failed
// for a passing reason (a leader election, etcd briefly unreachable) will
// most likely succeed next time. If this member is leaving or gone by then,
// the unit is an orphan and the survivors take it over. Joiners' parts
// that a pending hand-off would have carved out stay with the unit until
// the membership changes again.
func (cl *Claim) Release(ctx context.Context) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.ended.Load() || cl.ctx.Err() != nil {
		return fmt.Errorf("coordinator: release %s/%s: %w", cl.broadcast, cl.unit.ID, ErrNotOwner)
	}
	if err := cl.write(ctx, "release", clientv3.OpDelete(cl.claimKey)); err != nil {
		return err
	}
	cl.end()
	return nil
}

// advance checks that the claim may still write and that p moves forward,
// and returns the unit record at p.
func (cl *Claim) advance(op string, p Progress) (unitRecord, error) {
	if cl.ended.Load() || cl.ctx.Err() != nil {
		return unitRecord{}, fmt.Errorf("coordinator: %s %s/%s: %w", op, cl.broadcast, cl.unit.ID, ErrNotOwner)
	}
	cur, err := cl.rec.cursor()
	if err != nil {
		return unitRecord{}, err
	}
	if p.Cursor.Seq < cur.Seq {
		return unitRecord{}, fmt.Errorf("coordinator: %s %s/%s: %d after %d: %w",
			op, cl.broadcast, cl.unit.ID, p.Cursor.Seq, cur.Seq, ErrCursorBackwards)
	}
	return cl.rec.withProgress(p, cl.deps.member, time.Now().UTC())
}

// replace is the ops that put rec and drop the claim.
func (cl *Claim) replace(rec unitRecord) ([]clientv3.Op, error) {
	val, err := encode(rec)
	if err != nil {
		return nil, err
	}
	return []clientv3.Op{clientv3.OpPut(cl.unitKey, val), clientv3.OpDelete(cl.claimKey)}, nil
}

// carve is the ops that split the unit at cursor between this member (child
// 0, the part it keeps) and the joiners (child i, what joiner i now owns),
// mark the parent split, and drop the claim. Empty children are not
// written.
func (cl *Claim) carve(rec unitRecord, cursor sharding.Cursor) ([]clientv3.Op, error) {
	joiners := make([]string, 0, len(cl.moves))
	for id := range cl.moves {
		joiners = append(joiners, id)
	}
	slices.Sort(joiners)
	// The parent's put, the claim's delete and child 0's two puts take
	// four ops, each joiner's child two more: joiners beyond etcd's limit
	// take nothing of this unit now, and their share stays with child 0.
	joiners = joiners[:min(len(joiners), (maxTxnOps-4)/2)]
	parts := make([]sharding.Arcs, len(joiners))
	for i, id := range joiners {
		parts[i] = cl.moves[id]
	}
	parent := cl.unit
	parent.Cursor = cursor
	now := time.Now().UTC()
	ops := make([]clientv3.Op, 1, 2*len(parts)+4) // the parent's put goes first, below
	var ids []string
	for i, child := range parent.Carve(parts...) {
		if child.Empty() {
			continue
		}
		assignee := cl.deps.member
		if i > 0 {
			assignee = joiners[i-1]
		}
		puts, _, err := newUnitOps(cl.deps.keys, cl.broadcast, child, assignee, now)
		if err != nil {
			return nil, err
		}
		ops = append(ops, puts...)
		ids = append(ids, child.ID)
	}
	rec.Status, rec.Children = unitSplit, ids
	val, err := encode(rec)
	if err != nil {
		return nil, err
	}
	ops[0] = clientv3.OpPut(cl.unitKey, val)
	return append(ops, clientv3.OpDelete(cl.claimKey)), nil
}

// write runs ops if the claim still holds. A failed compare means someone
// else owns the unit now: the claim ends with ErrNotOwner.
func (cl *Claim) write(ctx context.Context, op string, ops ...clientv3.Op) error {
	resp, err := cl.deps.txn(ctx, op, []clientv3.Cmp{cl.isOwner()}, ops...)
	if err != nil {
		return fmt.Errorf("coordinator: %s %s/%s: %w", op, cl.broadcast, cl.unit.ID, err)
	}
	if !resp.Succeeded {
		cl.lose(ErrNotOwner)
		return fmt.Errorf("coordinator: %s %s/%s: %w", op, cl.broadcast, cl.unit.ID, ErrNotOwner)
	}
	return nil
}

// requestHandoff asks the worker for the unit back. moves, if any, are the
// joiners' parts to carve out at the hand-off; later moves replace earlier
// ones, since they are computed against a newer ring.
func (cl *Claim) requestHandoff(moves map[string]sharding.Arcs) {
	cl.mu.Lock()
	if moves != nil {
		cl.moves = moves
	}
	cl.mu.Unlock()
	cl.handoffOnce.Do(func() { close(cl.handoff) })
}

func (cl *Claim) handoffPending() bool {
	select {
	case <-cl.handoff:
		return true
	default:
		return false
	}
}

// lose ends a claim this member no longer owns, with cause. It does not
// take cl.mu, so it never waits for a write in flight: the write's own
// compare decides that one.
func (cl *Claim) lose(cause error) {
	cl.ended.Store(true)
	cl.cancel(cause)
	cl.deps.forget(cl)
}

// end closes a claim whose work was recorded (finished or handed off).
func (cl *Claim) end() {
	cl.ended.Store(true)
	cl.cancel(errClaimEnded)
	cl.deps.forget(cl)
}
