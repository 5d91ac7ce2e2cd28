package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrDeadLetterQueueClosed is returned by Enqueue once Close has been
// called, and passed to the done of every letter Close could not write.
var ErrDeadLetterQueueClosed = errors.New("delivery: dead-letter queue closed")

// DeadLetterBatchWriter writes dead letters in batches. WriteBatch returns
// nil once Kafka has acknowledged every letter, a DeadLetterErrors when it
// can say which were written, or one error for all. It must not keep ds.
// *DeadLetterWriter is one.
type DeadLetterBatchWriter interface {
	WriteBatch(ctx context.Context, ds []DeadLetter) error
}

// Defaults applied to zero DeadLetterQueueConfig fields.
const (
	DefaultDeadLetterCapacity     = 10_000
	DefaultDeadLetterMaxBatch     = 500
	DefaultDeadLetterWriteTimeout = 10 * time.Second
	DefaultDeadLetterRetryMin     = 100 * time.Millisecond
	DefaultDeadLetterRetryMax     = 5 * time.Second
	DefaultDeadLetterCloseTimeout = 10 * time.Second
)

// DeadLetterQueueConfig tunes a DeadLetterQueue. The zero value is usable.
type DeadLetterQueueConfig struct {
	// Capacity is how many letters may wait to be written; Enqueue blocks
	// while that many do. Zero means 10,000.
	Capacity int
	// MaxBatch is how many letters one write carries at most. Zero means
	// 500.
	MaxBatch int
	// WriteTimeout bounds one write; a write that ran out is retried.
	// Zero means 10 s.
	WriteTimeout time.Duration
	// RetryMin and RetryMax bound the wait before writing again after a
	// failed write: it doubles from RetryMin up to RetryMax, with jitter.
	// Zero means 100 ms and 5 s.
	RetryMin, RetryMax time.Duration
	// CloseTimeout bounds Close's last attempt to write what is queued.
	// Zero means 10 s.
	CloseTimeout time.Duration
}

func (cfg DeadLetterQueueConfig) withDefaults() DeadLetterQueueConfig {
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultDeadLetterCapacity
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultDeadLetterMaxBatch
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultDeadLetterWriteTimeout
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = DefaultDeadLetterRetryMin
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = DefaultDeadLetterRetryMax
	}
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = DefaultDeadLetterCloseTimeout
	}
	return cfg
}

// Validate reports the first field that is out of range once defaults are
// applied.
func (cfg DeadLetterQueueConfig) Validate() error {
	c := cfg.withDefaults()
	switch {
	case c.Capacity < 0:
		return fmt.Errorf("%w: dead-letter Capacity %d is negative", ErrInvalidConfig, c.Capacity)
	case c.MaxBatch < 0:
		return fmt.Errorf("%w: dead-letter MaxBatch %d is negative", ErrInvalidConfig, c.MaxBatch)
	case c.WriteTimeout < 0 || c.CloseTimeout < 0:
		return fmt.Errorf("%w: dead-letter timeouts %v, %v: negative", ErrInvalidConfig, c.WriteTimeout, c.CloseTimeout)
	case c.RetryMin < 0 || c.RetryMin > c.RetryMax:
		return fmt.Errorf("%w: dead-letter retry %v..%v is not a range", ErrInvalidConfig, c.RetryMin, c.RetryMax)
	}
	return nil
}

// DeadLetterQueue writes dead letters from a bounded queue, so a sender
// that failed a delivery hands its letter over and moves on instead of
// waiting on Kafka. One goroutine, started by NewDeadLetterQueue and
// stopped by Close, writes the queue in batches, each with a deadline, and
// retries a failed write with backoff until it succeeds: Kafka down for
// minutes loses no letter. While it is down the queue fills, and once full
// Enqueue blocks: the caller's work stops advancing, with nothing lost and
// nothing skipped, until Kafka is back.
//
// A letter is written at least once: a write that timed out after Kafka
// took it is written again.
type DeadLetterQueue struct {
	w     DeadLetterBatchWriter
	cfg   DeadLetterQueueConfig
	log   *slog.Logger
	randN func(int64) int64

	in      chan queued
	closing chan struct{} // closed by Close
	done    chan struct{} // closed when run has returned
	ctx     context.Context
	cancel  context.CancelFunc // ends writes: Close's deadline has passed

	mu        sync.Mutex
	closed    bool
	enqueuers sync.WaitGroup // Enqueue calls in progress

	pending  atomic.Int64 // letters enqueued whose done has not been called
	closeErr error        // set by run before done is closed

	writeFailures prometheus.Counter // nil without a registerer
	fullWaits     prometheus.Counter
	letters       []DeadLetter // run's buffer for WriteBatch
}

// queued is a letter and whom to tell when it is written.
type queued struct {
	d    DeadLetter
	done func(error)
}

// NewDeadLetterQueue starts a queue in front of w (usually a
// *DeadLetterWriter, which the caller closes after the queue). log may be
// nil (no logs), reg nil (no metrics). The caller must Close it.
func NewDeadLetterQueue(w DeadLetterBatchWriter, cfg DeadLetterQueueConfig, log *slog.Logger, reg prometheus.Registerer) (*DeadLetterQueue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &DeadLetterQueue{
		w: w, cfg: cfg, log: log, randN: rand.Int64N,
		in:      make(chan queued, cfg.Capacity),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	if err := q.register(reg); err != nil {
		cancel()
		return nil, err
	}
	go q.run()
	return q, nil
}

func (q *DeadLetterQueue) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	queuedLetters := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_delivery_deadletters_queued",
		Help: "Dead letters enqueued and not yet written.",
	}, func() float64 { return float64(q.pending.Load()) })
	failures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_delivery_deadletter_write_failures_total",
		Help: "Dead-letter batch writes that failed and were retried.",
	})
	full := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_delivery_deadletter_queue_full_total",
		Help: "Enqueue calls that found the dead-letter queue full and had to wait.",
	})
	collectors := []prometheus.Collector{queuedLetters, failures, full}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range collectors[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("delivery: register dead-letter queue metrics: %w", err)
		}
	}
	q.writeFailures, q.fullWaits = failures, full
	return nil
}

// Enqueue queues d to be written and returns at once if there is room;
// otherwise it waits until there is, or until ctx ends (its error is then
// returned, and the letter is not queued: the caller must treat its
// delivery as unfinished). After Close it returns ErrDeadLetterQueueClosed.
// Once queued, done (which may be nil) is called exactly once, from the
// queue's goroutine: with nil when Kafka has acknowledged the letter, or
// with why it never will be (the letter is invalid, or Close came first).
// done must be quick and must not call Enqueue.
func (q *DeadLetterQueue) Enqueue(ctx context.Context, d DeadLetter, done func(error)) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrDeadLetterQueueClosed
	}
	q.enqueuers.Add(1)
	q.mu.Unlock()
	defer q.enqueuers.Done()

	it := queued{d: d, done: done}
	q.pending.Add(1)
	select {
	case q.in <- it:
		return nil
	default:
	}
	if q.fullWaits != nil {
		q.fullWaits.Inc()
	}
	select {
	case q.in <- it:
		return nil
	case <-ctx.Done():
		q.pending.Add(-1)
		return fmt.Errorf("delivery: dead-letter queue full: %w", ctx.Err())
	case <-q.closing:
		q.pending.Add(-1)
		return ErrDeadLetterQueueClosed
	}
}

// Pending is how many enqueued letters are not written yet.
func (q *DeadLetterQueue) Pending() int { return int(q.pending.Load()) }

// Close stops taking letters, writes what is queued within CloseTimeout,
// calls done with an error for every letter it could not write, and
// returns once the queue's goroutine has ended: with an error saying how
// many letters were not written, if any were not. It may be called more
// than once.
func (q *DeadLetterQueue) Close() error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.closing)
	}
	q.mu.Unlock()
	deadline := time.NewTimer(q.cfg.CloseTimeout)
	defer deadline.Stop()
	select {
	case <-q.done:
	case <-deadline.C:
		q.cancel() // ends the write in progress and the flush
		<-q.done
	}
	q.cancel()
	return q.closeErr
}

// run is the queue's goroutine: it writes batches until Close, retrying
// the letters of a failed write, in order, ahead of newer ones.
func (q *DeadLetterQueue) run() {
	defer close(q.done)
	var batch []queued
	failures := 0
	for {
		if len(batch) == 0 {
			select {
			case it := <-q.in:
				batch = append(batch, it)
			case <-q.closing:
				q.shutdown(batch)
				return
			}
		}
		batch = q.take(batch, q.cfg.MaxBatch)
		batch = q.write(batch)
		if len(batch) == 0 {
			if failures > 0 {
				q.log.Info("delivery: dead letters written again", "failed_writes", failures)
			}
			failures = 0
			continue
		}
		failures++
		wait := Backoff(q.cfg.RetryMin, q.cfg.RetryMax, failures, q.randN)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-q.closing:
			timer.Stop()
			q.shutdown(batch)
			return
		}
	}
}

// take adds letters already queued to batch, up to limit in all, without
// waiting for any.
func (q *DeadLetterQueue) take(batch []queued, limit int) []queued {
	for len(batch) < limit {
		select {
		case it := <-q.in:
			batch = append(batch, it)
		default:
			return batch
		}
	}
	return batch
}

// shutdown writes what is left, batch first, until everything is written
// or Close's deadline cancels q.ctx, then fails the rest.
func (q *DeadLetterQueue) shutdown(batch []queued) {
	q.enqueuers.Wait() // Close has been called: nobody can queue more after this
	batch = q.take(batch, len(batch)+len(q.in))
	failures := 0
	for len(batch) > 0 && q.ctx.Err() == nil {
		n := min(len(batch), q.cfg.MaxBatch)
		kept := len(q.write(batch[:n]))
		batch = append(batch[:kept], batch[n:]...)
		if kept == 0 {
			continue
		}
		failures++
		timer := time.NewTimer(Backoff(q.cfg.RetryMin, q.cfg.RetryMax, failures, q.randN))
		select {
		case <-timer.C:
		case <-q.ctx.Done():
			timer.Stop()
		}
	}
	if len(batch) == 0 {
		return
	}
	err := fmt.Errorf("%w: not written within %v", ErrDeadLetterQueueClosed, q.cfg.CloseTimeout)
	q.closeErr = fmt.Errorf("delivery: dead-letter queue closed with %d letters not written", len(batch))
	q.log.Error("delivery: dead letters not written before close", "letters", len(batch))
	for _, it := range batch {
		q.finish(it, err)
	}
}

// write writes items once and calls done for each letter written or
// never writable. It returns the rest, in order, in items' own memory.
func (q *DeadLetterQueue) write(items []queued) []queued {
	q.letters = q.letters[:0]
	for _, it := range items {
		q.letters = append(q.letters, it.d)
	}
	ctx, cancel := context.WithTimeout(q.ctx, q.cfg.WriteTimeout)
	err := q.w.WriteBatch(ctx, q.letters)
	cancel()
	clear(q.letters)
	var each DeadLetterErrors
	apart := errors.As(err, &each) && len(each) == len(items)
	kept := 0
	for i, it := range items {
		e := err
		if apart {
			e = each[i]
		}
		switch {
		case e == nil:
			q.finish(it, nil)
		case errors.Is(e, ErrDeadLetterInvalid):
			q.log.Error("delivery: dead letter cannot be written", "broadcast", it.d.BroadcastID,
				"subscriber", it.d.SubscriberID, "err", e)
			q.finish(it, e)
		default:
			items[kept] = it
			kept++
		}
	}
	clear(items[kept:])
	if kept > 0 {
		if q.writeFailures != nil {
			q.writeFailures.Inc()
		}
		q.log.Warn("delivery: dead letters not written; retrying", "letters", kept, "queued", len(q.in), "err", err)
	}
	return items[:kept]
}

// finish tells a letter's sender how it ended.
func (q *DeadLetterQueue) finish(it queued, err error) {
	q.pending.Add(-1)
	if it.done != nil {
		it.done(err)
	}
}
