package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/audience"
)

// TestFileAudienceEndToEnd sends a small, awkward file audience through
// Kafka, etcd and HTTP and checks every body the endpoint accepted, the
// counters, and the dead letter of the subscriber whose template failed.
func TestFileAudienceEndToEnd(t *testing.T) {
	e := newEnv(t, sink.Config{Strict: true})
	e.keepBodies = true
	lines := []string{
		`{"id":"u1","name":"Zoë","locale":"fr","code":"A1"}`,
		`{"id":"u2","name":"李雷","locale":"zh-TW","code":"B2"}`,
		`not json at all`,
		`{"id":"u3","locale":"en","code":"C3"}`,
		`{"id":"u4","name":"Ann","reachable":false,"code":"D4"}`,
		`{"name":"no id"}`,
		`{"id":"u5","name":"عمر","locale":"ar","code":"E5"}`,
		``,
		`{"id":"u6","name":"Bob \"the\" builder\u0001","code":"F6"}`,
	}
	path := filepath.Join(t.TempDir(), "audience.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.startWorker("w1", workerOpts{intake: true})
	e.startWorker("w2", workerOpts{intake: true})
	id := e.trigger(map[string]any{
		"id":             "file-e2e",
		"audience":       map[string]any{"source": "file", "path": path},
		"only_reachable": true,
		"template": map[string]any{"default_locale": "en", "locales": map[string]any{
			"en": map[string]string{"title": "Hi {{.name}}", "body": "Code {{.code}}"},
			"fr": map[string]string{"title": "Bonjour {{.name}}", "body": "Code {{.code}}"},
			"zh": map[string]string{"title": "{{.name}}，你好", "body": "优惠码：{{.code}}"},
		}},
		"endpoint": map[string]any{"url": e.endpoint(), "max_in_flight": 4},
	})
	st := e.waitDone(id, 30*time.Second)

	if st.State != coordinator.StateDone {
		t.Fatalf("state %s (%s), want done", st.State, st.Reason)
	}
	want := coordinator.Counters{Scanned: 8, Unreachable: 1, Invalid: 2, Delivered: 4, Failed: 1}
	if st.Counters != want {
		t.Errorf("counters %+v, want %+v", st.Counters, want)
	}
	conserved(t, st)
	if len(st.InvalidSamples) != 2 || st.InvalidSamples[0].Line != 3 || st.InvalidSamples[1].Line != 6 {
		t.Errorf("invalid samples %+v, want lines 3 and 6", st.InvalidSamples)
	}

	wantBodies := map[string]string{
		"u1": `{"broadcast_id":"file-e2e","subscriber_id":"u1","idempotency_key":"%s","locale":"fr","message":{"body":"Code A1","title":"Bonjour Zoë"}}`,
		"u2": `{"broadcast_id":"file-e2e","subscriber_id":"u2","idempotency_key":"%s","locale":"zh","message":{"body":"优惠码：B2","title":"李雷，你好"}}`,
		"u5": `{"broadcast_id":"file-e2e","subscriber_id":"u5","idempotency_key":"%s","locale":"en","message":{"body":"Code E5","title":"Hi عمر"}}`,
		"u6": `{"broadcast_id":"file-e2e","subscriber_id":"u6","idempotency_key":"%s","locale":"en","message":{"body":"Code F6","title":"Hi Bob \"the\" builder\u0001"}}`,
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.bodies) != len(wantBodies) {
		t.Errorf("endpoint accepted %d bodies, want %d", len(e.bodies), len(wantBodies))
	}
	for sub, format := range wantBodies {
		key := templates.Key(id, sub)
		got, ok := e.bodies[key]
		if !ok {
			t.Errorf("no delivery for %s", sub)
			continue
		}
		if want := fmt.Sprintf(format, key); string(got) != want {
			t.Errorf("body for %s:\n got %s\nwant %s", sub, got, want)
		}
	}
	dl := readDeadLetters(t, e, 1)
	if dl[0]["subscriber_id"] != "u3" || !strings.Contains(fmt.Sprint(dl[0]["reason"]), "name") {
		t.Errorf("dead letter %v, want u3 with a reason naming the missing attribute", dl[0])
	}
}

func readDeadLetters(t *testing.T, e *env, n int) []map[string]any {
	t.Helper()
	var out []map[string]any
	// A letter's partition depends on its broadcast id: read them all.
	for p := 0; p < 4 && len(out) < n; p++ {
		out = append(out, readPartition(t, e, p, n-len(out))...)
	}
	if len(out) != n {
		t.Fatalf("found %d dead letters, want %d", len(out), n)
	}
	return out
}

func readPartition(t *testing.T, e *env, p, n int) []map[string]any {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.stack.KafkaBrokers(), Topic: devstack.DeadLettersTopic,
		Partition: p, MaxWait: 100 * time.Millisecond, ReadLagInterval: -1})
	defer r.Close()
	var out []map[string]any
	for len(out) < n {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			break // nothing more in this partition
		}
		var v map[string]any
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("dead letter is not JSON: %s", m.Value)
		}
		out = append(out, v)
	}
	return out
}

// fleetRun triggers a synthetic broadcast on running workers, calls mid
// once a third of it is delivered, and returns its final status and the
// endpoint's counts.
func fleetRun(t *testing.T, e *env, id string, count int, mid func()) (coordinator.Status, sink.BroadcastStats) {
	t.Helper()
	e.trigger(synthetic(id, e.endpoint(), count))
	waitFor(t, 60*time.Second, "a third of the broadcast", func() bool {
		return e.sink.Stats().Broadcasts[id].Delivered >= int64(count/3)
	})
	mid()
	st := e.waitDone(id, 90*time.Second)
	return st, e.sink.Stats().Broadcasts[id]
}

func eligible(t *testing.T, st coordinator.Status) int64 {
	return st.Counters.Scanned - st.Counters.Unreachable - st.Counters.Invalid
}

// TestKillMidBroadcast abandons a worker mid-broadcast. Nothing is lost;
// duplicates are bounded by the dead worker's checkpoint windows plus what
// it had in flight, and the survivors finish.
func TestKillMidBroadcast(t *testing.T) {
	e := newEnv(t, sink.Config{Latency: 200 * time.Microsecond})
	ws := []*testWorker{
		e.startWorker("w1", workerOpts{intake: true}),
		e.startWorker("w2", workerOpts{}),
		e.startWorker("w3", workerOpts{}),
	}
	const count = 40_000
	var held int
	st, got := fleetRun(t, e, "kill", count, func() {
		held = e.status("kill").Workers["w2"].Units
		ws[1].kill(t)
	})
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s, want done", st.State)
	}
	conserved(t, st)
	if st.Counters.Scanned != count {
		t.Errorf("scanned %d, want every one of %d records", st.Counters.Scanned, count)
	}
	if lost := eligible(t, st) - got.Delivered - st.Counters.Failed; lost != 0 {
		t.Errorf("lost %d (eligible %d, delivered %d, failed %d)", lost, eligible(t, st), got.Delivered, st.Counters.Failed)
	}
	// The re-send window is one checkpoint window of the worker, over all
	// the slots it held (1000 records or 1 s), plus what its last
	// checkpoint listed as pending and what was in flight (each at most
	// max_in_flight sending plus max_in_flight queued): it does not grow
	// with the slots held.
	const maxInFlight = 16
	bound := int64(1000 + 2*2*maxInFlight)
	t.Logf("killed w2 holding %d slots: duplicates %d (bound %d), delivered %d", held, got.Duplicates, bound, got.Delivered)
	if got.Duplicates > bound {
		t.Errorf("duplicates %d above the checkpoint-window bound %d", got.Duplicates, bound)
	}
	if st.Workers["w1"].Delivered == 0 || st.Workers["w3"].Delivered == 0 {
		t.Errorf("survivors' shares %+v: both should have worked", st.Workers)
	}
}

// TestGracefulLeaveAndJoinAreExact: a worker leaving on SIGTERM and one
// joining mid-broadcast cause no duplicate and no loss.
func TestGracefulLeaveAndJoinAreExact(t *testing.T) {
	for _, tc := range []struct {
		name string
		mid  func(t *testing.T, e *env, ws []*testWorker)
	}{
		{"leave", func(t *testing.T, e *env, ws []*testWorker) { ws[1].stop(t) }},
		{"join", func(t *testing.T, e *env, ws []*testWorker) { e.startWorker("w3", workerOpts{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sink.Config{Latency: 200 * time.Microsecond})
			ws := []*testWorker{e.startWorker("w1", workerOpts{intake: true}), e.startWorker("w2", workerOpts{})}
			const count = 30_000
			st, got := fleetRun(t, e, tc.name, count, func() { tc.mid(t, e, ws) })
			if st.State != coordinator.StateDone {
				t.Fatalf("state %s, want done", st.State)
			}
			conserved(t, st)
			if lost := eligible(t, st) - got.Delivered - st.Counters.Failed; lost != 0 || st.Counters.Scanned != count {
				t.Errorf("lost %d, scanned %d of %d", lost, st.Counters.Scanned, count)
			}
			if got.Duplicates != 0 {
				t.Errorf("duplicates %d, want 0", got.Duplicates)
			}
			if tc.name == "join" && st.Workers["w3"].Delivered == 0 {
				t.Errorf("the joiner delivered nothing: %+v", st.Workers)
			}
			var shares int64
			for _, w := range st.Workers {
				shares += w.Delivered
			}
			if shares != st.Counters.Delivered || st.Workers["w1"].Delivered == 0 || st.Workers["w2"].Delivered == 0 {
				t.Errorf("shares %+v sum to %d of %d delivered; each worker that sent must be credited", st.Workers, shares, st.Counters.Delivered)
			}
			t.Logf("%s: delivered %d, shares %+v", tc.name, got.Delivered, st.Workers)
		})
	}
}

// TestEndpointFaults: 429 and 503 with Retry-After, 500s and timeouts are
// retried until delivered; 400 fails at once and is dead-lettered.
func TestEndpointFaults(t *testing.T) {
	e := newEnv(t, sink.Config{Rate429: 0.2, Rate5xx: 0.2, RetryAfter: time.Second, Seed: 3})
	refused := map[string]bool{}
	for i := range 2000 {
		if i%97 == 0 {
			refused[templates.Key("faults", fmt.Sprintf("s7-%d", i))] = true
		}
	}
	e.answer = func(key string, w http.ResponseWriter) bool {
		if refused[key] {
			http.Error(w, "no such device", http.StatusBadRequest)
			return true
		}
		return false
	}
	e.startWorker("w1", workerOpts{intake: true})
	spec := synthetic("faults", e.endpoint(), 2000)
	// With 40% of answers failing, 8 attempts would exhaust about one
	// message in 1,500; 20 attempts make that about 1e-8, so every failure
	// counted is a 400.
	spec["endpoint"].(map[string]any)["max_attempts"] = 20
	e.trigger(spec)
	st := e.waitDone("faults", 60*time.Second)
	conserved(t, st)
	got := e.sink.Stats()
	var refusedEligible int64
	for i := range 2000 {
		if refused[templates.Key("faults", fmt.Sprintf("s7-%d", i))] && reachable(t, i) {
			refusedEligible++
		}
	}
	if st.Counters.Failed != refusedEligible {
		t.Errorf("failed %d, want the %d refused with 400", st.Counters.Failed, refusedEligible)
	}
	if d := got.Broadcasts["faults"].Delivered; d != eligible(t, st)-refusedEligible {
		t.Errorf("delivered %d, want %d", d, eligible(t, st)-refusedEligible)
	}
	if got.Injected429 == 0 || got.Injected500+got.Injected503 == 0 {
		t.Errorf("no faults injected: %+v", got)
	}
	t.Logf("injected 429 %d, 500 %d, 503 %d; failed %d", got.Injected429, got.Injected500, got.Injected503, st.Counters.Failed)
}

// reachable tells whether synthetic subscriber i of seed 7 is reachable.
func reachable(t *testing.T, i int) bool { return reachableIn(t, 2000, i) }

func reachableIn(t *testing.T, count, i int) bool {
	t.Helper()
	s, err := audience.Open(audience.Spec{Source: audience.SourceSynthetic, Count: int64(count), Seed: 7},
		sharding.Cursor{Seq: uint64(i)}, audience.Limits{})
	if err != nil || !s.Next() {
		t.Fatalf("synthetic record %d: %v", i, err)
	}
	defer s.Close()
	return s.Record().Reachable()
}
