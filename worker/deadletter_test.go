package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

// flakyLetters refuses every batch while down is set, as a Kafka cluster
// that is away would, and writes through to the real topic otherwise.
type flakyLetters struct {
	next    delivery.DeadLetterBatchWriter
	down    atomic.Bool
	refused atomic.Int64
}

func (f *flakyLetters) WriteBatch(ctx context.Context, ds []delivery.DeadLetter) error {
	if f.down.Load() {
		f.refused.Add(int64(len(ds)))
		return errors.New("kafka: broker not available")
	}
	return f.next.WriteBatch(ctx, ds)
}

// TestDeadLettersWaitForKafka: while the dead-letter topic cannot be
// written, failed records stay unfinished, so no checkpoint counts a
// failure that is not recorded and the broadcast does not end; the other
// subscribers are still delivered. Once Kafka takes writes again every
// letter is written once and the broadcast ends exactly.
func TestDeadLettersWaitForKafka(t *testing.T) {
	e := newEnv(t, sink.Config{})
	const n = 2000
	refused := map[string]bool{}
	for i := range n {
		if i%50 == 0 {
			refused[templates.Key("kafka-away", fmt.Sprintf("s7-%d", i))] = true
		}
	}
	e.answer = func(key string, w http.ResponseWriter) bool {
		if refused[key] {
			http.Error(w, "no such device", http.StatusBadRequest)
			return true
		}
		return false
	}
	flaky := &flakyLetters{}
	flaky.down.Store(true)
	e.startWorker("w1", workerOpts{intake: true, dead: func(next delivery.DeadLetterBatchWriter) delivery.DeadLetterBatchWriter {
		flaky.next = next
		return flaky
	}})
	e.trigger(synthetic("kafka-away", e.endpoint(), n))

	var refusedEligible int64
	for i := range n {
		if refused[templates.Key("kafka-away", fmt.Sprintf("s7-%d", i))] && reachableIn(t, n, i) {
			refusedEligible++
		}
	}
	waitFor(t, 30*time.Second, "the deliveries that can succeed", func() bool {
		return e.sink.Stats().Broadcasts["kafka-away"].Delivered > 0 && flaky.refused.Load() > 0
	})
	time.Sleep(2 * time.Second) // several checkpoint intervals with Kafka away
	st := e.status("kafka-away")
	if st.State == coordinator.StateDone {
		t.Fatalf("broadcast done while its dead letters could not be written: %+v", st.Counters)
	}
	if st.Counters.Failed != 0 {
		t.Errorf("checkpoints count %d failures whose letters were never written", st.Counters.Failed)
	}

	flaky.down.Store(false)
	st = e.waitDone("kafka-away", 60*time.Second)
	conserved(t, st)
	if st.Counters.Failed != refusedEligible {
		t.Errorf("failed %d, want the %d refused with 400", st.Counters.Failed, refusedEligible)
	}
	letters := readDeadLetters(t, e, int(refusedEligible))
	seen := map[string]int{}
	for _, l := range letters {
		seen[fmt.Sprint(l["idempotency_key"])]++
	}
	for k, c := range seen {
		if !refused[k] || c != 1 {
			t.Errorf("dead letter for key %s written %d times (refused: %v)", k, c, refused[k])
		}
	}
	t.Logf("%d letters refused while Kafka was away, %d written once it was back", flaky.refused.Load(), len(letters))
}
