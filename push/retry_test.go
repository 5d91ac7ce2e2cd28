package push

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/worker/delivery"
)

func TestRetrierDo(t *testing.T) {
	fast := Policy{BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond, MaxAttempts: 3}
	target, _ := url.Parse("https://push.example.com")
	tests := []struct {
		name     string
		pol      Policy
		answers  []Answer
		want     delivery.Outcome
		attempts int
		gone     string
		reason   string
	}{
		{name: "delivered", answers: []Answer{{Verdict: Delivered, Status: 200}}, want: delivery.Delivered, attempts: 1},
		{name: "retried then delivered", answers: []Answer{{Verdict: Retry, Status: 503}, {Verdict: Retry, Err: errors.New("reset")}, {Verdict: Delivered, Status: 200}},
			want: delivery.Delivered, attempts: 3},
		{name: "gone", answers: []Answer{{Verdict: Gone, Status: 410, Reason: "Unregistered"}}, want: delivery.Failed, attempts: 1,
			gone: "Unregistered", reason: "test: status 410 Gone: Unregistered"},
		{name: "gone without a reason", answers: []Answer{{Verdict: Gone, Status: 404}}, want: delivery.Failed, attempts: 1, gone: "404 Not Found"},
		{name: "permanent", answers: []Answer{{Verdict: Permanent, Status: 413, Reason: "PayloadTooLarge"}}, want: delivery.Failed, attempts: 1,
			reason: "test: status 413 Request Entity Too Large: PayloadTooLarge"},
		{name: "gives up", answers: []Answer{{Verdict: Retry, Status: 500}, {Verdict: Retry, Status: 500}, {Verdict: Retry, Status: 503}},
			want: delivery.Failed, attempts: 3, reason: "gave up after 3 attempts: test: status 503"},
		{name: "throttled attempts do not count", answers: []Answer{{Verdict: Throttled, Status: 429}, {Verdict: Throttled, Status: 429},
			{Verdict: Retry, Status: 500}, {Verdict: Retry, Status: 500}, {Verdict: Delivered, Status: 200}}, want: delivery.Delivered, attempts: 5},
		{name: "fenced", pol: Policy{Fence: func() error { return errors.New("lease deadline passed") }}, want: delivery.Aborted, attempts: 0, reason: "not sent: lease deadline passed"},
		{name: "not allowed", pol: Policy{Allow: func(*url.URL) error { return errors.New("origin not allowed") }}, want: delivery.Failed, attempts: 0, reason: "not sent: origin not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fast
			p.Fence, p.Allow = tt.pol.Fence, tt.pol.Allow
			r := NewRetrier("test", p)
			n := 0
			res := r.Do(context.Background(), target, func(ctx context.Context) Answer {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("attempt without a deadline")
				}
				a := tt.answers[n]
				n++
				return a
			})
			if res.Outcome != tt.want || res.Attempts != tt.attempts || res.GoneReason != tt.gone || res.Gone != (tt.gone != "") {
				t.Fatalf("result %+v; want %v after %d attempts, gone %q", res, tt.want, tt.attempts, tt.gone)
			}
			if !strings.Contains(res.Reason, tt.reason) {
				t.Fatalf("reason %q, want it to contain %q", res.Reason, tt.reason)
			}
		})
	}
}

// The fence is asked before every attempt: a lease lost between attempts
// stops the next one.
func TestRetrierFencesEveryAttempt(t *testing.T) {
	var fenced atomic.Bool
	r := NewRetrier("test", Policy{BackoffMin: time.Millisecond, Fence: func() error {
		if fenced.Load() {
			return errors.New("fenced")
		}
		return nil
	}})
	n := 0
	res := r.Do(context.Background(), nil, func(context.Context) Answer {
		n++
		fenced.Store(true)
		return Answer{Verdict: Retry, Status: 503}
	})
	if res.Outcome != delivery.Aborted || n != 1 || res.Attempts != 1 {
		t.Fatalf("result %+v after %d attempts; want aborted after 1", res, n)
	}
}

// Retry-After is honoured, and a quota answer holds the other deliveries
// of the Retrier too.
func TestRetrierRetryAfterAndHold(t *testing.T) {
	r := NewRetrier("test", Policy{BackoffMin: time.Millisecond})
	start := time.Now()
	n := 0
	res := r.Do(context.Background(), nil, func(context.Context) Answer {
		n++
		if n == 1 {
			return Answer{Verdict: Throttled, Status: 429, RetryAfter: "1"}
		}
		return Answer{Verdict: Delivered, Status: 200}
	})
	if res.Outcome != delivery.Delivered || time.Since(start) < time.Second {
		t.Fatalf("result %+v after %v; want delivered after the 1 s Retry-After", res, time.Since(start))
	}
	r.hold(300 * time.Millisecond)
	if r.WaitingSince().IsZero() {
		t.Fatal("WaitingSince zero while held")
	}
	start = time.Now()
	r.Do(context.Background(), nil, func(context.Context) Answer { return Answer{Verdict: Delivered} })
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("a held Retrier sent after %v", d)
	}
	if !r.WaitingSince().IsZero() {
		t.Fatal("WaitingSince set after the hold")
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.hold(time.Hour)
	cancel()
	if res := r.Do(ctx, nil, func(context.Context) Answer { return Answer{Verdict: Delivered} }); res.Outcome != delivery.Aborted {
		t.Fatalf("cancelled while held: %+v", res)
	}
}

func TestKeyUUID(t *testing.T) {
	// A Herald key's UUID is its own 16 bytes, but for the version and
	// variant bits.
	if got, want := KeyUUID("hk1-0123456789abcdef0123456789abcdef"), "01234567-89ab-8def-8123-456789abcdef"; got != want {
		t.Fatalf("KeyUUID = %s, want %s", got, want)
	}
	a, b := KeyUUID("spring:alice"), KeyUUID("spring:alice")
	if a != b || a == KeyUUID("spring:bob") {
		t.Fatalf("KeyUUID not a function of the key: %s %s", a, b)
	}
	if len(a) != 36 || a[14] != '8' || !strings.ContainsAny(a[19:20], "89ab") || strings.Count(a, "-") != 4 {
		t.Fatalf("KeyUUID %s: not a version 8 UUID", a)
	}
}

// Throttled answers in a row without Retry-After hold the Retrier for a
// backoff that doubles, as a breaker's probes would; any other answer
// ends the streak.
func TestRetrierThrottledBackoffDoubles(t *testing.T) {
	r := NewRetrier("test", Policy{BackoffMin: 10 * time.Millisecond, BackoffMax: time.Second})
	r.randN = func(n int64) int64 { return n - 1 } // the top of each range: 20, 40, 80 ms
	n := 0
	start := time.Now()
	res := r.Do(context.Background(), nil, func(context.Context) Answer {
		n++
		if n <= 3 {
			return Answer{Verdict: Throttled, Status: 503}
		}
		return Answer{Verdict: Delivered, Status: 200}
	})
	if res.Outcome != delivery.Delivered || res.Attempts != 4 {
		t.Fatalf("result %+v", res)
	}
	if d := time.Since(start); d < 140*time.Millisecond {
		t.Fatalf("three throttled answers held %v, want at least 20+40+80 ms", d)
	}
	if r.streak != 0 {
		t.Fatalf("streak %d after a delivery, want 0", r.streak)
	}
}

// After a hold, while the provider keeps throttling, one delivery at a
// time probes it; the others wait for the probe's answer and all go once
// it is not a throttle.
func TestRetrierProbesOneAtATime(t *testing.T) {
	r := NewRetrier("test", Policy{BackoffMin: 2 * time.Millisecond, BackoffMax: 4 * time.Millisecond})
	r.hold(5 * time.Millisecond)
	r.throttled() // a streak under way, as after a throttled answer
	var calls, inflight, maxDuring atomic.Int64
	var wg sync.WaitGroup
	const deliveries, throttles = 10, 5
	for range deliveries {
		wg.Go(func() {
			res := r.Do(context.Background(), nil, func(context.Context) Answer {
				n := calls.Add(1)
				cur := inflight.Add(1)
				defer inflight.Add(-1)
				if n <= throttles+1 && cur > maxDuring.Load() {
					maxDuring.Store(cur) // the probes, the last one answered 200
				}
				time.Sleep(time.Millisecond)
				if n <= throttles {
					return Answer{Verdict: Throttled, Status: 429}
				}
				return Answer{Verdict: Delivered, Status: 200}
			})
			if res.Outcome != delivery.Delivered {
				t.Errorf("result %+v", res)
			}
		})
	}
	wg.Wait()
	if got := maxDuring.Load(); got != 1 {
		t.Fatalf("%d attempts at once while throttled, want 1 (a probe)", got)
	}
	if got := calls.Load(); got != deliveries+throttles {
		t.Fatalf("%d attempts, want %d: each delivery once after the streak, the probes before", got, deliveries+throttles)
	}
	if !r.WaitingSince().IsZero() {
		t.Fatal("still waiting after the streak ended")
	}
}
