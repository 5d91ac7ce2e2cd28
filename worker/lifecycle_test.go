package worker

import (
	"context"
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
