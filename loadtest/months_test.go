package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/sink"
)

func TestMonthsConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"sizes", []string{"--scenarios", "soak,endpointdown,kafkadown,concurrent", "--soak-broadcasts", "300",
			"--soak-subscribers", "50", "--outage-subscribers", "20000", "--endpoint-down-for", "5s", "--endpoint-refuse", "0.01",
			"--kafka-down-for", "3s", "--kafka-refuse", "0.1", "--concurrent-broadcasts", "10", "--concurrent-worker-cap", "64"}, true},
		{"too few soak broadcasts for a quarter", []string{"--soak-broadcasts", "3"}, false},
		{"refuse most", []string{"--endpoint-refuse", "0.9"}, false},
		{"refuse none", []string{"--kafka-refuse", "-0.1"}, false},
		{"negative outage", []string{"--kafka-down-for", "-1s"}, false},
		{"no concurrent broadcasts", []string{"--concurrent-broadcasts", "-1"}, false},
		{"no audience", []string{"--outage-subscribers", "-5"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkFlags(t, tt.args, tt.ok) })
	}
	// A run that names no scenario leaves the long ones out.
	def := Config{}.withDefaults().Scenarios
	for _, s := range allScenarios {
		if want := !slices.Contains(longScenarios, s); slices.Contains(def, s) != want {
			t.Errorf("default scenarios %v: %s included %v, want %v", def, s, !want, want)
		}
	}
	plan := plan(Config{Scenarios: []string{scSoak, scConcurrent, scKafkaDown, scEndpointDown}}.withDefaults())
	var names []string
	for _, sc := range plan {
		names = append(names, sc.name)
	}
	if got := strings.Join(names, ","); got != "endpointdown,kafkadown,concurrent,soak" {
		t.Errorf("plan %s", got)
	}
}

func TestTally(t *testing.T) {
	done := coordinator.Status{State: coordinator.StateDone}
	failedOne := done
	failedOne.Counters.Failed = 1
	var tl tally
	tl.add("a", done, sink.BroadcastStats{Delivered: 10}, 10)
	tl.add("b", failedOne, sink.BroadcastStats{Delivered: 9}, 10)
	var res Result
	tl.fill(&res, 10, 2)
	if res.State != "done" || res.Lost != 0 || res.Delivered != 19 || res.Failed != 1 || res.Eligible != 20 || len(tl.firstBad) != 0 {
		t.Fatalf("all exact: %+v, bad %v", res, tl.firstBad)
	}

	tl.add("c", coordinator.Status{State: coordinator.StateRunning}, sink.BroadcastStats{Delivered: 4, Duplicates: 2}, 10)
	res = Result{}
	tl.fill(&res, 10, 4) // one never followed
	if res.State != "running" || res.Lost != 6+10 || res.Duplicates != 2 || res.Reason != "2 of 4 broadcasts done" {
		t.Errorf("one running, one missing: %+v", res)
	}
	if len(tl.firstBad) != 1 || !strings.HasPrefix(tl.firstBad[0], "c: running") {
		t.Errorf("bad %v", tl.firstBad)
	}
}

func TestSoakChecks(t *testing.T) {
	mark := func(i int, inUse, keys int64) soakMark {
		return soakMark{Broadcasts: i, DBSizeInUse: inUse << 20, Keys: keys}
	}
	// Readings every 100 of 400 broadcasts; the windows compared are the
	// second quarter (100 to 200) and the last (301 to 400).
	tests := []struct {
		name   string
		marks  []soakMark
		inUse  bool
		keysOK bool
	}{
		{"flat", []soakMark{mark(0, 1, 3), mark(100, 30, 900), mark(200, 33, 1000), mark(300, 31, 950), mark(400, 35, 1000)}, true, true},
		// A compaction just before the quarter's reading and none before
		// the end's: single readings say x2, the saw's peaks are level.
		{"sawing", []soakMark{mark(100, 10, 1000), mark(200, 20, 1000), mark(300, 12, 1000), mark(400, 20, 1000)}, true, true},
		{"at the limit", []soakMark{mark(100, 10, 1000), mark(400, 12, 1200)}, true, true},
		{"size growing", []soakMark{mark(100, 10, 1000), mark(200, 20, 1000), mark(400, 40, 1000)}, false, true},
		{"keys growing", []soakMark{mark(100, 10, 1000), mark(200, 10, 2000), mark(400, 10, 4000)}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res Result
			res.checkFlat(&soakReport{Marks: tt.marks}, 400)
			if len(res.Checks) != 2 || res.Checks[0].OK != tt.inUse || res.Checks[1].OK != tt.keysOK {
				t.Fatalf("checks %+v, want size ok=%v, keys ok=%v", res.Checks, tt.inUse, tt.keysOK)
			}
		})
	}
	var res Result
	res.checkFlat(&soakReport{Marks: []soakMark{mark(100, 10, 1000), mark(300, 10, 1000)}}, 400)
	if len(res.Checks) != 1 || res.Checks[0].OK {
		t.Errorf("a soak cut short: checks %+v, want one failed", res.Checks)
	}

	var rep soakReport
	spent := make([]float64, 50)
	for i := range spent {
		spent[i] = float64(i + 1)
	}
	rep.setTimes(spent)
	if rep.FirstMeanS != 3 || rep.LastMeanS != 48 || rep.BroadcastP50S != 26 || rep.BroadcastMaxS != 50 {
		t.Errorf("times %+v", rep)
	}
}

func TestWriteFigures(t *testing.T) {
	letters := int64(3)
	rs := []Result{
		{Scenario: "steady-1"},
		{Scenario: "kafkadown", Outage: &serviceOutage{What: "kafka", DownAtS: 1, UpAtS: 21, DeadLetters: &letters, DeadLetterKeys: &letters,
			After: &afterBroadcast{ID: "x-after", State: "done"}}},
		{Scenario: "concurrent", Concurrent: &concurrentReport{Workers: map[string]*workerPeaks{"worker-1": {PeakFDs: 7}}}},
		{Scenario: "soak", Soak: &soakReport{Broadcasts: 8, Marks: []soakMark{{Broadcasts: 2}}}},
	}
	var b strings.Builder
	writeFigures(&b, rs)
	out := b.String()
	for _, want := range []string{"kafkadown:\n  kafka down 1.0s to 21.0s", "dead letters on the topic: 3", "after: x-after done",
		"concurrent:\n", "worker-1: open files 0 idle, 7 peak", "soak:\n", "after     2: etcd"} {
		if !strings.Contains(out, want) {
			t.Errorf("figures lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "steady-1") {
		t.Error("a result without figures of its own is listed")
	}
}

// The dead letters are read back from the topic itself, every partition
// from its start: letters of other broadcasts are left out, a key written
// twice is counted once among the keys.
func TestReadDeadLetters(t *testing.T) {
	ctx := context.Background()
	k, err := devstack.StartKafka(ctx, devstack.KafkaConfig{Topics: []string{devstack.DeadLettersTopic}, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers()...), Topic: devstack.DeadLettersTopic, Balancer: &kafka.RoundRobin{},
		BatchTimeout: time.Millisecond, Transport: tr}
	var msgs []kafka.Message
	letter := func(id, key string) kafka.Message {
		v, _ := json.Marshal(map[string]string{"broadcast_id": id, "idempotency_key": key})
		return kafka.Message{Key: []byte(id), Value: v}
	}
	for i := range 25 {
		msgs = append(msgs, letter("b1", fmt.Sprintf("k%d", i)), letter("other", fmt.Sprintf("k%d", i)))
	}
	msgs = append(msgs, letter("b1", "k3"))
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	letters, keys, err := readDeadLetters(ctx, k.Brokers(), "b1")
	if err != nil || letters != 26 || keys != 25 {
		t.Fatalf("read %d letters, %d keys, %v; want 26 and 25", letters, keys, err)
	}
	if letters, keys, err := readDeadLetters(ctx, k.Brokers(), "none"); err != nil || letters != 0 || keys != 0 {
		t.Fatalf("another broadcast: %d, %d, %v", letters, keys, err)
	}
}

func TestRefusedEligible(t *testing.T) {
	n, err := refusedEligible(20_000, 1, "lt-x", 0.05)
	if err != nil {
		t.Fatal(err)
	}
	// About 5% of the 90% eligible.
	if n < 800 || n > 1000 {
		t.Errorf("%d refused of 20,000, want about 900", n)
	}
	if again, _ := refusedEligible(20_000, 1, "lt-x", 0.05); again != n {
		t.Errorf("%d, then %d: not deterministic", n, again)
	}
	if other, _ := refusedEligible(20_000, 1, "lt-y", 0.05); other == n {
		t.Logf("another broadcast id refuses as many (%d): possible, but the keys differ", other)
	}
}

// TestSmokeMonths runs the four scenarios of running for months end to
// end at a tiny size. Tens of seconds, not a measurement; soak's flatness
// needs more broadcasts than this to mean anything, so only its other
// checks are asserted.
func TestSmokeMonths(t *testing.T) {
	bin := smokeBinary(t)
	cfg := Config{
		Scenarios: []string{scEndpointDown, scKafkaDown, scConcurrent, scSoak}, Binary: bin, Out: t.TempDir(),
		ChaosWorkers: 2, LeaseTTL: 2 * time.Second, MaxInFlight: 8, Timeout: 2 * time.Minute,
		OutageSubscribers: 20_000, EndpointDownAfter: 200 * time.Millisecond, EndpointDownFor: 2 * time.Second, EndpointRefuse: 0.01,
		KafkaDownAfter: 200 * time.Millisecond, KafkaDownFor: 2 * time.Second,
		ConcurrentBroadcasts: 6, ConcurrentSubscribers: 500, ConcurrentWorkerCap: 16,
		SoakBroadcasts: 8, SoakSubscribers: 50,
	}
	results, table := runSmoke(t, cfg)
	if len(results) != 4 {
		t.Fatalf("%d results, want 4", len(results))
	}
	for _, r := range results {
		if r.Lost != 0 || r.Duplicates != 0 || r.State != "done" || r.Eligible == 0 {
			t.Errorf("%s: %s, delivered %d + failed %d of %d, lost %d, duplicates %d",
				r.Scenario, r.State, r.Delivered, r.Failed, r.Eligible, r.Lost, r.Duplicates)
		}
		for _, c := range r.Checks {
			// A soak of a few broadcasts is too short to be flat.
			if !c.OK && c.Name != "etcd size in use flat" && c.Name != "etcd keys live flat" {
				t.Errorf("%s: check %s failed: %s", r.Scenario, c.Name, c.Detail)
			}
		}
	}
	if o := results[0].Outage; o == nil || o.RequestsDuringOutage == 0 || results[0].Failed != o.RefusedEligible || o.RefusedEligible == 0 {
		t.Errorf("endpointdown: %+v", o)
	}
	if o := results[1].Outage; o == nil || o.DeadLetterKeys == nil || *o.DeadLetterKeys != results[1].Failed || o.After == nil {
		t.Errorf("kafkadown: %+v", o)
	}
	if c := results[2].Concurrent; c == nil || c.Done != 6 || len(c.Workers) != 2 {
		t.Errorf("concurrent: %+v", c)
	}
	if s := results[3].Soak; s == nil || s.Done != 8 || len(s.Marks) < 3 || s.FreshReadyS == 0 || len(s.WorkerRSSMiB) != 2 {
		t.Errorf("soak: %+v", s)
	}
	for _, want := range []string{"endpointdown:\n", "soak:\n"} {
		if !strings.Contains(table, want) {
			t.Errorf("output lacks the figures %q", want)
		}
	}
}
