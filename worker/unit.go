package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/audience"
)

// job is one owned, reachable record on its way to the endpoint.
type job struct {
	u      *unitRun
	idx    int
	id     string
	locale string
	data   templates.Record
}

// unitConfig is what a unit runner takes from the worker's Config.
type unitConfig struct {
	// window is how many owned records may be read but not yet finished.
	window int
	// checkpointEvery, checkpointInterval and checkpointMinInterval are
	// the checkpoint policy (see checkpointLoop).
	checkpointEvery       int
	checkpointInterval    time.Duration
	checkpointMinInterval time.Duration
	// handoffDrain is how long a hand-back waits for sends in flight.
	handoffDrain   time.Duration
	audienceLimits audience.Limits
}

func (c Config) unitConfig() unitConfig {
	return unitConfig{
		window:                c.Window,
		checkpointEvery:       c.CheckpointEvery,
		checkpointInterval:    c.CheckpointInterval,
		checkpointMinInterval: c.CheckpointMinInterval,
		handoffDrain:          c.HandoffDrain,
		audienceLimits:        c.AudienceLimits,
	}
}

// unitRun streams one claimed unit and keeps its progress; its broadcast
// run sends what it dispatches. The claim loop runs it on a goroutine of
// its own and waits for it; run owns the unit's checkpoint loop.
type unitRun struct {
	b       *broadcastRun
	cl      *coordinator.Claim
	cfg     unitConfig
	metrics *metrics
	prog    *progress
	log     *slog.Logger
	// sendCtx ends the unit's sends: when the claim is lost (the
	// coordinator ends the claim's context) or when a hand-back gives up
	// waiting for stragglers.
	sendCtx    context.Context
	cancelSend context.CancelFunc
}

func newUnitRun(b *broadcastRun, cl *coordinator.Claim, cfg unitConfig, m *metrics) *unitRun {
	return &unitRun{
		b:       b,
		cl:      cl,
		cfg:     cfg,
		metrics: m,
		prog:    newProgress(cl.Progress(), cfg.window, uint64(cfg.checkpointEvery)),
		log:     b.log.With("unit", cl.Unit().ID),
	}
}

// errHandBack ends the reading loop when the coordinator wants the unit back.
var errHandBack = errors.New("worker: unit handed back")

// run streams the unit to its end, or until it is handed back or lost. It
// returns after every record it dispatched has finished or been abandoned,
// so the broadcast's pool may close when the last unit returns.
func (u *unitRun) run() {
	ctx := u.cl.Context()
	u.sendCtx, u.cancelSend = context.WithCancel(ctx)
	defer u.cancelSend()

	var wg sync.WaitGroup
	stopCheckpoints := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		u.checkpointLoop(ctx, stopCheckpoints)
	}()

	err := u.stream()
	close(stopCheckpoints)
	wg.Wait()

	final, _ := u.prog.snapshot()
	// The last write is retried while etcd fails to answer, and the claim
	// released if it cannot be written (settle): a claim must not outlive
	// its runner. If the claim is over (lost), the write fails its
	// ownership compare, which is the point.
	switch {
	case err == nil:
		settle(u.cl, "finish unit", func(ctx context.Context) error { return u.cl.Finish(ctx, final) }, u.metrics, u.log)
	case errors.Is(err, errHandBack):
		if settle(u.cl, "hand back unit", func(ctx context.Context) error { return u.cl.Handoff(ctx, final) }, u.metrics, u.log) {
			u.metrics.handoffs.Inc()
		}
	default:
		// The claim ended (lease deadline, lost claim, cancelled broadcast):
		// whoever owns the work now resumes from the last checkpoint.
		u.log.Info("unit stopped", "reason", err, "cursor", final.Cursor.Seq)
	}
}

// stream reads the unit to its end (nil), until it is handed back
// (errHandBack), or until the claim ends. It returns once nothing it
// dispatched is in flight, so the progress is final. A stream that fails
// (a file gone or unreadable on this machine) is opened again, with
// backoff, from where the finished records end: the work is this worker's
// until it hands it back, and skipping it would lose subscribers.
func (u *unitRun) stream() error {
	from := u.cl.Unit().Cursor
	for attempt := 0; ; attempt++ {
		err := u.read(u.sendCtx, from)
		// Wait for what is in flight: the position is then exact, for the
		// end, for a hand-back, and for opening the stream again.
		u.drain(u.sendCtx, err)
		if !errors.Is(err, errStream) {
			return err
		}
		u.metrics.streamErrors.Inc()
		from = u.prog.resumeAt()
		u.log.Error("audience stream failed; trying again", "err", err, "cursor", from.Seq, "attempt", attempt+1)
		t := time.NewTimer(backoff(attempt + 4)) // 1.6 s, doubling, at most 5 s
		select {
		case <-t.C:
		case <-u.cl.HandoffRequested():
			t.Stop()
			return errHandBack
		case <-u.sendCtx.Done():
			t.Stop()
			return u.sendCtx.Err()
		}
	}
}

// errStream marks a failure to open or read the audience.
var errStream = errors.New("worker: audience stream")

// read walks the unit's stream from its cursor. Records outside the unit's
// arcs cost one hash; owned ones are parsed, filtered and dispatched.
func (u *unitRun) read(ctx context.Context, from sharding.Cursor) error {
	unit := u.cl.Unit()
	s, err := audience.Open(u.b.spec.Audience, from, u.cfg.audienceLimits)
	if err != nil {
		return fmt.Errorf("%w: open for %s: %w", errStream, u.b.id, err)
	}
	defer s.Close()
	handback := u.cl.HandoffRequested()
	scanned := u.metrics.scanned
	var batch int
	for {
		if err := u.b.waitRunnable(ctx, handback); err != nil {
			return err
		}
		select {
		case <-handback:
			return errHandBack
		default:
		}
		if !s.Next() {
			if err := s.Err(); err != nil {
				return fmt.Errorf("%w: read for %s: %w", errStream, u.b.id, err)
			}
			return nil
		}
		rec := s.Record()
		if batch++; batch == 256 {
			scanned.Add(float64(batch))
			batch = 0
		}
		if !unit.Arcs.Contains(rec.Position()) {
			u.prog.skip(s.Cursor())
			continue
		}
		if err := u.own(ctx, rec, s.Cursor()); err != nil {
			return err
		}
	}
}

// own handles a record of the unit: invalid, unreachable and expired ones
// finish at once; the rest go to the send pool.
func (u *unitRun) own(ctx context.Context, rec *audience.Record, next sharding.Cursor) error {
	at := sharding.Cursor{Seq: rec.Seq, Offset: rec.Offset}
	if rec.Invalid != "" {
		return u.settle(ctx, at, next, invalid, rec.Line, rec.Invalid)
	}
	data := make(templates.Record, 8)
	if err := rec.Decode(data); err != nil {
		// Decode records the bare reason; the error repeats the line number.
		return u.settle(ctx, at, next, invalid, rec.Line, rec.Invalid)
	}
	if u.b.spec.OnlyReachable && !audience.Reachable(data) {
		return u.settle(ctx, at, next, unreachable, rec.Line, "")
	}
	if u.b.expired() {
		return u.settle(ctx, at, next, expired, rec.Line, "")
	}
	idx, err := u.reserve(ctx, at, next, pending, rec.Line, "")
	if err != nil {
		return err
	}
	j := job{u: u, idx: idx, id: string(rec.ID), locale: audience.Locale(data), data: data}
	select {
	case u.b.jobs <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (u *unitRun) settle(ctx context.Context, at, next sharding.Cursor, out outcome, line int64, why string) error {
	_, err := u.reserve(ctx, at, next, out, line, why)
	if err == nil {
		u.metrics.outcome(out)
	}
	return err
}

// reserve takes a progress slot, waiting while the window is full: one slow
// record holds the cursor, and the window bounds how far reading may run
// ahead of it.
func (u *unitRun) reserve(ctx context.Context, at, next sharding.Cursor, out outcome, line int64, why string) (int, error) {
	for {
		if idx, ok := u.prog.add(at, next, out, line, why); ok {
			return idx, nil
		}
		select {
		case <-u.prog.room:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// drain waits for the records in flight. A hand-back waits at most
// HandoffDrain, then abandons the stragglers: their slots stay unfinished,
// so the cursor stops before them and the next owner sends them again.
func (u *unitRun) drain(ctx context.Context, readErr error) {
	var limit <-chan time.Time
	if errors.Is(readErr, errHandBack) {
		t := time.NewTimer(u.cfg.handoffDrain)
		defer t.Stop()
		limit = t.C
	}
	for u.prog.inFlight() > 0 {
		select {
		case <-u.prog.drained:
		case <-u.prog.room:
		case <-limit:
			u.cancelSend()
			return
		case <-ctx.Done():
			return
		}
	}
}

// checkpointLoop writes the unit's progress as soon as CheckpointEvery
// records have finished since the last write, or CheckpointInterval has
// passed, but never more often than CheckpointMinInterval: etcd writes per
// unit stay bounded whatever the message rate, and the re-send window after
// a crash stays at CheckpointEvery records (plus those in flight) up to
// CheckpointEvery per CheckpointMinInterval records a second per unit.
func (u *unitRun) checkpointLoop(ctx context.Context, stop <-chan struct{}) {
	cfg := u.cfg
	t := time.NewTicker(cfg.checkpointMinInterval)
	defer t.Stop()
	last := time.Now()
	lastCursor := u.cl.Unit().Cursor
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		case <-u.prog.due:
		}
		// Too soon after the last write: the ticker, one minimum interval
		// long, comes back for it.
		if time.Since(last) < cfg.checkpointMinInterval {
			continue
		}
		if u.prog.finishedSince() < uint64(cfg.checkpointEvery) && time.Since(last) < cfg.checkpointInterval {
			continue
		}
		p, _ := u.prog.snapshot()
		if p.Cursor == lastCursor {
			continue
		}
		err := u.cl.Checkpoint(ctx, p)
		u.metrics.checkpoints.Inc()
		if err != nil {
			if errors.Is(err, coordinator.ErrNotOwner) {
				// Fenced: someone else owns this work now. Stop sending at once.
				u.log.Warn("checkpoint refused: claim lost", "err", err)
				u.cancelSend()
				return
			}
			u.log.Warn("checkpoint", "err", err)
			continue
		}
		last, lastCursor = time.Now(), p.Cursor
	}
}
