package delivery

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// breaker is a Sender's circuit breaker: it tells an endpoint that is down
// from messages that are bad.
//
// Closed, it judges the last BreakerAttempts attempts made within
// BreakerWindow; once at least BreakerMinAttempts of them are there and a
// BreakerRatio share failed transiently (5xx, 429, a timeout or connection
// error), it opens. Open, every attempt about to start waits, and one at a
// time is let through as a probe, each later than the last (BackoffMin
// doubling to BreakerProbeMax, with jitter) or when the endpoint's
// Retry-After says. The first attempt that gets any other answer (2xx, 409,
// or a refusal: the endpoint is up) closes it and lets every waiter go.
//
// Without it, an outage longer than the retry budget (a few seconds with
// the defaults) fails every message in flight; with it, the senders pause
// and the outage costs a handful of probes instead of MaxInFlight senders
// hammering a recovering endpoint. A transient failure seen while the
// breaker is open does not count towards its delivery's MaxAttempts (the
// call decides that, in checkRetry); one with the breaker closed does, so a
// message the endpoint keeps refusing with 500 while others get 200 still
// fails after MaxAttempts.
//
// Its state is a few fields under one mutex, touched once before and once
// after an attempt; open is mirrored in an atomic so the closed path costs
// no lock before an attempt. It has no goroutine: waiters time their own
// probes.
type breaker struct {
	ratio         float64
	minAttempts   int
	window        time.Duration
	probeMin      time.Duration
	probeMax      time.Duration
	maxRetryAfter time.Duration
	log           *slog.Logger
	metrics       *metrics
	randN         func(n int64) int64

	open atomic.Bool // mirrors openedAt != zero, for lock-free reads

	mu       sync.Mutex
	marks    []mark // ring of the last len(marks) verdicts while closed
	next     int    // where the next mark goes
	openedAt time.Time
	probing  bool      // a probe is in flight
	probes   int       // failed probes since the breaker opened
	nextAt   time.Time // when the next probe may start
	// changed is closed, and replaced, whenever a waiter may now go: the
	// breaker closed or the probe slot came free.
	changed chan struct{}
}

// mark is one attempt's verdict as the breaker keeps it.
type mark struct {
	at     time.Time
	failed bool   // a transient failure
	who    uint64 // the delivery (one Send or SendBatch) it was an attempt of
}

// newBreaker returns the breaker cfg asks for, nil when BreakerRatio
// disables it. cfg has its defaults applied.
func newBreaker(cfg Config, log *slog.Logger, m *metrics, randN func(int64) int64) *breaker {
	if cfg.BreakerRatio < 0 {
		return nil
	}
	return &breaker{
		ratio:         cfg.BreakerRatio,
		minAttempts:   cfg.BreakerMinAttempts,
		window:        cfg.BreakerWindow,
		probeMin:      cfg.BackoffMin,
		probeMax:      max(cfg.BreakerProbeMax, cfg.BackoffMin),
		maxRetryAfter: cfg.MaxRetryAfter,
		log:           log,
		metrics:       m,
		randN:         randN,
		marks:         make([]mark, cfg.BreakerAttempts),
		changed:       make(chan struct{}),
	}
}

// isOpen reports whether attempts are being held back. A nil breaker (the
// breaker disabled) never is.
func (b *breaker) isOpen() bool { return b != nil && b.open.Load() }

// since returns when the breaker opened, zero when it is closed.
func (b *breaker) since() time.Time {
	if b == nil {
		return time.Time{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openedAt
}

// wait holds an attempt about to start until the breaker lets it through:
// at once when it is closed, otherwise when the attempt may go as the
// probe (probe is then true, and the caller must report the probe's answer
// to record, or call abandon if it was not sent). It returns early with
// ctx's error when ctx ends, and with neither probe nor error once limit
// has passed (limit < 0: no limit), for the caller to send regardless.
func (b *breaker) wait(ctx context.Context, limit time.Duration) (probe bool, err error) {
	if !b.isOpen() {
		return false, nil
	}
	var giveUp time.Time
	if limit >= 0 {
		giveUp = time.Now().Add(limit)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if !b.open.Load() {
			b.mu.Unlock()
			return false, nil
		}
		now := time.Now()
		if !b.probing && !now.Before(b.nextAt) {
			b.probing = true
			b.mu.Unlock()
			return true, nil
		}
		changed := b.changed
		wake := giveUp // zero: no deadline of our own
		if !b.probing && (wake.IsZero() || b.nextAt.Before(wake)) {
			wake = b.nextAt
		}
		b.mu.Unlock()

		if !giveUp.IsZero() && !now.Before(giveUp) {
			return false, nil
		}
		var alarm <-chan time.Time
		if !wake.IsZero() {
			if timer == nil {
				timer = time.NewTimer(wake.Sub(now))
			} else {
				timer.Reset(wake.Sub(now))
			}
			alarm = timer.C
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-changed:
		case <-alarm:
		}
	}
}

// abandon gives the probe slot back when the probe wait granted was not
// sent after all (fenced, refused by Allow, or its context ended), so
// another waiter may probe.
func (b *breaker) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.probing {
		b.probing = false
		b.signal()
	}
}

// record takes an attempt's verdict and reports whether the breaker is open
// afterwards. probe says the attempt went out as the probe; retryAfter is
// the wait the endpoint asked for, negative when it asked for none.
func (b *breaker) record(probe bool, v verdict, retryAfter time.Duration, who uint64) (open bool) {
	if b == nil {
		return false
	}
	failed := v == verdictRetry || v == verdictRetryAfter
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	if !b.open.Load() {
		b.marks[b.next] = mark{at: now, failed: failed, who: who}
		b.next = (b.next + 1) % len(b.marks)
		if failed && b.tripped(now) {
			b.trip(now, retryAfter)
			return true
		}
		return false
	}
	if !failed {
		b.reset(now)
		return false
	}
	switch {
	case probe:
		b.probes++
		b.nextAt = now.Add(b.interval(b.probes, retryAfter))
		b.signal() // the slot is free again
	case retryAfter >= 0:
		// An attempt already in flight when the breaker opened: the
		// endpoint's request to wait holds for the next probe too.
		b.nextAt = maxTime(b.nextAt, now.Add(b.interval(b.probes, retryAfter)))
	}
	return true
}

// onsetDeliveries is how many deliveries the failures of an onset must
// come from.
const onsetDeliveries = 3

// onset reports whether an outage looks to have begun though the breaker
// has not opened yet: the last BreakerMinAttempts attempts, all within the
// window, failed transiently, and were attempts of at least three
// deliveries. The breaker opens once a BreakerRatio share of the last
// BreakerAttempts failed, 16 of 20 by default; when the endpoint goes down
// after answering well, the first 15 failures find it closed, and a
// message whose last attempt was among them would fail for the outage.
// While the onset lasts, a transient failure does not count towards its
// delivery's MaxAttempts either. It costs nothing beyond that: the retry
// waits its backoff as before, each is one more failure towards opening
// the breaker, and any answer that is not a transient failure ends the
// onset. Ten failures in a row from three deliveries is also what keeps a
// message or two the endpoint refuses on their own failing after
// MaxAttempts as before, and an endpoint failing half of the attempts at
// random sees one rarely, and for one attempt.
func (b *breaker) onset() bool {
	if b == nil || b.open.Load() {
		return false
	}
	k := b.minAttempts
	if k < onsetDeliveries || k > len(b.marks) {
		return false
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var seen [onsetDeliveries]uint64
	n := 0
	for i := 1; i <= k; i++ {
		m := b.marks[(b.next-i+len(b.marks))%len(b.marks)]
		if m.at.IsZero() || !m.failed || now.Sub(m.at) > b.window {
			return false
		}
		if n < onsetDeliveries && !slices.Contains(seen[:n], m.who) {
			seen[n] = m.who
			n++
		}
	}
	return n == onsetDeliveries
}

// tripped reports whether the recent verdicts say the endpoint is down.
func (b *breaker) tripped(now time.Time) bool {
	var n, failed int
	for _, m := range b.marks {
		if m.at.IsZero() || now.Sub(m.at) > b.window {
			continue
		}
		n++
		if m.failed {
			failed++
		}
	}
	// The tolerance keeps 0.8 of 20 at 16 despite binary floating point.
	return n >= b.minAttempts && float64(failed) >= b.ratio*float64(n)-1e-9
}

// trip opens the breaker; the first probe goes after one interval.
func (b *breaker) trip(now time.Time, retryAfter time.Duration) {
	b.open.Store(true)
	b.openedAt, b.probes, b.probing = now, 0, false
	b.nextAt = now.Add(b.interval(0, retryAfter))
	b.metrics.breakerOpened()
	b.log.Warn("delivery: endpoint failing; pausing sends and probing it", "next_probe_in", b.nextAt.Sub(now))
}

// reset closes the breaker, forgets the verdicts that opened it, and lets
// every waiter go.
func (b *breaker) reset(now time.Time) {
	paused := now.Sub(b.openedAt)
	b.open.Store(false)
	b.openedAt, b.probing = time.Time{}, false
	clear(b.marks)
	b.next = 0
	b.signal()
	b.metrics.breakerClosed()
	b.log.Info("delivery: endpoint answering again; resuming sends", "paused", paused, "failed_probes", b.probes)
}

// signal wakes every waiter to look at the state again.
func (b *breaker) signal() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// interval is the wait before the next probe after n failed ones. A
// Retry-After is followed, within BackoffMin and MaxRetryAfter, as for a
// retry; otherwise the ceiling doubles from 2·BackoffMin up to
// BreakerProbeMax and the wait is drawn from its upper half, so probes
// spread out without ever coming in a burst.
func (b *breaker) interval(n int, retryAfter time.Duration) time.Duration {
	if retryAfter >= 0 {
		return min(max(retryAfter, b.probeMin), b.maxRetryAfter)
	}
	ceil := b.probeMin
	for i := 0; i <= n && ceil < b.probeMax; i++ {
		ceil = min(2*ceil, b.probeMax)
	}
	lo := max(b.probeMin, ceil/2)
	if ceil <= lo {
		return lo
	}
	return lo + time.Duration(b.randN(int64(ceil-lo)+1))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
