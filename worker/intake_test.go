package worker

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/trigger"
	"github.com/herald-dev/herald/worker/delivery"
)

// produceRaw writes trigger values as they are, bypassing local validation,
// as a careless or hostile producer would.
func produceRaw(t *testing.T, e *env, values ...string) {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(e.stack.KafkaBrokers()...), Topic: devstack.BroadcastsTopic,
		Transport: tr, Balancer: &kafka.Hash{}}
	defer w.Close()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Key: []byte("same-partition"), Value: []byte(v)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// TestBadTriggersDoNotBlock: garbage, an invalid spec, a conflicting spec
// and an invalid spec reusing a registered id sit before good triggers on
// the same partition; each is recorded or counted with its reason, the
// registered spec stays untouched, and the good broadcasts behind them
// complete.
func TestBadTriggersDoNotBlock(t *testing.T) {
	e := newEnv(t, sink.Config{})
	w := e.startWorker("w1", workerOpts{intake: true})
	good := `{"id":"good","audience":{"source":"synthetic","count":100},` +
		`"template":{"default_locale":"en","locales":{"en":{"title":"Hi {{.name}}"}}},` +
		`"endpoint":{"url":"` + e.endpoint() + `"}}`
	conflicting := strings.Replace(good, `"count":100`, `"count":5`, 1)
	produceRaw(t, e,
		`not json {{{`,
		`{"id":"bad-template","audience":{"source":"synthetic","count":10},"template":{"default_locale":"en",`+
			`"locales":{"en":{"title":"Hi {{.name"}}},"endpoint":{"url":"http://127.0.0.1:1/"}}`,
		good,
		conflicting,
		good, // redelivered: harmless
		// Invalid, under the id "good" holds: a conflict to count and
		// commit, never a trigger to retry for ever.
		strings.Replace(good, `"count":100`, `"count":-1`, 1),
		strings.Replace(good, `"id":"good"`, `"id":"after-poison"`, 1),
	)
	st := e.waitDone("good", 30*time.Second)
	if st.State != coordinator.StateDone || st.Counters.Scanned != 100 {
		t.Fatalf("good broadcast: %s, %+v; want done with its 100 subscribers (not the conflicting 5)", st.State, st.Counters)
	}
	bad := e.status("bad-template")
	if bad.State != coordinator.StateRejected || !strings.Contains(bad.Reason, "template.locales.en.title") {
		t.Errorf("bad-template: state %s, reason %q; want rejected naming the field", bad.State, bad.Reason)
	}
	if st := e.waitDone("after-poison", 30*time.Second); st.State != coordinator.StateDone || st.Counters.Scanned != 100 {
		t.Fatalf("broadcast behind the poison trigger: %s, %+v; want done with 100", st.State, st.Counters)
	}
	if st := e.status("good"); st.State != coordinator.StateDone || st.Counters.Scanned != 100 {
		t.Errorf("good broadcast after the invalid reuse of its id: %s, %+v; want untouched", st.State, st.Counters)
	}
	waitFor(t, 5*time.Second, "every trigger counted", func() bool {
		return counterValue(t, w, "herald_triggers_total") == 7
	})
	for result, want := range map[string]float64{"unreadable": 1, "rejected": 1, "registered": 2, "conflict": 2, "duplicate": 1} {
		if got := labelled(t, w, "herald_triggers_total", "result", result); got != want {
			t.Errorf("triggers %s = %v, want %v", result, got, want)
		}
	}
}

// TestFleetRateIsShared: rate_per_sec limits the whole fleet, shared among
// the workers by the hash space each holds, so two workers together stay
// under it.
func TestFleetRateIsShared(t *testing.T) {
	e := newEnv(t, sink.Config{})
	e.startWorker("w1", workerOpts{intake: true})
	e.startWorker("w2", workerOpts{})
	spec := synthetic("rated", e.endpoint(), 3000)
	spec["endpoint"].(map[string]any)["rate_per_sec"] = 1000
	e.trigger(spec)
	st := e.waitDone("rated", 60*time.Second)
	stats := e.sink.Stats()
	took := stats.LastDeliveryAt.Sub(stats.FirstDeliveryAt)
	n := st.Counters.Delivered
	// n messages at 1000/s need at least (n-burst)/1000 s; each worker's
	// burst is a tenth of a second of its share.
	if min := time.Duration(float64(n-100) / 1000 * float64(time.Second)); took < min {
		t.Errorf("%d deliveries took %v: faster than the fleet's 1000/s allows (%v)", n, took, min)
	}
	for i, per := range stats.PerSecond {
		if per > 1200 {
			t.Errorf("second %d carried %d deliveries, above the 1000/s limit", i, per)
		}
	}
	t.Logf("%d deliveries in %v, per second %v", n, took, stats.PerSecond)
}

// TestHandlerEndpoints: /healthz, /readyz and /metrics answer as operators
// and Kubernetes expect.
func TestHandlerEndpoints(t *testing.T) {
	e := newEnv(t, sink.Config{})
	w := e.startWorker("w1", workerOpts{})
	srv := httptest.NewServer(w.w.Handler())
	defer srv.Close()
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "herald_lease_deadline_slack_seconds"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %q, want 200 containing %q", path, resp.StatusCode, body, want)
		}
	}
	w.stop(t)
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz after leaving: %d, want 503", resp.StatusCode)
	}
}

func labelled(t *testing.T, w *testWorker, name, label, value string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestDevstackTopicsAreTheDefaults: a worker left at its default topics
// finds the ones devstack creates (devstack spells them out; see there).
func TestDevstackTopicsAreTheDefaults(t *testing.T) {
	if devstack.BroadcastsTopic != trigger.DefaultTopic {
		t.Errorf("devstack.BroadcastsTopic %q, trigger.DefaultTopic %q", devstack.BroadcastsTopic, trigger.DefaultTopic)
	}
	if devstack.DeadLettersTopic != delivery.DefaultDeadLetterTopic {
		t.Errorf("devstack.DeadLettersTopic %q, delivery.DefaultDeadLetterTopic %q", devstack.DeadLettersTopic, delivery.DefaultDeadLetterTopic)
	}
}

func TestUnderDir(t *testing.T) {
	tests := []struct {
		dir, path string
		want      bool
	}{
		{"/data", "/data/followers.jsonl", true},
		{"/data/", "/data/a/b.jsonl", true},
		{"/data", "/data/../etc/passwd", false},
		{"/data", "/data2/x", false},
		{"/data", "/data", false},
		{"/data", "/etc/herald/secrets/push-auth", false},
		{"/data", "data/x", false}, // relative to a working directory that is not /
		{"/data", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.dir+" "+tt.path, func(t *testing.T) {
			if got := underDir(tt.dir, tt.path); got != tt.want {
				t.Errorf("underDir(%q, %q) = %v, want %v", tt.dir, tt.path, got, tt.want)
			}
		})
	}
}
