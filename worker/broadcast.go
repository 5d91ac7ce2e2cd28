package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/templates"
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
	// slots bound the sends in flight over every broadcast on the worker.
	slots *sendSlots
	// rateShare is the fraction of a broadcast's fleet-wide rate this
	// worker sends at: the part of the broadcast's open work it holds.
	rateShare func(id string) float64
	// broadcastState is the coordinator's view of a broadcast's state and
	// a channel closed when that state changes.
	broadcastState func(id string) (coordinator.State, <-chan struct{})
	// noteEndpoint reports since when this worker's sends of a broadcast
	// wait on its failing endpoint (zero: they do not).
	noteEndpoint func(id string, since time.Time)
	log          *slog.Logger
}

// broadcastRun is one broadcast on this worker: its compiled spec, a fixed
// pool of max_in_flight senders shared by every unit of the broadcast the
// worker holds, this worker's share of the fleet-wide rate limit, and a
// watcher that keeps the broadcast's state and that share fresh.
//
// newBroadcastRun starts the pool and the watcher; stop ends and waits for
// both. Nothing else starts or stops them.
type broadcastRun struct {
	id   string
	spec spec.Spec
	set  *templates.Set
	send *delivery.Sender
	deps broadcastDeps
	log  *slog.Logger

	jobs    chan job
	limiter *rate.Limiter // nil when the rate is unlimited
	slots   *slotShare    // this broadcast's use of the worker's send slots
	pool    sync.WaitGroup

	state     atomic.Value // coordinator.State
	changed   atomic.Value // <-chan struct{}: closed when the state changes
	expiresAt time.Time
	units     int // units running; owned by the worker's claim loop

	cancelWatch context.CancelFunc
	watching    sync.WaitGroup
}

// newBroadcastRun starts the broadcast's send pool (max_in_flight
// goroutines reading jobs) and its state watcher. The caller owns the run
// and must call stop once no unit feeds it any more.
func newBroadcastRun(id string, sp spec.Spec, set *templates.Set, send *delivery.Sender, deps broadcastDeps) *broadcastRun {
	b := &broadcastRun{
		id:    id,
		spec:  sp,
		set:   set,
		send:  send,
		deps:  deps,
		log:   deps.log.With("broadcast", id),
		jobs:  make(chan job, sp.Endpoint.MaxInFlight),
		slots: deps.slots.join(),
	}
	if sp.ExpiresAt != nil {
		b.expiresAt = *sp.ExpiresAt
	}
	if sp.Endpoint.RatePerSec > 0 {
		b.limiter = rate.NewLimiter(rate.Limit(sp.Endpoint.RatePerSec), 1)
		b.shareRate(deps.rateShare(id))
	}
	b.refreshState()
	for range sp.Endpoint.MaxInFlight {
		b.pool.Add(1)
		go func() {
			defer b.pool.Done()
			b.sendLoop()
		}()
	}
	// The watcher lives exactly as long as the run: stop cancels it, not
	// the context of whoever happened to start the broadcast's first unit.
	ctx, cancel := context.WithCancel(context.Background())
	b.cancelWatch = cancel
	b.watching.Add(1)
	go func() {
		defer b.watching.Done()
		b.watchState(ctx)
	}()
	return b
}

// stop ends the run's goroutines and returns once they have all ended.
// The caller must make sure no unit sends jobs any more (every unit of the
// broadcast has returned). The pool then empties the queue, sending
// nothing (a job still queued belongs to a unit that gave up on it), and
// ends; the broadcast gives up its share of the worker's send slots and
// closes its idle connections; the watcher is cancelled and waited for.
func (b *broadcastRun) stop() {
	close(b.jobs)
	b.pool.Wait()
	b.slots.leave()
	b.send.Close()
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

// waitRunnable returns at once while the broadcast runs, waits while it is
// paused or pending, and fails when it is over. A hand-back request ends
// the wait: a paused unit can still be handed back exactly.
func (b *broadcastRun) waitRunnable(ctx context.Context, handback <-chan struct{}) error {
	for {
		switch st := b.state.Load().(coordinator.State); st {
		case coordinator.StateRunning:
			return nil
		case coordinator.StatePaused, coordinator.StatePending:
		default:
			return fmt.Errorf("worker: broadcast %s is %s", b.id, st)
		}
		select {
		case <-b.changed.Load().(<-chan struct{}):
			b.refreshState()
		case <-handback:
			return errHandBack
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// watchState keeps the cached state and this worker's rate share fresh
// until ctx ends. The share is read four times a second: it moves when
// units finish, and a worker left with the tail of a broadcast should take
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
			b.deps.noteEndpoint(b.id, b.send.WaitingSince())
		case <-ctx.Done():
			b.deps.noteEndpoint(b.id, time.Time{})
			return
		}
	}
}

func (b *broadcastRun) expired() bool {
	return !b.expiresAt.IsZero() && !time.Now().Before(b.expiresAt)
}

// sendLoop is one member of the pool: render, encode, rate-limit, send.
func (b *broadcastRun) sendLoop() {
	var (
		msg templates.Message
		key []byte
	)
	for j := range b.jobs {
		out, letter := b.deliver(j, &msg, &key)
		switch {
		case letter != nil:
			b.deadLetter(j, letter)
		case out != pending:
			b.deps.metrics.outcome(out)
			j.u.prog.finish(j.idx, out)
		}
	}
}

// deliver renders and sends one record. A record that failed for good
// comes back with its dead letter, to be finished once the letter is
// written.
func (b *broadcastRun) deliver(j job, msg *templates.Message, key *[]byte) (outcome, *delivery.DeadLetter) {
	ctx := j.u.sendCtx
	if ctx.Err() != nil {
		return pending, nil // the unit is gone; its next owner sends this record
	}
	if b.expired() {
		return expired, nil
	}
	*key = templates.AppendKey((*key)[:0], b.id, j.id)
	k := string(*key)
	if err := b.set.Render(j.data, j.locale, msg); err != nil {
		switch {
		case errors.Is(err, templates.ErrFieldTooLarge):
			b.deps.admit.limit(LimitRenderedField)
		case errors.Is(err, templates.ErrWorkLimit):
			b.deps.admit.limit(LimitTemplateWork)
		}
		return failed, &delivery.DeadLetter{SubscriberID: j.id, Key: k, Reason: err.Error()}
	}
	// A fresh body per message: net/http may still be writing a body after
	// the response came back, so a sent body is never reused.
	body := templates.AppendBody(make([]byte, 0, 256), templates.Delivery{
		BroadcastID: b.id, SubscriberID: j.id, Key: k, Locale: msg.Locale, Message: msg,
	})
	if b.limiter != nil {
		if err := b.limiter.Wait(ctx); err != nil {
			return pending, nil
		}
	}
	// A slot of the worker's is held for the whole Send, retries included:
	// what is bounded is the deliveries under way, and the connections
	// they keep.
	if err := b.slots.acquire(ctx); err != nil {
		return pending, nil
	}
	res := b.send.Send(ctx, b.spec.Endpoint.URL, k, body)
	b.slots.release()
	b.deps.metrics.sent(res)
	switch res.Outcome {
	case delivery.Delivered:
		return delivered, nil
	case delivery.Failed:
		return failed, &delivery.DeadLetter{SubscriberID: j.id, Key: k, Status: res.Status, Reason: res.Reason, Attempts: res.Attempts}
	default:
		// Aborted: the claim ended, or the lease deadline fenced the next
		// attempt. Not finished, so the cursor stays before it and whoever
		// owns the unit next sends it, with the same key. Or the broadcast
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
// as failed, only once Kafka has the letter: a checkpoint never passes a
// failure that is not recorded. While Kafka is away the queue fills, the
// records wait unfinished, the unit's window fills and its reading stops:
// the unit stops advancing, nothing is lost or skipped. A letter that can
// never be written (too large to encode) is counted failed and logged. If
// the unit ends first (claim lost, hand-back), the record stays unfinished
// and its next owner sends it again under the same key.
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
			b.log.Warn("dead letter not written; the record is left to its next owner", "subscriber", d.SubscriberID, "err", err)
			return
		}
		b.deps.metrics.outcome(failed)
		j.u.prog.finish(j.idx, failed)
	}
	if err := b.deps.dead.Enqueue(j.u.sendCtx, *d, done); err != nil {
		// The unit ended while the queue was full: not finished.
		b.log.Debug("dead letter not queued", "subscriber", d.SubscriberID, "err", err)
	}
}
