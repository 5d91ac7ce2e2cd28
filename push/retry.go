package push

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-dev/herald/worker/delivery"
)

// Verdict is what one attempt's answer means for its delivery. Each
// provider judges its own answers (its classify); the Retrier acts on the
// verdict.
type Verdict int

const (
	// Delivered: the provider has the message.
	Delivered Verdict = iota + 1
	// Permanent: the message was refused for good (payload, credentials,
	// configuration); asking again cannot help.
	Permanent
	// Gone: the token or subscription is dead for good. The delivery
	// fails and the token is reported (Result.Gone).
	Gone
	// Retry: a transient failure (5xx, 429 for one device, a timeout or a
	// broken connection); again after Retry-After or backoff.
	Retry
	// Throttled: the provider is over the sender's quota, or down for
	// everyone. Every delivery of the Retrier waits until Retry-After has
	// passed, or else a backoff that doubles with each throttled answer in
	// a row; then one attempt goes as a probe while the others wait for
	// its answer; and an attempt throttled does not count towards
	// MaxAttempts (for MaxHold): the webhook's circuit breaker, for a
	// provider.
	Throttled
)

// Answer is one attempt's answer as a provider judged it.
type Answer struct {
	Verdict Verdict
	// Status is the HTTP status, 0 when Err says why there was none.
	Status int
	// Reason is the provider's word for a refusal (Unregistered,
	// UNREGISTERED, ...), "" when it gave none.
	Reason string
	// RetryAfter is the Retry-After header as sent, "" for none.
	RetryAfter string
	// Err is the transport error, when the attempt got no answer.
	Err error
}

// Defaults of Policy's zero fields.
const (
	DefaultTimeout       = 5 * time.Second
	DefaultMaxAttempts   = 6
	DefaultBackoffMin    = 100 * time.Millisecond
	DefaultBackoffMax    = 10 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
	DefaultMaxHold       = 5 * time.Minute
)

// Policy is how a Retrier makes a delivery out of attempts. Zero fields
// mean the defaults.
type Policy struct {
	// Timeout bounds one attempt.
	Timeout time.Duration
	// MaxAttempts counts the first; throttled attempts do not count.
	MaxAttempts int
	// BackoffMin and BackoffMax bound the wait before a retry without a
	// Retry-After; it doubles from BackoffMin with jitter.
	BackoffMin, BackoffMax time.Duration
	// MaxRetryAfter caps a Retry-After.
	MaxRetryAfter time.Duration
	// MaxHold is how long one delivery waits on quota holds in all before
	// its throttled attempts count like any other.
	MaxHold time.Duration
	// Fence, when set, is asked before every attempt whether this process
	// may still send (the worker's lease deadline and the broadcast's
	// expiry); an error aborts the delivery with nothing sent.
	Fence func() error
	// Allow, when set, is asked before every attempt whether the URL about
	// to be dialed may be (the endpoint allowlist); an error fails the
	// delivery with nothing sent.
	Allow func(*url.URL) error
}

func (p Policy) withDefaults() Policy {
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BackoffMin <= 0 {
		p.BackoffMin = DefaultBackoffMin
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = DefaultBackoffMax
	}
	p.BackoffMax = max(p.BackoffMax, p.BackoffMin)
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if p.MaxHold == 0 {
		p.MaxHold = DefaultMaxHold
	}
	return p
}

// Retrier runs the attempts of one provider's deliveries for a broadcast.
// It is safe for concurrent use: its only shared state is the quota hold,
// under a mutex.
type Retrier struct {
	p        Policy
	provider string

	mu        sync.Mutex
	holdUntil time.Time // no attempt starts before this
	holdSince time.Time // zero when not held
	streak    int       // throttled answers in a row
	// probe is non-nil while, a hold having passed, one attempt goes out
	// alone to see whether the provider takes sends again; it is closed
	// when that attempt is answered.
	probe chan struct{}

	// Hooks tests replace.
	now   func() time.Time
	randN func(int64) int64
}

// NewRetrier returns a Retrier for provider (its name starts each
// Reason).
func NewRetrier(provider string, p Policy) *Retrier {
	return &Retrier{p: p.withDefaults(), provider: provider, now: time.Now, randN: rand.Int64N}
}

// WaitingSince returns since when a quota hold has held the deliveries,
// the zero time when none does: herald status shows the broadcast as
// waiting on its endpoint meanwhile.
func (r *Retrier) WaitingSince() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.holdSince.IsZero() || (r.streak == 0 && !r.now().Before(r.holdUntil)) {
		return time.Time{}
	}
	return r.holdSince
}

// Do delivers by calling try until an answer ends the delivery, the
// attempts are spent, or ctx ends (Aborted: the next owner sends it
// again). target is the URL each attempt dials, checked by Policy.Allow
// before every attempt, right after Policy.Fence.
func (r *Retrier) Do(ctx context.Context, target *url.URL, try func(ctx context.Context) Answer) Result {
	start := r.now()
	res := r.do(ctx, target, try)
	res.Latency = time.Since(start)
	return res
}

func (r *Retrier) do(ctx context.Context, target *url.URL, try func(ctx context.Context) Answer) Result {
	var res Result
	spent := 0
	var held time.Duration
	probing := false // this delivery's attempt is the probe after a hold
	defer func() {
		if probing {
			r.endProbe()
		}
	}()
	abort := func(why string) Result {
		res.Outcome, res.Reason = delivery.Aborted, why
		return res
	}
	for {
		if err := ctx.Err(); err != nil {
			return abort("context ended: " + context.Cause(ctx).Error())
		}
		waited, probe, ok := r.waitHold(ctx)
		held += waited
		probing = probe
		if !ok {
			return abort("context ended while held by the provider's quota: " + context.Cause(ctx).Error())
		}
		if r.p.Fence != nil {
			if err := r.p.Fence(); err != nil {
				return abort("not sent: " + err.Error())
			}
		}
		if r.p.Allow != nil {
			if err := r.p.Allow(target); err != nil {
				res.Outcome, res.Reason = delivery.Failed, "not sent: "+err.Error()
				return res
			}
		}
		actx, cancel := context.WithTimeout(ctx, r.p.Timeout)
		a := try(actx)
		cancel()
		res.Attempts++
		res.Status = a.Status
		// An attempt ctx cut short says nothing about the provider.
		var wait time.Duration
		if a.Err == nil || ctx.Err() == nil {
			if a.Verdict == Throttled {
				wait = r.retryWait(a, r.throttled())
				r.hold(wait)
			} else {
				r.unthrottled()
			}
		}
		if probing {
			probing = false
			r.endProbe()
		}
		switch a.Verdict {
		case Delivered:
			res.Outcome, res.Reason = delivery.Delivered, ""
			return res
		case Permanent:
			res.Outcome, res.Reason = delivery.Failed, r.describe(a)
			return res
		case Gone:
			res.Outcome, res.Reason = delivery.Failed, r.describe(a)
			res.Gone, res.GoneReason = true, a.Reason
			if res.GoneReason == "" {
				res.GoneReason = strconv.Itoa(a.Status) + " " + http.StatusText(a.Status)
			}
			return res
		}
		if ctx.Err() != nil {
			// The claim ended during the attempt: nothing more may go out.
			return abort("context ended: " + context.Cause(ctx).Error())
		}
		if a.Verdict != Throttled {
			wait = r.retryWait(a, spent+1)
		}
		if a.Verdict != Throttled || (r.p.MaxHold > 0 && held >= r.p.MaxHold) {
			spent++
		}
		if spent >= r.p.MaxAttempts {
			res.Outcome = delivery.Failed
			res.Reason = fmt.Sprintf("gave up after %d attempts: %s", res.Attempts, r.describe(a))
			return res
		}
		if deadline, ok := ctx.Deadline(); ok && r.now().Add(wait).After(deadline) {
			return abort(fmt.Sprintf("next attempt due in %v, after the context deadline", wait))
		}
		if a.Verdict == Throttled {
			continue // waitHold waits it out
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return abort("context ended while waiting to retry: " + context.Cause(ctx).Error())
		}
	}
}

// describe names an answer for a Reason: "apns: status 410 Gone:
// Unregistered", or the transport error.
func (r *Retrier) describe(a Answer) string {
	var b strings.Builder
	b.WriteString(r.provider)
	b.WriteString(": ")
	switch {
	case a.Err != nil:
		var ue *url.Error
		err := a.Err
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry a device token
		}
		if errors.Is(err, context.DeadlineExceeded) {
			b.WriteString("timeout: ")
		}
		b.WriteString(err.Error())
	default:
		b.WriteString("status ")
		b.WriteString(strconv.Itoa(a.Status))
		if t := http.StatusText(a.Status); t != "" {
			b.WriteString(" ")
			b.WriteString(t)
		}
	}
	if a.Reason != "" {
		b.WriteString(": ")
		b.WriteString(a.Reason)
	}
	return b.String()
}

// throttled counts a throttled answer and returns how many came in a row.
func (r *Retrier) throttled() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streak++
	return r.streak
}

// unthrottled ends a streak of throttled answers: the provider answered
// otherwise.
func (r *Retrier) unthrottled() {
	r.mu.Lock()
	r.streak = 0
	r.mu.Unlock()
}

// hold keeps every delivery of the Retrier from starting an attempt for d.
func (r *Retrier) hold(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if until := now.Add(d); until.After(r.holdUntil) {
		if r.holdSince.IsZero() || !now.Before(r.holdUntil) {
			r.holdSince = now
		}
		r.holdUntil = until
	}
}

// waitHold waits out a quota hold, then, while the throttled answers
// have not ended, for its turn: one attempt at a time goes out as the
// probe (probe true), the others wait for its answer, which either holds
// them again or ends the streak and lets them all go, as the webhook's
// circuit breaker does. ok is false if ctx ended first.
func (r *Retrier) waitHold(ctx context.Context) (waited time.Duration, probe, ok bool) {
	for {
		r.mu.Lock()
		d := r.holdUntil.Sub(r.now())
		var turn chan struct{}
		switch {
		case d > 0:
		case r.streak == 0:
			r.holdSince = time.Time{}
			r.mu.Unlock()
			return waited, false, true
		case r.probe == nil:
			r.probe = make(chan struct{})
			r.mu.Unlock()
			return waited, true, true
		default:
			turn = r.probe
		}
		r.mu.Unlock()
		start := time.Now()
		if turn != nil {
			select {
			case <-turn:
			case <-ctx.Done():
				return waited + time.Since(start), false, false
			}
		} else {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return waited + time.Since(start), false, false
			}
		}
		waited += time.Since(start)
	}
}

// endProbe lets the deliveries waiting on the probe look again: the
// probe's answer has held them anew or ended the streak.
func (r *Retrier) endProbe() {
	r.mu.Lock()
	if r.probe != nil {
		close(r.probe)
		r.probe = nil
	}
	r.mu.Unlock()
}

// retryWait is the wait after the n-th counted attempt: the provider's
// Retry-After when it sent one (at least BackoffMin, at most
// MaxRetryAfter), else exponential backoff with jitter.
func (r *Retrier) retryWait(a Answer, n int) time.Duration {
	if d, ok := delivery.ParseRetryAfter(a.RetryAfter, r.now()); ok {
		return min(max(d, r.p.BackoffMin), r.p.MaxRetryAfter)
	}
	return delivery.Backoff(r.p.BackoffMin, r.p.BackoffMax, n, r.randN)
}

// TransportAnswer is the answer of an attempt that got no response: a
// retry, unless the provider's certificate was rejected, which no retry
// can fix.
func TransportAnswer(err error) Answer {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return Answer{Verdict: Permanent, Err: err}
	}
	return Answer{Verdict: Retry, Err: err}
}
