package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestFleetConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"fleet scenarios", []string{"--scenarios", "rollout,idle,retrykill,etcdout"}, true},
		{"sizes", []string{"--rollout-workers", "2", "--rollout-rounds", "1", "--idle-workers", "1000", "--outage-for", "3s"}, true},
		{"too many idle workers", []string{"--idle-workers", "1001"}, false},
		{"too many rollout workers", []string{"--rollout-workers", "17"}, false},
		{"negative outage", []string{"--outage-for", "-1s"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkFlags(t, tt.args, tt.ok) })
	}

	// None is in the default set; each selected one is planned once, the
	// retry variants twice.
	def := Config{}.withDefaults()
	for _, s := range fleetScenarios {
		if def.has(s) {
			t.Errorf("%s runs by default", s)
		}
	}
	cfg := Config{Scenarios: fleetScenarios, LeaseTTL: 3 * time.Second}.withDefaults()
	var names []string
	for _, sc := range plan(cfg) {
		names = append(names, sc.name)
	}
	want := []string{"rollout", "idle-100", "retrykill-kill9", "retrykill-sigstop", "etcdout"}
	if !slices.Equal(names, want) {
		t.Errorf("plan %v, want %v", names, want)
	}
	if cfg.Fleet.OutageFor != 6*time.Second {
		t.Errorf("outage %v, want twice the lease TTL", cfg.Fleet.OutageFor)
	}
}

func TestParseCPUTicks(t *testing.T) {
	// A command name with spaces and a parenthesis, as a process may name
	// itself; utime 1234 and stime 56 are fields 14 and 15.
	stat := []byte("4242 (herald (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 56 0 0 20 0 9 0 100 0 0\n")
	if got, err := parseCPUTicks(stat); err != nil || got != 1290 {
		t.Fatalf("parseCPUTicks = %d, %v; want 1290", got, err)
	}
	for _, bad := range []string{"no parenthesis", "1 (x) S 1 2"} {
		if _, err := parseCPUTicks([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	if _, err := procCPUTicks("self"); err != nil {
		t.Errorf("own stat: %v", err)
	}
}

func TestMemberWatchCounts(t *testing.T) {
	put := func(id string, create int64) *clientv3.Event {
		return &clientv3.Event{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: []byte(memberKey(id)), CreateRevision: create}}
	}
	del := func(id string) *clientv3.Event {
		return &clientv3.Event{Type: clientv3.EventTypeDelete, Kv: &mvccpb.KeyValue{Key: []byte(memberKey(id))}}
	}
	other := &clientv3.Event{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: []byte("/herald/broadcasts/b/state")}}
	w := &memberWatch{last: map[string]int64{"a": 5, "b": 6, "c": 7}, lost: map[string]int{}, created: map[string]int{}}
	evs := []*clientv3.Event{
		put("a", 5),            // a's record updated: same lease
		del("b"), put("b", 20), // b's lease expired, then a new one
		put("c", 30),           // c re-created, its deletion not seen
		del("b"), put("b", 40), // b loses its new lease too
		put("d", 50), // a joiner
		other,
	}
	for i, ev := range evs {
		ev.Kv.ModRevision = int64(100 + i)
	}
	w.add(evs)
	tests := []struct {
		id            string
		lost, created int
	}{{"a", 0, 0}, {"b", 2, 2}, {"c", 1, 1}, {"d", 0, 1}}
	for _, tt := range tests {
		if lost, created := w.counts(tt.id); lost != tt.lost || created != tt.created {
			t.Errorf("%s: lost %d, created %d; want %d, %d", tt.id, lost, created, tt.lost, tt.created)
		}
	}
	if lost := w.lostByMember(); len(lost) != 2 || lost["b"] != 2 || lost["c"] != 1 {
		t.Errorf("losses %v", lost)
	}
	if n := w.eventsSince(99, 107); n != 8 {
		t.Errorf("%d events, want 8", n)
	}
	if n := w.eventsSince(101, 103); n != 2 {
		t.Errorf("%d events after 101 to 103, want 2", n)
	}
}

func TestWorkerWindow(t *testing.T) {
	tests := []struct {
		name  string
		units int
		rate  float64
		want  int64
	}{
		{"one unit, fast", 1, 9000, 1064},
		{"many units share one window", 30, 9000, 1064},
		{"slow: one second", 4, 300, 364},
		{"no units", 0, 5000, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := workerWindow(tt.units, tt.rate, 64); got != tt.want {
				t.Fatalf("workerWindow = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRolloutReportAndJudge(t *testing.T) {
	ro := &rollout{deliveredAtRoll: 100_000, deliveredAtEnd: 250_000}
	ro.rep = rolloutReport{SteadyMsgsPerS: 20_000, StartS: 5, EndS: 15, Replacements: 8, Planned: 8, OpenUnitsMax: 40, MaxUnitsPerWorker: 12}
	res := Result{State: "done", Eligible: 400_000, Delivered: 400_000, ElapsedS: 35}
	ro.report(nil, &res)
	rep := res.Fleet.Rollout
	if rep.RolloutMsgsPerS != 15_000 || rep.RolloutToSteady != 0.75 || rep.AfterMsgsPerS == nil || *rep.AfterMsgsPerS != 7_500 {
		t.Fatalf("rates %+v", rep)
	}
	cfg := Config{}.withDefaults()
	judge(&res, scenario{kind: scRollout, judge: ro.judge}, cfg)
	var failed []string
	for _, c := range res.Checks {
		if !c.OK {
			failed = append(failed, c.Name)
		}
	}
	want := []string{"open units at most 8 × 4 workers", "rollout throughput at least 0.8 of steady"}
	if !slices.Equal(failed, want) {
		t.Errorf("failed %v, want %v", failed, want)
	}

	// Cut short by the end of the broadcast: the rate runs to the end.
	ro = &rollout{deliveredAtRoll: 100_000}
	ro.rep = rolloutReport{SteadyMsgsPerS: 20_000, StartS: 5, Replacements: 3, Planned: 8}
	res = Result{Delivered: 300_000, ElapsedS: 15}
	ro.report(nil, &res)
	if rep := res.Fleet.Rollout; rep.RolloutMsgsPerS != 20_000 || rep.AfterMsgsPerS != nil {
		t.Errorf("cut short: %+v", rep)
	}
}

func TestJudgeFleetStandalone(t *testing.T) {
	res := Result{Fleet: &fleetReport{Idle: &idleReport{Workers: 3, Started: 3, LeaseLosses: 1, LostBy: []string{"worker-2"}}}}
	judge(&res, scenario{kind: scIdle, standalone: runIdle, judge: judgeIdle}, Config{}.withDefaults())
	if len(res.Checks) != 2 || !res.Checks[0].OK || res.Checks[1].OK {
		t.Errorf("checks %+v: want started ok and lease losses failed, nothing about a broadcast", res.Checks)
	}
}

// TestFleetSmoke runs the fleet-scale scenarios end to end at a tiny size.
// It checks that each measures, not what it measures: at this size their
// targets do not apply.
func TestFleetSmoke(t *testing.T) {
	bin := smokeBinary(t)
	cfg := Config{
		Scenarios: fleetScenarios, Binary: bin, Out: t.TempDir(),
		ChaosSubscribers: 60_000, ChaosWorkers: 2, LeaseTTL: 2 * time.Second, MaxInFlight: 8, Timeout: 2 * time.Minute,
		Kills: 1, KillEvery: 500 * time.Millisecond, StopAfter: 500 * time.Millisecond,
		Fleet: FleetConfig{
			RolloutWorkers: 2, RolloutRounds: 1, RolloutSubscribers: 150_000, RolloutAfter: time.Second,
			IdleWorkers: 3, IdleFor: 2 * time.Second, IdleSettle: 500 * time.Millisecond, IdleNoIntake: true,
			OutageAfter: 300 * time.Millisecond,
		},
	}
	results, _ := runSmoke(t, cfg)
	by := map[string]Result{}
	for _, r := range results {
		by[r.Scenario] = r
		if r.Fleet == nil && !strings.HasPrefix(r.Scenario, "retrykill") {
			t.Errorf("%s: no fleet figures", r.Scenario)
		}
		if r.Scenario != "idle-3" && (r.Lost != 0 || r.Delivered != r.Eligible || r.Eligible == 0) {
			t.Errorf("%s: delivered %d of %d, lost %d", r.Scenario, r.Delivered, r.Eligible, r.Lost)
		}
	}
	if len(results) != 5 {
		t.Fatalf("%d results, want 5", len(results))
	}
	if rep := by["rollout"].Fleet.Rollout; rep == nil || rep.Planned != 2 || len(rep.OpenUnits) == 0 || rep.SteadyMsgsPerS == 0 {
		t.Errorf("rollout: %+v", rep)
	}
	// An idle worker may use less than one clock tick (10 ms) in 2 s:
	// every worker measured is what can be asked.
	if rep := by["idle-3"].Fleet.Idle; rep == nil || rep.Started != 3 || len(rep.CPUTop) != 3 || rep.RSSMiBMax == 0 {
		t.Errorf("idle: %+v", rep)
	}
	if by["retrykill-kill9"].Endpoint == nil || by["retrykill-kill9"].Endpoint.Injected5xx == 0 {
		t.Errorf("retrykill: the endpoint refused nothing: %+v", by["retrykill-kill9"].Endpoint)
	}
	// The outage may come after the broadcast on a busy machine; when it
	// happened, every worker was followed through it.
	if rep := by["etcdout"].Fleet.Outage; rep == nil || (rep.AtS > 0 && len(rep.Workers) != 2) {
		t.Errorf("etcdout: %+v", rep)
	}
}
