package worker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sink"
)

func deliveredAt(e *env, id string) int64 { return e.sink.Stats().Broadcasts[id].Delivered }

// TestPauseResumeCancel: a paused broadcast stops sending within a second
// and picks up where it stopped; a cancelled one stops for good.
func TestPauseResumeCancel(t *testing.T) {
	e := newEnv(t, sink.Config{Latency: time.Millisecond})
	e.startWorker("w1", workerOpts{intake: true})
	e.startWorker("w2", workerOpts{})
	ctx := context.Background()
	spec := synthetic("pausing", e.endpoint(), 20_000)
	spec["endpoint"].(map[string]any)["max_in_flight"] = 2
	e.trigger(spec)
	waitFor(t, 30*time.Second, "first deliveries", func() bool { return deliveredAt(e, "pausing") > 500 })

	if err := e.reg.SetState(ctx, "pausing", coordinator.Pause); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // workers obey within a second; sends in flight finish
	atPause := deliveredAt(e, "pausing")
	time.Sleep(time.Second)
	if got := deliveredAt(e, "pausing"); got != atPause {
		t.Fatalf("paused, yet deliveries went on: %d, then %d a second later", atPause, got)
	}
	if st := e.status("pausing"); st.State != coordinator.StatePaused {
		t.Fatalf("state %s, want paused", st.State)
	}

	if err := e.reg.SetState(ctx, "pausing", coordinator.Resume); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "deliveries after resume", func() bool { return deliveredAt(e, "pausing") > atPause+200 })

	if err := e.reg.SetState(ctx, "pausing", coordinator.Cancel); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	atCancel := deliveredAt(e, "pausing")
	time.Sleep(time.Second)
	st := e.status("pausing")
	if st.State != coordinator.StateCancelled {
		t.Fatalf("state %s, want cancelled", st.State)
	}
	if got := deliveredAt(e, "pausing"); got != atCancel || got >= int64(eligibleOf(t, 20_000)) {
		t.Fatalf("cancelled at %d delivered, then %d: sends went on or the broadcast finished", atCancel, got)
	}
	if d := e.sink.Stats().Broadcasts["pausing"].Duplicates; d != 0 {
		t.Errorf("pause and resume caused %d duplicates", d)
	}
}

// TestNotBeforeAndExpiry: nothing is sent before not_before; after
// expires_at nothing more is sent, the rest is counted expired, and the
// broadcast ends expired with its counters conserved.
func TestNotBeforeAndExpiry(t *testing.T) {
	e := newEnv(t, sink.Config{Latency: time.Millisecond})
	e.startWorker("w1", workerOpts{intake: true})
	start := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	end := start.Add(1500 * time.Millisecond)
	spec := synthetic("timed", e.endpoint(), 50_000)
	spec["endpoint"].(map[string]any)["max_in_flight"] = 2
	spec["not_before"] = start.UTC().Format(time.RFC3339)
	spec["expires_at"] = end.UTC().Format(time.RFC3339Nano)
	e.trigger(spec)

	waitFor(t, 10*time.Second, "registration", func() bool {
		st, err := e.reg.Status(context.Background(), "timed")
		return err == nil && st.State == coordinator.StatePending
	})
	st := e.waitDone("timed", 60*time.Second)
	stats := e.sink.Stats()
	if stats.FirstDeliveryAt.Before(start) {
		t.Errorf("first delivery at %v, before not_before %v", stats.FirstDeliveryAt, start)
	}
	// A send that began just before expires_at may finish just after it.
	if stats.LastDeliveryAt.After(end.Add(500 * time.Millisecond)) {
		t.Errorf("last delivery at %v, well after expires_at %v", stats.LastDeliveryAt, end)
	}
	if st.State != coordinator.StateExpired || st.Counters.Expired == 0 || st.Counters.Delivered == 0 {
		t.Fatalf("state %s, counters %+v: want expired with some delivered and some expired", st.State, st.Counters)
	}
	conserved(t, st)
	if st.Counters.Scanned != 50_000 {
		t.Errorf("scanned %d, want all 50,000 accounted for", st.Counters.Scanned)
	}
	if got := stats.Broadcasts["timed"].Delivered; got != st.Counters.Delivered {
		t.Errorf("endpoint has %d, counters say %d delivered", got, st.Counters.Delivered)
	}
}

// eligibleOf counts the reachable subscribers of the tests' synthetic
// audience (seed 7).
func eligibleOf(t *testing.T, count int) int {
	n := 0
	for i := range count {
		if reachableIn(t, count, i) {
			n++
		}
	}
	return n
}

// TestLeaveWhilePaused: a worker leaving gracefully while its broadcast is
// paused still hands its units back exactly, at once, not after the leave
// timeout with a failover's re-sends.
func TestLeaveWhilePaused(t *testing.T) {
	e := newEnv(t, sink.Config{Latency: time.Millisecond})
	e.startWorker("w1", workerOpts{intake: true})
	w2 := e.startWorker("w2", workerOpts{})
	spec := synthetic("paused-leave", e.endpoint(), 20_000)
	spec["endpoint"].(map[string]any)["max_in_flight"] = 4
	e.trigger(spec)
	waitFor(t, 30*time.Second, "first deliveries", func() bool { return deliveredAt(e, "paused-leave") > 1000 })
	ctx := context.Background()
	if err := e.reg.SetState(ctx, "paused-leave", coordinator.Pause); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	w2.stop(t)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("leaving while paused took %v: the units were not handed back", took)
	}
	if err := e.reg.SetState(ctx, "paused-leave", coordinator.Resume); err != nil {
		t.Fatal(err)
	}
	st := e.waitDone("paused-leave", 60*time.Second)
	got := e.sink.Stats().Broadcasts["paused-leave"]
	if st.State != coordinator.StateDone || got.Duplicates != 0 || got.Delivered != eligible(t, st) {
		t.Fatalf("state %s, delivered %d of %d, duplicates %d: want done, all, none", st.State, got.Delivered, eligible(t, st), got.Duplicates)
	}
}

// TestAudienceUnreadableThenBack: a file audience that cannot be read when
// the unit starts is retried, not skipped and not abandoned: once the file
// appears the broadcast completes with nothing lost.
func TestAudienceUnreadableThenBack(t *testing.T) {
	e := newEnv(t, sink.Config{})
	w := e.startWorker("w1", workerOpts{intake: true})
	path := filepath.Join(t.TempDir(), "late.jsonl")
	e.trigger(map[string]any{
		"id":       "late-file",
		"audience": map[string]any{"source": "file", "path": path},
		"template": map[string]any{"default_locale": "en", "locales": map[string]any{
			"en": map[string]string{"title": "Hi {{.name}}"}}},
		"endpoint": map[string]any{"url": e.endpoint()},
	})
	waitFor(t, 20*time.Second, "a failed open to be counted", func() bool {
		return counterValue(t, w, "herald_audience_errors_total") > 0
	})
	var lines []byte
	for i := range 500 {
		lines = fmt.Appendf(lines, "{\"id\":\"f%d\",\"name\":\"N%d\"}\n", i, i)
	}
	if err := os.WriteFile(path, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	st := e.waitDone("late-file", 30*time.Second)
	if st.State != coordinator.StateDone || st.Counters.Delivered != 500 || e.sink.Stats().Broadcasts["late-file"].Delivered != 500 {
		t.Fatalf("state %s, counters %+v: want all 500 delivered once the file appeared", st.State, st.Counters)
	}
}

func counterValue(t *testing.T, w *testWorker, name string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

// lateSecrets is a secret source whose secrets can appear later, as a
// mounted Kubernetes Secret does after an update.
type lateSecrets struct {
	mu   sync.Mutex
	vals map[string][]byte
}

func (s *lateSecrets) Secret(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vals[name]
	if !ok {
		return nil, fmt.Errorf("no secret %q here", name)
	}
	return v, nil
}

func (s *lateSecrets) set(name, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals[name] = []byte(v)
}

// TestUnitThatCannotStartIsRetried: a worker that lacks a secret the
// broadcast names keeps its claimed unit and retries, rather than sitting on
// it; once the secret is there, the broadcast completes with nothing lost.
func TestUnitThatCannotStartIsRetried(t *testing.T) {
	e := newEnv(t, sink.Config{})
	full := &lateSecrets{vals: map[string][]byte{"hook-key": []byte("0123456789abcdef-signing")}}
	late := &lateSecrets{vals: map[string][]byte{}}
	e.startWorker("w1", workerOpts{intake: true, tune: func(c *Config) { c.Secrets = full }})
	w2 := e.startWorker("w2", workerOpts{tune: func(c *Config) { c.Secrets = late }})
	spec := synthetic("late-secret", e.endpoint(), 5000)
	spec["endpoint"].(map[string]any)["signing_secret"] = "hook-key"
	e.trigger(spec)
	waitFor(t, 20*time.Second, "w2 to fail starting its unit", func() bool {
		return counterValue(t, w2, "herald_unit_start_errors_total") > 0
	})
	if st := e.status("late-secret"); st.State != coordinator.StateRunning || st.Workers["w2"].Units == 0 {
		t.Fatalf("state %s, shares %+v: want running with w2 still holding its unit", st.State, st.Workers)
	}
	late.set("hook-key", "0123456789abcdef-signing")
	st := e.waitDone("late-secret", 60*time.Second)
	got := e.sink.Stats().Broadcasts["late-secret"]
	if st.State != coordinator.StateDone || got.Delivered != eligible(t, st) || got.Duplicates != 0 {
		t.Fatalf("state %s, delivered %d of %d, duplicates %d", st.State, got.Delivered, eligible(t, st), got.Duplicates)
	}
	if st.Workers["w2"].Delivered == 0 {
		t.Errorf("w2 never sent its share: %+v", st.Workers)
	}
}
