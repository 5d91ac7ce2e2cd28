package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// errClaimEnded is the cause of a claim's context once the claim was
// finished, handed off or released: the work is not lost, it is done with.
var errClaimEnded = errors.New("coordinator: claim ended")

// Claim is this member's exclusive hold on one slot of one broadcast. The
// worker sends the slot's records from Progress().ResumeAt() on and
// reports progress with Write (or Checkpoint); it ends the claim with
// Finish (the slot is done) or, when HandoffRequested is closed, with
// Handoff after it stopped and drained the slot. A worker that cannot get
// either written gives the claim up with Release.
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
	deps        claimDeps
	broadcast   string
	slot, slots int
	claimKey    string
	noteKey     string
	doneKey     string
	progressKey string
	token       int64 // create revision of the claim key: the fencing token
	start       Progress
	ctx         context.Context
	cancel      context.CancelCauseFunc // safe to call from any goroutine, more than once

	ended       atomic.Bool   // set by lose or end, on any goroutine; never cleared
	handoff     chan struct{} // closed once, through handoffOnce, by requestHandoff
	handoffOnce sync.Once

	// mu serialises the claim's writes and guards rec. It is taken before
	// Coordinator.mu: a refused write ends the claim, which calls forget,
	// while mu is held.
	mu  sync.Mutex
	rec progressRecord // the progress record as this claim last wrote (or read) it
}

// claimDeps is what a Claim needs from the member that took it, given at
// construction, so that a Claim holds no pointer back to its Coordinator.
type claimDeps struct {
	member string // this member's id: owner of the progress it writes
	keys   keys
	m      *metrics
	txn    func(ctx context.Context, op string, cmps []clientv3.Cmp, thenOps, elseOps []clientv3.Op) (*clientv3.TxnResponse, error)
	forget func(*Claim) // removes an ended claim from the member's held set
}

func newClaim(deps claimDeps, l *lease, broadcast string, slot, slots int, rec progressRecord, token int64) (*Claim, error) {
	start, err := rec.progress()
	if err != nil {
		return nil, err
	}
	k := deps.keys
	cl := &Claim{
		deps: deps, broadcast: broadcast, slot: slot, slots: slots,
		claimKey: k.claim(broadcast, slot), noteKey: k.note(deps.member, broadcast, slot),
		doneKey: k.done(broadcast, slot), progressKey: k.progress(broadcast, slot),
		token: token, start: start, rec: rec, handoff: make(chan struct{}),
	}
	// Derived from the lease's context, so that passing the lease deadline
	// ends every claim at the same instant.
	cl.ctx, cl.cancel = context.WithCancelCause(l.ctx)
	return cl, nil
}

// isOwner is the compare that proves the claim still holds its slot: the
// claim key's create revision is still this claim's token. A deleted claim
// key (its lease expired, or the slot was finished or handed off) compares
// as 0, and one claimed again since has a later revision, so a claim that
// is over never passes it. Every transaction written on the claim's
// behalf (a checkpoint, finish or hand-off, and the release of a claim on
// a broadcast that is over) carries it.
func (cl *Claim) isOwner() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(cl.claimKey), "=", cl.token)
}

// Broadcast is the id of the broadcast the slot belongs to.
func (cl *Claim) Broadcast() string { return cl.broadcast }

// Slot is the claimed slot's number, in [0, Slots()).
func (cl *Claim) Slot() int { return cl.slot }

// Slots is the broadcast's slot count: a record at hash position p is in
// slot sharding.SlotOf(p, Slots()).
func (cl *Claim) Slots() int { return cl.slots }

// Range is the hash positions the slot holds.
func (cl *Claim) Range() sharding.Range { return sharding.SlotRange(cl.slot, cl.slots) }

// Progress is what the slot's progress record held when the claim was
// taken: where work resumes, the records behind it to send again, and the
// slot's counters so far, which the worker continues to accumulate
// (counters in later reports are cumulative for the slot).
func (cl *Claim) Progress() Progress {
	p := cl.start
	p.Pending = slices.Clone(p.Pending)
	p.InvalidSamples = slices.Clone(p.InvalidSamples)
	return p
}

// Context ends when the claim is over: lost (fenced, lease deadline
// passed, session ended), the broadcast cancelled, the member stopped, or
// the claim finished or handed off. Once it ends, the worker must not send
// anything more for this slot.
func (cl *Claim) Context() context.Context { return cl.ctx }

// HandoffRequested is closed when the coordinator wants the slot back:
// another member should hold it now (one joined, so this member is above
// its quota), or this member is leaving. The worker should stop sending
// the slot's records, let those in flight finish, and call Handoff with
// its exact progress.
func (cl *Claim) HandoffRequested() <-chan struct{} { return cl.handoff }

// Checkpoint records p as the slot's progress. It returns ErrNotOwner when
// the claim no longer holds (the worker must stop sending),
// ErrCursorBackwards for a cursor behind the recorded one, and
// ErrBadProgress for progress a record cannot hold.
func (cl *Claim) Checkpoint(ctx context.Context, p Progress) error {
	return Write(ctx, []Report{{Claim: cl, Progress: p}})[0]
}

// Finish records p as the slot's final progress, marks the slot done and
// releases the claim.
func (cl *Claim) Finish(ctx context.Context, p Progress) error {
	return Write(ctx, []Report{{Claim: cl, Progress: p, End: FinishSlot}})[0]
}

// Handoff gives the slot back at p, which should be exact: the worker has
// stopped sending the slot's records, and what is still unfinished is in
// p.Pending. Whoever the assignment names next claims it and resumes
// there; if that is this member again (a hand-off nobody asked for), it
// claims the slot afresh.
func (cl *Claim) Handoff(ctx context.Context, p Progress) error {
	return Write(ctx, []Report{{Claim: cl, Progress: p, End: HandBack}})[0]
}

// Release gives the claim up without recording progress, when the worker
// could not write its finish or hand-back: it deletes the claim key, if
// the claim still holds, and ends the claim. It returns ErrNotOwner when
// the claim no longer holds; after any other error the claim still holds
// and Release may be tried again.
//
// The slot's progress stays as last checkpointed, so whoever claims it
// next resumes from that checkpoint and sends again, under the same
// idempotency keys, what this claim finished after it. If the assignment
// still names this member for the slot, this member claims it again at
// its next reconcile and the worker starts it afresh: a member whose lease
// is alive is as good a place as any to run it, and a write that failed
// for a passing reason will most likely succeed next time.
func (cl *Claim) Release(ctx context.Context) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.ended.Load() || cl.ctx.Err() != nil {
		return fmt.Errorf("coordinator: release %s/%d: %w", cl.broadcast, cl.slot, ErrNotOwner)
	}
	resp, err := cl.deps.txn(ctx, "release", []clientv3.Cmp{cl.isOwner()}, cl.drop(), nil)
	if err != nil {
		return fmt.Errorf("coordinator: release %s/%d: %w", cl.broadcast, cl.slot, err)
	}
	if !resp.Succeeded {
		cl.lose(ErrNotOwner)
		return fmt.Errorf("coordinator: release %s/%d: %w", cl.broadcast, cl.slot, ErrNotOwner)
	}
	cl.end()
	return nil
}

// drop is the operations that delete the claim and its note.
func (cl *Claim) drop() []clientv3.Op {
	return []clientv3.Op{clientv3.OpDelete(cl.claimKey), clientv3.OpDelete(cl.noteKey)}
}

// requestHandoff asks the worker for the slot back.
func (cl *Claim) requestHandoff() {
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
