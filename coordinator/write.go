package coordinator

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// End says what a Report does to its claim besides recording progress.
type End uint8

const (
	// KeepClaim is a checkpoint: the claim goes on.
	KeepClaim End = iota
	// FinishSlot records the slot's final progress, marks it done and
	// releases the claim. The progress must have nothing pending.
	FinishSlot
	// HandBack records the progress and releases the claim, for whoever
	// the assignment names to resume it there.
	HandBack
)

// Report is one claim's progress, for Write.
type Report struct {
	Claim    *Claim
	Progress Progress
	End      End
}

// maxReportsPerTxn bounds the claims one transaction proves and writes:
// one compare each, and one (checkpoint) to four (finish) operations, the
// operations also kept within etcd's default of 128 per transaction
// (--max-txn-ops); a checkpoint of a few hundred bytes each is far within
// its 1.5 MiB request limit.
const maxReportsPerTxn = 60

// Write records the reports, a worker's checkpoints (and finishes and
// hand-backs) of many slots, in as few transactions as etcd's limits
// allow: one for up to 60 slots. Each transaction proves every claim it
// writes for (isOwner). When one of them no longer holds, the transaction
// reads back which, ends those claims with ErrNotOwner, and writes the
// others again without them. It returns one error per report, in order:
// nil for a report written, ErrNotOwner, ErrCursorBackwards or
// ErrBadProgress (wrapped) for one refused, or the etcd error of a
// transaction that did not complete, which may be tried again.
//
// Write may be called from any goroutine; a claim's writes are serialised
// by its lock, taken for every claim of the call in one fixed order.
func Write(ctx context.Context, reports []Report) []error {
	errs := make([]error, len(reports))
	order := make([]int, len(reports))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		x, y := reports[a].Claim, reports[b].Claim
		return cmp.Or(cmp.Compare(x.broadcast, y.broadcast), cmp.Compare(x.slot, y.slot), cmp.Compare(x.token, y.token))
	})
	now := time.Now().UTC()
	var ready []prepared
	for k, i := range order {
		r := reports[i]
		cl := r.Claim
		if k > 0 && reports[order[k-1]].Claim == cl {
			errs[i] = fmt.Errorf("%w: the same claim twice in one write", ErrBadProgress)
			continue
		}
		cl.mu.Lock()
		defer cl.mu.Unlock()
		p, err := cl.prepare(r.End, r.Progress, now)
		if err != nil {
			errs[i] = err
			continue
		}
		p.i = i
		ready = append(ready, p)
	}
	for len(ready) > 0 {
		n, ops, size := 0, 0, 0
		for n < len(ready) && n < maxReportsPerTxn && ops+len(ready[n].ops) <= maxTxnOps && (n == 0 || size+ready[n].size <= maxTxnBytes) {
			ops, size = ops+len(ready[n].ops), size+ready[n].size
			n++
		}
		commit(ctx, ready[:n], errs)
		ready = ready[n:]
	}
	return errs
}

// prepared is one report ready to commit: its index in the call, the
// record it writes, and the operations that write it.
type prepared struct {
	i    int
	cl   *Claim
	end  End
	rec  progressRecord
	ops  []clientv3.Op
	size int
}

// prepare checks that the claim may still write and that p moves forward,
// and returns the record and operations of the report. cl.mu is held.
func (cl *Claim) prepare(end End, p Progress, now time.Time) (prepared, error) {
	fail := func(err error) (prepared, error) {
		return prepared{}, fmt.Errorf("coordinator: write %s/%d: %w", cl.broadcast, cl.slot, err)
	}
	if cl.ended.Load() || cl.ctx.Err() != nil {
		return fail(ErrNotOwner)
	}
	if err := p.check(); err != nil {
		return fail(err)
	}
	if end == FinishSlot && len(p.Pending) > 0 {
		return fail(fmt.Errorf("%w: a finished slot with %d records pending", ErrBadProgress, len(p.Pending)))
	}
	cur, err := cl.rec.cursor()
	if err != nil {
		return fail(err)
	}
	if p.Cursor.Seq < cur.Seq {
		return fail(fmt.Errorf("%d after %d: %w", p.Cursor.Seq, cur.Seq, ErrCursorBackwards))
	}
	rec, err := cl.rec.withProgress(p, cl.deps.member, cl.token, now)
	if err != nil {
		return fail(err)
	}
	rec.Done, rec.Released = end == FinishSlot, end == HandBack
	val, err := encode(rec)
	if err != nil {
		return fail(err)
	}
	ops := []clientv3.Op{clientv3.OpPut(cl.progressKey, val)}
	size := len(cl.progressKey) + len(val)
	switch end {
	case FinishSlot:
		ops = append(append(ops, clientv3.OpPut(cl.doneKey, cl.deps.member)), cl.drop()...)
		size += len(cl.doneKey) + len(cl.deps.member) + len(cl.claimKey) + len(cl.noteKey)
	case HandBack:
		ops = append(ops, cl.drop()...)
		size += len(cl.claimKey) + len(cl.noteKey)
	}
	return prepared{cl: cl, end: end, rec: rec, ops: ops, size: size}, nil
}

// commit writes one chunk of reports in one transaction, and again without
// the claims found lost if it fails its compares.
func commit(ctx context.Context, chunk []prepared, errs []error) {
	deps := chunk[0].cl.deps
	for attempt := 0; len(chunk) > 0 && attempt < 3; attempt++ {
		cmps := make([]clientv3.Cmp, 0, len(chunk))
		var ops, check []clientv3.Op
		for _, p := range chunk {
			cmps = append(cmps, p.cl.isOwner())
			ops = append(ops, p.ops...)
			check = append(check, clientv3.OpGet(p.cl.claimKey, clientv3.WithKeysOnly()))
		}
		deps.m.checkpoints.Inc()
		resp, err := deps.txn(ctx, "checkpoint", cmps, ops, check)
		if err != nil {
			deps.m.checkpointFailures.Inc()
			for _, p := range chunk {
				errs[p.i] = fmt.Errorf("coordinator: write %s/%d: %w", p.cl.broadcast, p.cl.slot, err)
			}
			return
		}
		if resp.Succeeded {
			for _, p := range chunk {
				p.cl.rec = p.rec
				if p.end != KeepClaim {
					if p.end == HandBack {
						deps.m.handoffs.Inc()
					}
					p.cl.end()
				}
			}
			return
		}
		// Some claim no longer holds: its key is gone or was created
		// again. Those end; the others are written again without them.
		deps.m.checkpointFailures.Inc()
		keep := chunk[:0:0]
		for j, p := range chunk {
			kvs := resp.Responses[j].GetResponseRange().Kvs
			if len(kvs) == 1 && kvs[0].CreateRevision == p.cl.token {
				if attempt == 2 {
					// Three refusals in a row, each for a claim that then
					// held: not this one's fault; the caller tries again.
					errs[p.i] = fmt.Errorf("coordinator: write %s/%d: %w", p.cl.broadcast, p.cl.slot, errContended)
					continue
				}
				keep = append(keep, p)
				continue
			}
			p.cl.lose(ErrNotOwner)
			errs[p.i] = fmt.Errorf("coordinator: write %s/%d: %w", p.cl.broadcast, p.cl.slot, ErrNotOwner)
		}
		chunk = keep
	}
}
