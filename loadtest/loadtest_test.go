package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// kafka-go keeps a process-wide connection pool goroutine for its
		// default transport, which the Reader uses.
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
	)
}

func TestHistQuantile(t *testing.T) {
	h := hist{bounds: []float64{1, 2, 4, 8}, counts: []uint64{10, 50, 90, 100}, count: 100}
	tests := []struct {
		q, want float64
	}{
		{0.1, 1},    // the whole first bucket, from 0 to 1
		{0.05, 0.5}, // halfway through it
		{0.5, 2},    // exactly the top of the second
		{0.7, 3},    // halfway through the third (2..4)
		{0.99, 7.6}, // 9 of 10 into the fourth (4..8)
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.q), func(t *testing.T) {
			if got := h.quantile(tt.q); math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
	if !math.IsNaN((hist{}).quantile(0.5)) {
		t.Error("empty histogram: want NaN")
	}
	over := hist{bounds: []float64{1}, counts: []uint64{0}, count: 5}
	if got := over.quantile(0.5); got != 1 {
		t.Errorf("all beyond the last bound: %v, want the bound", got)
	}
}

func TestHistAddAndLive(t *testing.T) {
	l := newLiveHist()
	for _, d := range []time.Duration{100 * time.Microsecond, 700 * time.Microsecond, 3 * time.Millisecond, time.Minute} {
		l.observe(d)
	}
	a := l.snapshot()
	if a.count != 4 || a.counts[0] != 1 || a.counts[1] != 2 || a.counts[len(a.counts)-1] != 3 {
		t.Fatalf("snapshot %+v", a)
	}
	var sum hist
	if err := sum.add(a); err != nil {
		t.Fatal(err)
	}
	if err := sum.add(a); err != nil {
		t.Fatal(err)
	}
	if sum.count != 8 || sum.counts[1] != 4 {
		t.Fatalf("sum %+v", sum)
	}
	if err := sum.add(hist{bounds: []float64{1}, counts: []uint64{1}, count: 1}); err == nil {
		t.Error("adding other buckets: want an error")
	}
}

func TestWindowBound(t *testing.T) {
	tests := []struct {
		name        string
		units       int
		rate        float64
		maxInFlight int
		want        int64
	}{
		{"fast unit: 1000 records", 1, 9000, 64, 1064},
		{"slow unit: one second", 1, 300, 64, 364},
		{"rate shared by units", 4, 2000, 64, 4*500 + 64},
		{"no units", 0, 5000, 64, 64},
		{"rate unknown", 2, 0, 8, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := windowBound(tt.units, tt.rate, tt.maxInFlight); got != tt.want {
				t.Fatalf("windowBound = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestWindowDuplicates(t *testing.T) {
	es := []*event{
		{Kind: "kill", dupBefore: 0},
		{Kind: "restart"},
		{Kind: "kill", dupBefore: 300},
		{Kind: "stop", dupBefore: 350},
	}
	windowDuplicates(es, 1000)
	for i, want := range map[int]int64{0: 300, 2: 50, 3: 650} {
		if es[i].Duplicates == nil || *es[i].Duplicates != want {
			t.Errorf("event %d: %v, want %d", i, es[i].Duplicates, want)
		}
	}
	if es[1].Duplicates != nil {
		t.Error("a restart got a window")
	}
}

func TestJudge(t *testing.T) {
	cfg := Config{LeaseTTL: 2 * time.Second, Kills: 1}.withDefaults()
	fo, dup, bound := 3.5, int64(10), int64(100)
	res := Result{State: "done", Eligible: 10, Delivered: 10, Events: []*event{
		{Kind: "kill", Worker: "w1", FailoverS: &fo, Duplicates: &dup, DuplicateBound: &bound},
	}}
	judge(&res, scenario{kind: scKill9}, cfg)
	if !res.OK() {
		t.Fatalf("checks %+v, want all ok", res.Checks)
	}
	slow := 4.5
	res.Checks, res.Events[0].FailoverS = nil, &slow
	judge(&res, scenario{kind: scKill9}, cfg)
	if res.OK() {
		t.Fatal("a failover past TTL + 2s passed")
	}
	res = Result{State: "done", Eligible: 10, Delivered: 9, Lost: 1, Duplicates: 1}
	judge(&res, scenario{kind: scScaleout, workers: 1, final: 1}, cfg)
	var failed []string
	for _, c := range res.Checks {
		if !c.OK {
			failed = append(failed, c.Name)
		}
	}
	if strings.Join(failed, ",") != "lost 0,duplicates 0" {
		t.Errorf("failed checks %v", failed)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", nil, true},
		{"lists", []string{"--scenarios", "steady, kill9", "--workers", "1,3", "--rss-subscribers", "1000,2_000"}, true},
		{"unknown scenario", []string{"--scenarios", "steady,chaos"}, false},
		{"one chaos worker", []string{"--chaos-workers", "1"}, false},
		{"short lease", []string{"--lease-ttl", "1s"}, false},
		{"stop within the lease", []string{"--stop-for", "3s", "--lease-ttl", "5s"}, false},
		{"too many workers", []string{"--workers", "1,40"}, false},
		{"bad list", []string{"--workers", "one"}, false},
		{"one rss size", []string{"--rss-subscribers", "1000"}, false},
		{"cpu profile", []string{"--scenarios", "steady", "--cpu-profile", "10s"}, true},
		{"negative cpu profile", []string{"--cpu-profile", "-1s"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkFlags(t, tt.args, tt.ok) })
	}
	var stderr bytes.Buffer
	if code := runMain(context.Background(), []string{"--scenarios", "nope"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "nope") {
		t.Errorf("invalid flags: exit %d, %q; want 2 naming the scenario", code, stderr.String())
	}
}

// --cpu-profile reaches the steady runs only: they alone start their
// workers with --pprof and profile them.
func TestCPUProfilePlan(t *testing.T) {
	cfg := Config{Scenarios: []string{scSteady, scKill9}, CPUProfile: 10 * time.Second}.withDefaults()
	for _, sc := range plan(cfg) {
		if want := map[bool]time.Duration{true: 10 * time.Second}[sc.kind == scSteady]; sc.cpuProfile != want {
			t.Errorf("%s: cpu profile %v, want %v", sc.name, sc.cpuProfile, want)
		}
	}
}

func TestChart(t *testing.T) {
	fo := 2.3
	res := Result{Scenario: "kill9", Subscribers: 1000, Workers: 3, MsgsPerS: 900,
		Series: &series{StartS: 0.2, Counts: []int64{500, 900, 950, 400, 880}},
		Events: []*event{{AtS: 1.5, Kind: "kill", Worker: "worker-2", FailoverS: &fo}, {AtS: 4, Kind: "restart", Worker: "worker-2"}},
	}
	dir := t.TempDir()
	for _, name := range []string{"c.svg", "c.png"} {
		path := filepath.Join(dir, name)
		if err := chart(path, res); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
			t.Fatalf("%s: %v, %v", name, st, err)
		}
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "c.svg"))
	for _, want := range []string{"kill worker-2", "restart worker-2", "claimed 2.3s"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if err := chart(filepath.Join(dir, "none.svg"), Result{}); err != nil {
		t.Errorf("no series: %v", err)
	}

	// The JSON keeps what the chart needs, so --replot redraws it.
	line, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	again := t.TempDir()
	if err := os.WriteFile(filepath.Join(again, "results.json"), append(line, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := runMain(context.Background(), []string{"--replot", again}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("--replot exit %d", code)
	}
	redrawn, err := os.ReadFile(filepath.Join(again, "kill9.svg"))
	if err != nil || !bytes.Contains(redrawn, []byte("claimed 2.3s")) {
		t.Errorf("replot: %v, chart with the events: %v", err, bytes.Contains(redrawn, []byte("claimed 2.3s")))
	}
}

// smokeBinary builds herald for an end-to-end test of the harness, which
// starts real processes: skipped with -short.
func smokeBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs worker processes")
	}
	bin := filepath.Join(t.TempDir(), "herald")
	if err := buildHerald(context.Background(), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// runSmoke runs the harness with cfg, its log in the test's, and fails
// the test if it could not run. It returns the results and the table the
// harness printed, which it also logs.
func runSmoke(t *testing.T, cfg Config) ([]Result, string) {
	t.Helper()
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	results, err := Run(context.Background(), cfg, &out, log)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	return results, out.String()
}

// TestSmoke runs the harness end to end at a tiny size: real etcd, Kafka,
// sink and worker processes, both baselines, a steady run and a sigstop
// with its zombie check. Seconds, not a measurement.
func TestSmoke(t *testing.T) {
	bin := smokeBinary(t)
	cfg := Config{
		Scenarios: []string{scBaseline, scSteady, scSigstop}, Binary: bin, Out: t.TempDir(),
		Subscribers: 3000, Workers: []int{1}, ChaosSubscribers: 60_000, ChaosWorkers: 2,
		LeaseTTL: 2 * time.Second, StopAfter: 500 * time.Millisecond, MaxInFlight: 8, Timeout: 2 * time.Minute,
	}
	results, table := runSmoke(t, cfg)
	if len(results) != 4 {
		t.Fatalf("%d results, want plain, diy, steady-1, sigstop", len(results))
	}
	for _, r := range results {
		if r.Delivered != r.Eligible || r.Lost != 0 || r.Eligible == 0 {
			t.Errorf("%s: delivered %d of %d, lost %d", r.Scenario, r.Delivered, r.Eligible, r.Lost)
		}
	}
	if r := results[2]; r.Scenario != "steady-1" || !r.OK() || r.SendP50Ms == nil || r.WorkerPeakRSSMiB == 0 || r.EtcdWritesPerS == 0 || r.RatioToPlain == nil {
		t.Errorf("steady: %+v", r)
	}
	// The stop may come after the broadcast on a busy machine; when it
	// happened, the zombie was checked.
	if r := results[3]; len(r.Events) > 0 && r.Zombie == nil {
		t.Errorf("sigstop stopped a worker but has no zombie report: %+v", r)
	}
	for _, f := range []string{"results.json", "results.md", "steady-1.svg", "steady-1.png"} {
		if _, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil {
			t.Errorf("output: %v", err)
		}
	}
	if !strings.Contains(table, "| steady-1 | herald | 1 |") {
		t.Error("no Markdown table row for steady-1")
	}
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// checkFlags parses args as the command line and validates the Config they
// make; it fails t unless that succeeds exactly when ok.
func checkFlags(t *testing.T, args []string, ok bool) {
	t.Helper()
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg Config
	cfg.registerFlags(fs)
	err := fs.Parse(args)
	if err == nil {
		err = cfg.Validate()
	}
	if (err == nil) != ok {
		t.Fatalf("%v, want ok=%v", err, ok)
	}
}
