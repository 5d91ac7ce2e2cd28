package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Tests of the circuit breaker, with real HTTP, real clocks and real
// waits. They assert what happens (outcomes, requests the endpoint got),
// never how fast.

// outage is an endpoint that answers 503 until its outage ends, then 200,
// counting the requests that arrived during the outage.
type outage struct {
	srv    *httptest.Server
	ends   time.Time
	during atomic.Int64
	after  atomic.Int64
	// onRequest, when set, is called with each request's key first.
	onRequest func(key string)
}

func newOutage(t *testing.T, length time.Duration, retryAfter string) *outage {
	t.Helper()
	o := &outage{ends: time.Now().Add(length)}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.onRequest != nil {
			o.onRequest(r.Header.Get("Idempotency-Key"))
		}
		if time.Now().Before(o.ends) {
			o.during.Add(1)
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		o.after.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// sendAll sends one message per key at once, one goroutine each, and
// returns their results in key order.
func sendAll(ctx context.Context, s *Sender, url string, keys []string) []Result {
	results := make([]Result, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() { results[i] = s.Send(ctx, url, k, []byte(testBody)) })
	}
	wg.Wait()
	return results
}

func keys(prefix string, n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return ks
}

func gaugeOrCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestBreakerRidesOutAnOutage: an endpoint unavailable for the first 3 s
// of a run, then healthy. 32 deliveries with 3 attempts each would all
// have failed within a second or two (the breaker-off cases show that they
// do); with the breaker every one is delivered, and during the outage the
// endpoint gets a few probes rather than every sender's retries.
func TestBreakerRidesOutAnOutage(t *testing.T) {
	const sends, length = 32, 3 * time.Second
	base := Config{MaxInFlight: sends, MaxAttempts: 3, BackoffMin: 100 * time.Millisecond,
		BackoffMax: 500 * time.Millisecond, BreakerProbeMax: time.Second}
	tests := []struct {
		name       string
		retryAfter string
		// maxProbes bounds the requests during the outage beyond each
		// sender's first: probes come at most every BackoffMin doubling
		// (half the ceiling at least) to 1 s, so 8 in 3 s; with
		// Retry-After 1, one a second.
		maxProbes int64
	}{
		{name: "503", maxProbes: 12},
		{name: "503 with Retry-After 1", retryAfter: "1", maxProbes: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			s, err := New(base, nil, reg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var sawWaiting atomic.Bool
			o := newOutage(t, length, tt.retryAfter)
			o.onRequest = func(string) {
				if s.Waiting() && !s.WaitingSince().IsZero() {
					sawWaiting.Store(true) // a probe: sends are paused
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			results := sendAll(ctx, s, o.srv.URL, keys("outage", sends))

			for i, r := range results {
				if r.Outcome != Delivered {
					t.Errorf("send %d: %+v, want delivered", i, r)
				}
			}
			if n, limit := o.during.Load(), sends+tt.maxProbes; n > limit {
				t.Errorf("endpoint got %d requests during the outage, want at most %d: senders kept hammering it", n, limit)
			}
			if o.after.Load() != sends {
				t.Errorf("endpoint delivered %d after the outage, want %d", o.after.Load(), sends)
			}
			if !sawWaiting.Load() {
				t.Error("Waiting() never reported the paused sends")
			}
			if s.Waiting() || !s.WaitingSince().IsZero() {
				t.Error("still waiting after the endpoint recovered")
			}
			if got := gaugeOrCounter(t, reg, "herald_delivery_breaker_openings_total"); got < 1 {
				t.Errorf("openings %v, want at least 1", got)
			}
			if got := gaugeOrCounter(t, reg, "herald_delivery_breaker_open"); got != 0 {
				t.Errorf("open gauge %v after recovery, want 0", got)
			}
			t.Logf("%d requests during the outage, %d after", o.during.Load(), o.after.Load())
		})
		t.Run(tt.name+" breaker off", func(t *testing.T) {
			t.Parallel()
			cfg := base
			cfg.BreakerRatio = -1
			s, err := New(cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			o := newOutage(t, length, tt.retryAfter)

			results := sendAll(context.Background(), s, o.srv.URL, keys("outage", sends))

			failed := 0
			for _, r := range results {
				if r.Outcome == Failed {
					failed++
				}
			}
			if failed == 0 {
				t.Fatal("no delivery failed without the breaker: the outage is too short to show anything")
			}
			if s.Waiting() {
				t.Error("a disabled breaker reports waiting")
			}
			t.Logf("%d of %d failed", failed, sends)
		})
	}
}

// TestBreakerLetsABadMessageFail: on a healthy endpoint, messages it
// refuses with 500 fail after MaxAttempts as before; the breaker does not
// take them for an outage.
func TestBreakerLetsABadMessageFail(t *testing.T) {
	const goodSenders, goodEach, bad = 4, 25, 3
	var good atomic.Int64
	warm := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Idempotency-Key"), "bad") {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if good.Add(1) == 20 {
			once.Do(func() { close(warm) })
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	s, err := New(Config{MaxInFlight: goodSenders + 1, MaxAttempts: 3, BackoffMin: 10 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var wg sync.WaitGroup
	goodResults := make([][]Result, goodSenders)
	for g := range goodSenders {
		wg.Go(func() {
			for i := range goodEach {
				goodResults[g] = append(goodResults[g], s.Send(context.Background(), srv.URL, fmt.Sprintf("good-%d-%d", g, i), []byte(testBody)))
			}
		})
	}
	var badResults []Result
	wg.Go(func() {
		<-warm // the worker's pool is busy with the rest of the audience
		for i := range bad {
			badResults = append(badResults, s.Send(context.Background(), srv.URL, fmt.Sprintf("bad-%d", i), []byte(testBody)))
		}
	})
	wg.Wait()

	for g, rs := range goodResults {
		for i, r := range rs {
			if r.Outcome != Delivered {
				t.Errorf("good-%d-%d: %+v, want delivered", g, i, r)
			}
		}
	}
	for i, r := range badResults {
		if r.Outcome != Failed || r.Attempts != 3 || !strings.Contains(r.Reason, "gave up after 3 attempts") {
			t.Errorf("bad-%d: %+v, want failed after 3 attempts", i, r)
		}
	}
	if got := gaugeOrCounter(t, reg, "herald_delivery_breaker_openings_total"); got != 0 {
		t.Errorf("breaker opened %v times on a healthy endpoint", got)
	}
}

// TestBreakerOnsetSparesLastAttempts: an endpoint that was answering well
// goes down. The breaker, its recent attempts all successes, opens only
// at the 16th failure; the deliveries whose last attempt fails before that
// are not failed for the outage, since the ten failures before theirs,
// from many deliveries, announced it (breaker.onset). All are delivered
// once the endpoint is back.
func TestBreakerOnsetSparesLastAttempts(t *testing.T) {
	const sends = 12
	var down atomic.Bool
	var during atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			during.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	s, err := New(Config{MaxInFlight: sends, MaxAttempts: 2, BackoffMin: 50 * time.Millisecond,
		BackoffMax: 100 * time.Millisecond, BreakerProbeMax: 200 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, k := range keys("warm", DefaultBreakerAttempts) {
		if r := s.Send(ctx, srv.URL, k, []byte(testBody)); r.Outcome != Delivered {
			t.Fatalf("warm-up %s: %+v", k, r)
		}
	}
	down.Store(true)
	time.AfterFunc(time.Second, func() { down.Store(false) })

	// Twelve first attempts fail at once, then their second ones after
	// the backoff: without the onset, those before the breaker opens (the
	// 13th to 15th failures) would be failed.
	results := sendAll(ctx, s, srv.URL, keys("onset", sends))
	for i, r := range results {
		if r.Outcome != Delivered {
			t.Errorf("send %d: %+v, want delivered after the outage", i, r)
		}
	}
	if during.Load() < sends+3 {
		t.Errorf("endpoint got %d requests during the outage, want at least %d: the second attempts did not come before the breaker opened", during.Load(), sends+3)
	}
}

// openBreaker opens s's breaker with sends concurrent deliveries of one
// attempt each to an endpoint that answers 503, and returns their results
// (once ctx ends, for those left waiting) and the endpoint's request count.
// It returns once the breaker is open.
func openBreaker(t *testing.T, ctx context.Context, s *Sender, sends int) (results func() []Result, requests *atomic.Int64) {
	t.Helper()
	requests = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	done := make(chan []Result, 1)
	go func() { done <- sendAll(ctx, s, srv.URL, keys("down", sends)) }()
	for !s.Waiting() {
		select {
		case rs := <-done:
			t.Fatalf("breaker never opened; results %+v", rs)
		case <-time.After(time.Millisecond):
		}
	}
	return func() []Result { return <-done }, requests
}

// TestBreakerWaitEndsWithContext: a delivery held by the open breaker, on
// its first attempt or a retry, returns Aborted as soon as its context
// ends, having sent nothing more.
func TestBreakerWaitEndsWithContext(t *testing.T) {
	// The first probe is 30 s away at least: nothing but the context can
	// end these waits within the test.
	s, err := New(Config{MaxAttempts: 1, BackoffMin: 30 * time.Second, BackoffMax: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results, requests := openBreaker(t, ctx, s, 12)

	// A new delivery while the endpoint is down: it waits before its first
	// attempt.
	late, cancelLate := context.WithCancel(context.Background())
	var lateResult Result
	var wg sync.WaitGroup
	wg.Go(func() { lateResult = s.Send(late, "http://"+"127.0.0.1:1/push", testKey, []byte(testBody)) })
	time.Sleep(50 * time.Millisecond) // let it reach its wait
	start := time.Now()
	cancelLate()
	wg.Wait()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Send took %v to return after its context ended", took)
	}
	if lateResult.Outcome != Aborted || lateResult.Attempts != 0 || !strings.Contains(lateResult.Reason, "waiting for the endpoint") {
		t.Errorf("late send: %+v, want aborted with nothing sent while waiting for the endpoint", lateResult)
	}

	cancel()
	failed, waited, attempts := 0, 0, 0
	for i, r := range results() {
		attempts += r.Attempts
		switch {
		case r.Outcome == Failed && r.Attempts == 1:
			failed++ // failed before the breaker opened: MaxAttempts is 1
		case r.Outcome == Aborted && r.Attempts <= 1 && strings.Contains(r.Reason, "context ended while waiting"):
			waited++
		default:
			t.Errorf("send %d: %+v, want failed before the breaker opened or aborted waiting", i, r)
		}
	}
	// The 10th verdict opens the breaker: 9 failures counted, every later
	// one is the outage's.
	if failed != 9 || waited != 3 {
		t.Errorf("%d failed and %d aborted while waiting, want 9 and 3", failed, waited)
	}
	// Each delivery made its one first attempt at most (a late one may
	// have found the breaker open already): no retry, no probe.
	if n := requests.Load(); n != int64(attempts) {
		t.Errorf("endpoint got %d requests, the deliveries started %d", n, attempts)
	}
}

// TestBreakerProbesAreFenced: a probe is an attempt like any other; once
// the fence closes, none goes out, and the deliveries waiting end Aborted.
func TestBreakerProbesAreFenced(t *testing.T) {
	var fenced atomic.Bool
	var askedWhileFenced atomic.Int64
	errLease := errors.New("lease deadline passed")
	cfg := Config{MaxAttempts: 1, BackoffMin: time.Second, BackoffMax: 2 * time.Second}
	cfg.Fence = func() error {
		if fenced.Load() {
			askedWhileFenced.Add(1)
			return errLease
		}
		return nil
	}
	s, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The first probe is at least BackoffMin (1 s) after the opening.
	results, requests := openBreaker(t, ctx, s, 12)
	fenced.Store(true)

	aborted, attempts := 0, 0
	for i, r := range results() {
		attempts += r.Attempts
		switch {
		case r.Attempts > 1:
			t.Errorf("send %d: %+v: a probe went out", i, r)
		case r.Outcome == Failed:
		case r.Outcome == Aborted && strings.Contains(r.Reason, errLease.Error()):
			aborted++
		default:
			t.Errorf("send %d: %+v, want failed before the opening or aborted by the fence", i, r)
		}
	}
	if aborted != 3 {
		t.Errorf("%d aborted by the fence, want the 3 left waiting", aborted)
	}
	if n := requests.Load(); n != int64(attempts) {
		t.Errorf("endpoint got %d requests, the deliveries started %d", n, attempts)
	}
	if askedWhileFenced.Load() < 3 {
		t.Errorf("fence asked %d times once closed, want every probe to ask", askedWhileFenced.Load())
	}
	if !s.Waiting() {
		t.Error("fenced probes closed the breaker: they say nothing about the endpoint")
	}
}

// TestBreakerMaxWaitEndsTheWait: an endpoint that never recovers holds a
// delivery for BreakerMaxWait at most; then it is sent regardless and
// fails after MaxAttempts, so a broadcast cannot stall for good.
func TestBreakerMaxWaitEndsTheWait(t *testing.T) {
	s, err := New(Config{MaxAttempts: 2, BackoffMin: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		BreakerMaxWait: 300 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results, _ := openBreaker(t, ctx, s, 12)

	for i, r := range results() {
		if r.Outcome != Failed || !strings.Contains(r.Reason, "gave up after") {
			t.Errorf("send %d: %+v, want failed once its wait was over", i, r)
		}
	}
	if ctx.Err() != nil {
		t.Error("the sends only ended with their context")
	}
}

func TestBreakerMetricsStartClosed(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(testConfig, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, name := range []string{"herald_delivery_breaker_open", "herald_delivery_breaker_openings_total"} {
		if got := gaugeOrCounter(t, reg, name); got != 0 {
			t.Errorf("%s = %v, want 0", name, got)
		}
	}
}
