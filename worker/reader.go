package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/audience"
)

// job is one owned, reachable record on its way to the endpoint.
type job struct {
	b      *broadcastRun
	slot   *slotRun
	idx    int32
	id     string
	locale string
	data   templates.Record
	// batch, when not nil, makes the job a batch of these records
	// (endpoint.batch_size); the other fields are then unset.
	batch []job
}

// errStream marks a failure to open or read the audience.
var errStream = errors.New("worker: audience stream")

// errStopped ends the reader when its broadcast run stops.
var errStopped = errors.New("worker: broadcast run stopped")

// checkpointTick is how often the checkpointer looks for slots to finish
// or hand back when no checkpoint is due.
const checkpointTick = 20 * time.Millisecond

// skipBatch is how many records the reader passes before it publishes
// its position: records no held slot takes cost a hash and a slot lookup,
// not a lock each.
const skipBatch = 64

// readLoop is the broadcast's one pass over its audience, for every slot
// this worker holds: a record is sent if its slot is held and active and
// it is at or after the slot's cursor, or pending behind it. When a slot
// arrives whose cursor is behind the read position, or a record needs
// sending again, the stream is opened again at the earliest record
// needed (tracker.cover); the slots that already passed that part skip
// it. So a worker reads a stream once per broadcast, whatever the number
// of slots it holds, plus what a late slot makes it read again, and its
// memory is one window per broadcast. The loop ends when the run stops.
func (b *broadcastRun) readLoop() {
	var (
		s       recordStream
		plan    []rangeFrom // what s reads, for a range source
		table   []*slotRun
		gen     = b.t.gen.Load() - 1 // look at the slots first
		skipped int
		attempt int
	)
	closeStream := func() {
		if s != nil {
			s.Close()
			s = nil
		}
	}
	defer closeStream()
	if b.ranges != nil {
		defer b.ranges.close()
	}
	defer b.dropBatch()
	scanned := b.deps.metrics.scanned
	var batch int
	defer func() { scanned.Add(float64(batch)) }()
	for {
		select {
		case <-b.stopping:
			return
		default:
		}
		if g := b.t.gen.Load(); g != gen {
			gen = g
			// The exact position first: a slot that needs records from
			// just behind where the reader is must not lose the records
			// it passed since it last published its position.
			if s != nil {
				b.t.skipTo(s.Cursor())
				skipped = 0
			}
			var from sharding.Cursor
			var move, busy bool
			from, move, busy, table = b.t.cover()
			switch {
			case !busy:
				closeStream()
				if !b.idle(gen) {
					return
				}
				continue
			case move:
				closeStream()
			case b.ranges != nil && !slices.Equal(plan, b.rangePlan()):
				// Other slots held, or one needs reading again: read each
				// slot's range from where it needs it.
				closeStream()
			}
			if s == nil {
				var err error
				if s, plan, err = b.open(from); err != nil {
					if !b.backoff(err, &attempt, from) {
						return
					}
					gen-- // look again before opening again
					continue
				}
			}
		}
		if s == nil {
			var err error
			from := b.t.position()
			if s, plan, err = b.open(from); err != nil {
				if !b.backoff(err, &attempt, from) {
					return
				}
				continue
			}
		}
		if err := b.waitRunnable(); err != nil {
			// Stopped, or the broadcast is over: its claims are being
			// released, and the run stops once they are.
			closeStream()
			if errors.Is(err, errStopped) || !b.idle(gen) {
				return
			}
			continue
		}
		if !s.Next() {
			err := s.Err()
			end := s.Cursor()
			closeStream()
			if err != nil {
				err = fmt.Errorf("%w: read for %s: %w", errStream, b.id, err)
				if !b.backoff(err, &attempt, b.t.position()) {
					return
				}
				continue
			}
			attempt = 0
			b.t.atEnd(end)
			if !b.idle(gen) {
				return
			}
			continue
		}
		attempt = 0
		b.lingered()
		rec := s.Record()
		if batch++; batch == 256 {
			scanned.Add(float64(batch))
			batch = 0
		}
		sr := table[sharding.SlotOf(rec.Position(), b.t.slots)]
		if sr == nil || !b.own(sr, rec, s.Cursor()) {
			if skipped++; skipped == skipBatch {
				b.t.skipTo(s.Cursor())
				skipped = 0
			}
			continue
		}
		skipped = 0
		select {
		case <-b.stopping:
			return
		default:
		}
	}
}

// recordStream is the reader's view of an audience: *audience.Stream for
// a file or a synthetic audience, *rangeStream for one read by position
// range.
type recordStream interface {
	Next() bool
	Record() *audience.Record
	Cursor() sharding.Cursor
	Err() error
	Close() error
}

// open opens the audience at from: the whole stream, or, for a range
// source, each active slot's range from where it needs it (the plan,
// returned too: the stream is opened again when it changes).
func (b *broadcastRun) open(from sharding.Cursor) (recordStream, []rangeFrom, error) {
	if b.ranges == nil {
		s, err := audience.Open(b.spec.Audience, from, b.cfg.audienceLimits)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: open for %s: %w", errStream, b.id, err)
		}
		return s, nil, nil
	}
	src, err := b.ranges.source(b.runCtx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: open for %s: %w", errStream, b.id, err)
	}
	plan := b.rangePlan()
	return openRangeStream(b.runCtx, src, plan, from), plan, nil
}

// rangePlan is what the reader of a range source reads now.
func (b *broadcastRun) rangePlan() []rangeFrom { return rangePlan(b.t.needs(), b.t.slots) }

// backoff waits after a stream failure before the next try (1.6 s,
// doubling, at most 5 s). A stream that fails (a file gone or unreadable
// on this machine) is opened again from the read position: the slots are
// this worker's until it hands them back, and skipping their records
// would lose subscribers. It returns false if the run stopped.
func (b *broadcastRun) backoff(err error, attempt *int, at sharding.Cursor) bool {
	b.flush()
	*attempt++
	b.deps.metrics.streamErrors.Inc()
	b.log.Error("audience stream failed; trying again", "err", err, "cursor", at.Seq, "attempt", *attempt)
	t := time.NewTimer(backoff(*attempt + 3))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.stopping:
		return false
	}
}

// idle waits until the slots change (gen moves past seen) or the run
// stops; it returns false for the latter.
func (b *broadcastRun) idle(seen uint64) bool {
	b.flush()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for b.t.gen.Load() == seen {
		select {
		case <-b.stopping:
			return false
		case <-b.t.room:
		case <-t.C:
		}
	}
	return true
}

// own handles a record of a held slot. It returns false if the slot does
// not take it (behind its cursor and not pending, or the slot is being
// handed back); otherwise the record is settled at once (invalid,
// unreachable, expired) or dispatched to the send pool. It waits while
// there is no room: the window is full, the slot's pending list is full,
// or a checkpoint window finished without an acknowledged write.
func (b *broadcastRun) own(sr *slotRun, rec *audience.Record, next sharding.Cursor) bool {
	var wait *time.Ticker
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	for {
		switch b.t.consider(sr, sharding.Cursor{Seq: rec.Seq, Offset: rec.Offset}) {
		case skipRecord:
			return false
		case takeRecord:
			b.dispatch(sr, rec, next)
			return true
		}
		if wait == nil {
			b.flush() // the batch's records may be what makes room
			b.deps.metrics.readWaits.Inc()
			wait = time.NewTicker(100 * time.Millisecond)
		}
		select {
		case <-b.t.room:
		case <-wait.C:
		case <-b.stopping:
			return true // the run is over; nothing more is sent
		}
	}
}

// dispatch settles or sends a record the slot takes.
func (b *broadcastRun) dispatch(sr *slotRun, rec *audience.Record, next sharding.Cursor) {
	at := sharding.Cursor{Seq: rec.Seq, Offset: rec.Offset}
	settle := func(out outcome, why string) {
		if out == invalid && b.ranges != nil {
			why = rangeInvalid(rec, why)
		}
		if _, ok := b.t.take(sr, at, next, out, rec.Line, why); ok {
			b.deps.metrics.outcome(out)
		}
	}
	if rec.Invalid != "" {
		settle(invalid, rec.Invalid)
		return
	}
	data := make(templates.Record, 8)
	if err := rec.Decode(data); err != nil {
		// Decode records the bare reason; the error repeats the line number.
		settle(invalid, rec.Invalid)
		return
	}
	if b.spec.OnlyReachable && !audience.Reachable(data) {
		settle(unreachable, "")
		return
	}
	if b.expired() {
		settle(expired, "")
		return
	}
	idx, ok := b.t.take(sr, at, next, pending, rec.Line, "")
	if !ok {
		return
	}
	j := job{b: b, slot: sr, idx: idx, id: string(rec.ID), locale: audience.Locale(data), data: data}
	if b.batchSize > 1 {
		b.queue(j)
		return
	}
	if !b.start(j) {
		b.t.finish(idx, pending)
	}
}

// waitRunnable returns at once while the broadcast runs, waits while it is
// paused or pending, and fails when it is over or the run stops. A slot
// asked back meanwhile is handed back without the reader: a paused slot
// can still be handed back exactly.
func (b *broadcastRun) waitRunnable() error {
	for {
		switch st := b.state.Load().(coordinator.State); st {
		case coordinator.StateRunning:
			return nil
		case coordinator.StatePaused, coordinator.StatePending:
			b.flush()
		default:
			b.flush()
			return fmt.Errorf("worker: broadcast %s is %s", b.id, st)
		}
		select {
		case <-b.changed.Load().(<-chan struct{}):
			b.refreshState()
		case <-b.stopping:
			return errStopped
		}
	}
}

// checkpointLoop writes the progress of the broadcast's slots on this
// worker, all of them in one coordinator.Write (one transaction for up to
// 60 slots): as soon as half of CheckpointEvery records have finished
// since the last acknowledged write, or CheckpointInterval has passed, but
// never more often than CheckpointMinInterval. Reading stops while a whole
// CheckpointEvery has finished unacknowledged (tracker.consider); writing
// at the half lets it go on while a write is in flight. It also writes
// each slot's last progress: the finish of a slot read to its end, and the
// hand-back of a slot asked back once it drained (or its drain time is
// up). So etcd writes per broadcast per worker are bounded whatever the
// message rate and the number of slots held, and a crash re-sends at most
// the CheckpointEvery records finished since the last acknowledged write,
// plus those it listed as pending and those in flight. The price of that
// bound: one worker finishes at most CheckpointEvery records per
// CheckpointMinInterval of a broadcast (500,000 a second by default), and
// in practice per etcd write's round trip.
func (b *broadcastRun) checkpointLoop() {
	cfg := b.cfg
	// The ticker looks for slots finished or drained for hand-back; a due
	// checkpoint does not wait for it.
	t := time.NewTicker(max(cfg.checkpointMinInterval, checkpointTick))
	defer t.Stop()
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	defer soon.Stop()
	last := time.Now()
	for {
		select {
		case <-b.stopping:
			return
		case <-t.C:
		case <-b.t.due:
		case <-soon.C:
		}
		now := time.Now()
		// Too soon after the last write: come back once the minimum
		// interval is up.
		if wait := cfg.checkpointMinInterval - now.Sub(last); wait > 0 {
			soon.Reset(wait)
			continue
		}
		force := 2*b.t.unacked() >= uint64(cfg.checkpointEvery) || now.Sub(last) >= cfg.checkpointInterval
		w := b.t.collect(now, force)
		if len(w.reports) == 0 {
			if force {
				b.t.written(w, nil, now, settleLimit, nil)
				last = now
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), cfg.writeTimeout)
		errs := coordinator.Write(ctx, w.reports)
		cancel()
		b.deps.metrics.checkpoints.Inc()
		for i, err := range errs {
			switch {
			case err != nil && coordinator.IsTransient(err):
				if w.reports[i].End != coordinator.KeepClaim {
					b.deps.metrics.settleRetries.Inc()
				}
				b.log.Warn("checkpoint not written; trying again", "slot", w.slots[i].index, "err", err)
			case err == nil && w.reports[i].End == coordinator.HandBack:
				b.deps.metrics.handoffs.Inc()
			}
		}
		b.t.written(w, errs, time.Now(), settleLimit, b.lost)
		last = now
	}
}

// lost is told of a slot whose write was refused or could not be made. A
// claim fenced or taken by someone else needs nothing more: its sends stop
// at once. One that still holds (a refusal no retry can fix, or a last
// write that kept failing) is released, on a goroutine of the run's, so
// the slot resumes from its last checkpoint, here or elsewhere, rather
// than stay claimed with no one working on it.
func (b *broadcastRun) lost(sr *slotRun, err error) {
	if errors.Is(err, coordinator.ErrNotOwner) || sr.cl.Context().Err() != nil {
		b.log.Warn("checkpoint refused: slot lost", "slot", sr.index, "err", err)
		return
	}
	b.log.Error("slot's progress not written; releasing the claim so the slot resumes from its last checkpoint",
		"slot", sr.index, "err", err)
	b.loops.Add(1)
	go func() {
		defer b.loops.Done()
		if rerr := retryWrite(sr.cl, sr.cl.Release, b.deps.metrics); rerr != nil && !errors.Is(rerr, coordinator.ErrNotOwner) {
			b.log.Error("release claim", "slot", sr.index, "err", rerr)
			return
		}
		b.deps.metrics.releases.Inc()
	}()
}
