package worker

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/herald-dev/herald/worker/delivery"
)

// broadcastDeps are what a broadcast run needs of the worker around it,
// shared by every broadcast the worker runs.
type broadcastDeps struct {
	metrics *metrics
	// dead takes failed deliveries to the dead-letter topic; a failed
	// record finishes only once its letter is written.
	dead  *delivery.DeadLetterQueue
	admit *admission
	// slots bound the sends in flight over every broadcast on the worker;
	// senders deliver them, one goroutine per slot at most.
	slots   *sendSlots
	senders *senders
	// rateShare is the fraction of a broadcast's fleet-wide rate this
	// worker sends at: the part of the broadcast's open slots it holds.
	rateShare func(id string) float64
	// broadcastState is the coordinator's view of a broadcast's state and
	// a channel closed when that state changes.
	broadcastState func(id string) (coordinator.State, <-chan struct{})
	// noteEndpoint reports since when this worker's sends of a broadcast
	// wait on its failing endpoint (zero: they do not).
	noteEndpoint func(id string, since time.Time)
	// empty tells the worker's claim loop that a run holds no slot any
	// more; it must not block.
	empty func(*broadcastRun)
	log   *slog.Logger
}

// runConfig is what a broadcast run takes from the worker's Config.
type runConfig struct {
	// window is how many owned records of the broadcast may be read but
	// not yet finished on this worker.
	window int
	// checkpointEvery, checkpointInterval and checkpointMinInterval are
	// the checkpoint policy (see checkpointLoop).
	checkpointEvery       int
	checkpointInterval    time.Duration
	checkpointMinInterval time.Duration
	// handoffDrain is how long a hand-back waits for sends in flight.
	handoffDrain time.Duration
	// writeTimeout bounds one checkpoint write.
	writeTimeout   time.Duration
	audienceLimits audience.Limits
}

func (c Config) runConfig() runConfig {
	return runConfig{
		window:                c.Window,
		checkpointEvery:       c.CheckpointEvery,
		checkpointInterval:    c.CheckpointInterval,
		checkpointMinInterval: c.CheckpointMinInterval,
		handoffDrain:          c.HandoffDrain,
		writeTimeout:          5 * time.Second,
		audienceLimits:        c.AudienceLimits,
	}
}

// broadcastRun is one broadcast on this worker: its compiled spec, the
// slots it holds (tracker), one reader over the audience for all of them,
// one checkpointer that writes their progress together, its use of the
// worker's send slots (at most max_in_flight; the worker's senders deliver
// its records), this worker's share of the fleet-wide rate limit, and a
// watcher that keeps the broadcast's state and that share fresh.
//
// newBroadcastRun starts the reader, the checkpointer, the slot watcher
// (a slot asked back, or its claim ended) and the state watcher; add gives
// the slot watcher one more slot; stop ends and waits for all of them. Nothing else starts
// or stops them.
type broadcastRun struct {
	id   string
	spec spec.Spec
	set  *templates.Set
	send *delivery.Sender
	push pusher // nil for a webhook; sends the records of a push endpoint (push.go)
	// ranges is the audience read by position range (postgres, prepared);
	// nil for one read as a stream (file, synthetic). Only the reader
	// uses it.
	ranges *rangeAudience
	cfg    runConfig
	deps   broadcastDeps
	log    *slog.Logger
	t      *tracker

	limiter *rate.Limiter // nil when the rate is unlimited
	sends   *slotShare    // this broadcast's use of the worker's send slots
	// sending counts the records (or batches) handed to the worker's
	// senders and not finished with yet.
	sending sync.WaitGroup
	// batchSize is the endpoint's batch_size; above 1 the reader gathers
	// records into batch, a part-filled batch begun at batchSince (see
	// queue). Only the reader touches batch and batchSince.
	batchSize  int
	batch      []job
	batchSince time.Time
	// spare holds batches the senders are done with, for the reader to
	// gather the next ones in.
	spare chan []job
	// runCtx ends when the run stops: batches wait for a send slot, and
	// are sent, under it.
	runCtx    context.Context
	cancelRun context.CancelFunc

	state     atomic.Value // coordinator.State
	changed   atomic.Value // <-chan struct{}: closed when the state changes
	expiresAt time.Time

	stopping chan struct{} // closed by stop
	// watched are the slots watchSlots watches; add appends to it and
	// signals watchAdded.
	watchMu     sync.Mutex
	watched     []*slotRun
	watchAdded  chan struct{}
	loops       sync.WaitGroup
	cancelWatch context.CancelFunc
	watching    sync.WaitGroup
}

// newBroadcastRun starts the broadcast's reader, its checkpointer and its
// state watcher, for a broadcast of slots slots. The caller owns the run and
// must call stop once it holds no slot (deps.empty says when).
func newBroadcastRun(id string, sp spec.Spec, set *templates.Set, send *delivery.Sender, p pusher, ra *rangeAudience, slots int, cfg runConfig, deps broadcastDeps) *broadcastRun {
	b := &broadcastRun{
		id:         id,
		spec:       sp,
		set:        set,
		send:       send,
		push:       p,
		ranges:     ra,
		cfg:        cfg,
		deps:       deps,
		log:        deps.log.With("broadcast", id),
		sends:      deps.slots.join(sp.Endpoint.MaxInFlight),
		stopping:   make(chan struct{}),
		watchAdded: make(chan struct{}, 1),
		batchSize:  sp.Endpoint.Batch(),
		spare:      make(chan []job, spareBatches),
	}
	b.runCtx, b.cancelRun = context.WithCancel(context.Background())
	b.t = newTracker(slots, cfg.window, uint64(cfg.checkpointEvery), func(empty bool) {
		deps.metrics.unitsHeld.Dec()
		if empty {
			deps.empty(b)
		}
	})
	b.t.byOffset = ra != nil
	if sp.ExpiresAt != nil {
		b.expiresAt = *sp.ExpiresAt
	}
	if sp.Endpoint.RatePerSec > 0 {
		b.limiter = rate.NewLimiter(rate.Limit(sp.Endpoint.RatePerSec), 1)
		b.shareRate(deps.rateShare(id))
	}
	b.refreshState()
	b.loops.Add(3)
	go func() {
		defer b.loops.Done()
		b.readLoop()
	}()
	go func() {
		defer b.loops.Done()
		b.watchSlots()
	}()
	go func() {
		defer b.loops.Done()
		b.checkpointLoop()
	}()
	// The watcher lives exactly as long as the run: stop cancels it, not
	// the context of whoever happened to start the broadcast's first slot.
	ctx, cancel := context.WithCancel(context.Background())
	b.cancelWatch = cancel
	b.watching.Add(1)
	go func() {
		defer b.watching.Done()
		b.watchState(ctx)
	}()
	return b
}

// add starts working a claimed slot, and a watcher for it: when the
// coordinator asks for the slot back, it stops sending the slot's records
// and lets the checkpointer hand it back once drained; when the claim
// ends, it forgets the slot.
func (b *broadcastRun) add(cl *coordinator.Claim) {
	b.deps.metrics.unitsHeld.Inc()
	sr := b.t.add(cl)
	b.watchMu.Lock()
	b.watched = append(b.watched, sr)
	b.watchMu.Unlock()
	signal(b.watchAdded)
}

// watchSlots is the one goroutine that watches every slot of the run:
// when the coordinator asks for a slot back, it stops sending the slot's
// records and lets the checkpointer hand it back once drained; when a
// claim ends, it forgets the slot. One goroutine for all of them, rather
// than one a slot, keeps a worker running many broadcasts at a few
// goroutines per broadcast.
func (b *broadcastRun) watchSlots() {
	askedBack := make(map[*slotRun]bool)
	var cases []reflect.SelectCase
	recv := func(ch <-chan struct{}) reflect.SelectCase {
		return reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)}
	}
	type event struct {
		sr   *slotRun
		what int // 0 asked back, 1 claim ended, 2 removed
	}
	var events []event
	for {
		b.watchMu.Lock()
		// Slots that left the tracker need no watching any more.
		live := b.watched[:0]
		for _, sr := range b.watched {
			select {
			case <-sr.removed:
				delete(askedBack, sr)
			default:
				live = append(live, sr)
			}
		}
		clear(b.watched[len(live):])
		b.watched = live
		cases = append(cases[:0], recv(b.stopping), recv(b.watchAdded))
		events = events[:0]
		for _, sr := range b.watched {
			if !askedBack[sr] {
				cases = append(cases, recv(sr.cl.HandoffRequested()))
				events = append(events, event{sr, 0})
			}
			cases = append(cases, recv(sr.cl.Context().Done()), recv(sr.removed))
			events = append(events, event{sr, 1}, event{sr, 2})
		}
		b.watchMu.Unlock()
		i, _, _ := reflect.Select(cases)
		switch {
		case i == 0:
			return
		case i == 1:
			continue // a slot was added
		}
		switch ev := events[i-2]; ev.what {
		case 0:
			askedBack[ev.sr] = true
			b.t.handBack(ev.sr, b.cfg.handoffDrain)
		case 1:
			b.t.drop(ev.sr)
		}
	}
}

// stop ends the run's goroutines and returns once they have all ended.
// The caller must make sure the run holds no slot (every claim has
// ended). The reader and the checkpointer stop first; then stop waits
// for the records still with the worker's senders (their slots are gone,
// so those send nothing more); the broadcast gives up its share of the
// worker's send slots; the watcher is cancelled and waited for.
func (b *broadcastRun) stop() {
	close(b.stopping)
	b.cancelRun()
	b.loops.Wait()
	b.sending.Wait()
	b.sends.leave()
	b.send.Close()
	if b.push != nil {
		b.push.Close()
	}
	b.cancelWatch()
	b.watching.Wait()
}

// shareRate gives this worker share (0 to 1) of the fleet-wide rate.
//
// The burst is a tenth of a second of the share, so that the fleet's
// bursts together stay a tenth of a second of its rate, but at least one
// send (a limiter with none sends nothing) and at most the broadcast's
// max_in_flight: more tokens than senders would only let a spike through
// after a pause, each sender taking one token after another.
func (b *broadcastRun) shareRate(share float64) {
	if b.limiter == nil {
		return
	}
	share = min(max(share, 0), 1)
	r := b.spec.Endpoint.RatePerSec * share
	// A small share is the least exact; one so small that sends would be
	// minutes apart is raised to one every ten seconds.
	r = max(r, min(0.1, b.spec.Endpoint.RatePerSec))
	b.limiter.SetLimit(rate.Limit(r))
	b.limiter.SetBurst(max(min(int(r/10), b.spec.Endpoint.MaxInFlight), 1))
}

// refreshState reads the coordinator's view of the broadcast's state.
func (b *broadcastRun) refreshState() {
	st, ch := b.deps.broadcastState(b.id)
	b.state.Store(st)
	b.changed.Store(ch)
}

// watchState keeps the cached state and this worker's rate share fresh
// until ctx ends. The share is read four times a second: it moves when
// slots finish, and a worker left with the tail of a broadcast should take
// up the rate soon.
func (b *broadcastRun) watchState(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.changed.Load().(<-chan struct{}):
			b.refreshState()
		case <-t.C:
			b.shareRate(b.deps.rateShare(b.id))
			// Whether the endpoint's breaker holds this worker's sends,
			// for herald status (the coordinator writes only changes).
			b.deps.noteEndpoint(b.id, b.waitingSince())
		case <-ctx.Done():
			b.deps.noteEndpoint(b.id, time.Time{})
			return
		}
	}
}

func (b *broadcastRun) expired() bool {
	return !b.expiresAt.IsZero() && !time.Now().Before(b.expiresAt)
}

// start hands a record to the worker's senders once the broadcast's rate
// and a send slot of the worker's allow, waiting for both on the reader's
// goroutine: a broadcast held back by either reads no further, and keeps
// no goroutine waiting. It reports false, handing nothing over, if the
// record's slot ended first.
func (b *broadcastRun) start(j job) bool {
	ctx := j.slot.sendCtx
	if b.limiter != nil {
		if err := b.limiter.Wait(ctx); err != nil {
			return false
		}
	}
	// The send slot is held until the record is finished, retries
	// included: what is bounded is the deliveries under way, the
	// goroutines that carry them, and the connections they keep.
	if err := b.sends.acquire(ctx); err != nil {
		return false
	}
	b.sending.Add(1)
	b.deps.senders.run(j)
	return true
}

// sendJob is what a sender does with a record of the broadcast (or a
// batch of them): render, encode, send, and finish it, or queue its dead
// letter. It gives the record's send slot back at the end.
func (b *broadcastRun) sendJob(j job, sc *scratch) {
	if j.batch != nil {
		b.sendBatch(j.batch, sc)
		return
	}
	defer b.sending.Done()
	defer b.sends.release()
	out, letter := b.deliver(j, &sc.msg, &sc.key)
	b.finishSent(j, out, letter)
}

// finishSent finishes a record that went to the sender with its outcome,
// or queues its dead letter.
func (b *broadcastRun) finishSent(j job, out outcome, letter *delivery.DeadLetter) {
	switch {
	case letter != nil:
		b.deadLetter(j, letter)
	case out != pending:
		b.deps.metrics.outcome(out)
		b.t.finish(j.idx, out)
	default:
		b.t.finish(j.idx, pending)
	}
}

// deliver renders and sends one record. A record that failed for good
// comes back with its dead letter, to be finished once the letter is
// written.
func (b *broadcastRun) deliver(j job, msg *templates.Message, key *[]byte) (outcome, *delivery.DeadLetter) {
	ctx := j.slot.sendCtx
	if ctx.Err() != nil {
		return pending, nil // the slot is gone; its next holder sends this record
	}
	if b.expired() {
		return expired, nil
	}
	k, letter := b.render(j, msg, key)
	if letter != nil {
		return failed, letter
	}
	if b.push != nil {
		return b.deliverPush(ctx, j, msg, k)
	}
	// A fresh body per message: net/http may still be writing a body after
	// the response came back, so a sent body is never reused.
	body := templates.AppendBody(make([]byte, 0, 256), templates.Delivery{
		BroadcastID: b.id, SubscriberID: j.id, Key: k, Locale: msg.Locale, Message: msg,
	})
	return b.settle(ctx, j, k, b.send.Send(ctx, b.spec.Endpoint.URL, k, body))
}

// render makes a record's idempotency key and message; a record that
// cannot be rendered comes back with its dead letter.
func (b *broadcastRun) render(j job, msg *templates.Message, key *[]byte) (string, *delivery.DeadLetter) {
	*key = templates.AppendKey((*key)[:0], b.id, j.id)
	k := string(*key)
	if err := b.set.Render(j.data, j.locale, msg); err != nil {
		switch {
		case errors.Is(err, templates.ErrFieldTooLarge):
			b.deps.admit.limit(LimitRenderedField)
		case errors.Is(err, templates.ErrWorkLimit):
			b.deps.admit.limit(LimitTemplateWork)
		}
		return k, &delivery.DeadLetter{SubscriberID: j.id, Key: k, Reason: err.Error()}
	}
	return k, nil
}

// settle turns the sender's Result for a record (keyed k, sent under
// ctx) into its outcome, and its dead letter if it failed.
func (b *broadcastRun) settle(ctx context.Context, j job, k string, res delivery.Result) (outcome, *delivery.DeadLetter) {
	b.deps.metrics.sent(res)
	switch res.Outcome {
	case delivery.Delivered:
		return delivered, nil
	case delivery.Failed:
		return failed, &delivery.DeadLetter{SubscriberID: j.id, Key: k, Status: res.Status, Reason: res.Reason, Attempts: res.Attempts}
	default:
		// Aborted: the claim ended, or the lease deadline fenced the next
		// attempt. Not finished, so it stays pending in the slot's progress
		// and whoever holds the slot next sends it, with the same key. Or the broadcast
		// expired before the next attempt (the sender's fence checks
		// expires_at too): then nothing more may be sent, and the record
		// is counted expired.
		if ctx.Err() == nil && b.expired() {
			return expired, nil
		}
		return pending, nil
	}
}

// deadLetter queues the letter of a failed record and finishes the record,
// as failed, only once Kafka has the letter: a checkpoint never counts a
// failure that is not recorded. While Kafka is away the queue fills, the
// records wait unfinished (pending in their slots' checkpoints), the
// broadcast's window fills and its reading stops: nothing is lost or
// skipped. A letter that can never be written (too large to encode) is
// counted failed and logged. If the slot ends first (claim lost,
// hand-back), the record stays pending and its next holder sends it again
// under the same key.
func (b *broadcastRun) deadLetter(j job, d *delivery.DeadLetter) {
	d.BroadcastID = b.id
	d.At = time.Now().UTC()
	done := func(err error) {
		switch {
		case err == nil:
		case errors.Is(err, delivery.ErrDeadLetterInvalid):
			b.deps.metrics.deadLetterErrors.Inc()
			b.log.Warn("dead letter not recorded; counted failed", "subscriber", d.SubscriberID, "reason", d.Reason, "err", err)
		default:
			b.deps.metrics.deadLetterErrors.Inc()
			b.log.Warn("dead letter not written; the record is left to its next holder", "subscriber", d.SubscriberID, "err", err)
			b.t.finish(j.idx, pending)
			return
		}
		out := failed
		if d.InvalidToken != nil {
			out = tokenGone
		}
		b.deps.metrics.outcome(out)
		b.t.finish(j.idx, out)
	}
	if err := b.deps.dead.Enqueue(j.slot.sendCtx, *d, done); err != nil {
		// The slot ended while the queue was full: not finished.
		b.log.Debug("dead letter not queued", "subscriber", d.SubscriberID, "err", err)
		b.t.finish(j.idx, pending)
	}
}
