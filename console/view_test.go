package console

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
)

// TestChartStaysBounded: however long a broadcast runs, its chart keeps
// at most maxPoints, spread over its whole life, and ends at zero.
func TestChartStaysBounded(t *testing.T) {
	var e entry
	start := time.Unix(1_800_000_000, 0)
	st := coordinator.Status{ID: "b", State: coordinator.StateRunning}
	const ticks = 10_000 // seconds, at a tick a second
	for i := range ticks {
		st.Counters.Delivered = int64(i) * 100
		e.observe(st, start.Add(time.Duration(i)*time.Second), time.Second)
	}
	if n := len(e.history); n > maxPoints || n < maxPoints/2 {
		t.Fatalf("%d points after %d ticks, want between %d and %d", n, ticks, maxPoints/2, maxPoints)
	}
	if first := time.UnixMilli(e.history[0].T); first.Sub(start) > time.Duration(ticks)*time.Second/time.Duration(maxPoints/2) {
		t.Errorf("the chart starts at +%s: the start of the broadcast is lost", first.Sub(start))
	}
	if r := e.history[len(e.history)-1].Rate; r < 90 || r > 110 {
		t.Errorf("rate %.1f, want about 100/s", r)
	}
	st.State = coordinator.StateDone
	e.observe(st, start.Add(ticks*time.Second+time.Millisecond), time.Second)
	if last := e.history[len(e.history)-1]; last.Rate != 0 {
		t.Errorf("a finished broadcast's chart ends at %.1f, want 0", last.Rate)
	}
}

// TestViewFigures: the progress comes from the audience when its size is
// known, else from the units; the ETA from the rate; the endpoint's state
// in words. Only a running broadcast has an ETA.
func TestViewFigures(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name     string
		total    int64
		spec     SpecSummary
		st       coordinator.Status
		progress float64
		eta      bool
		endpoint string
	}{
		{"audience known", 1000, SpecSummary{}, coordinator.Status{State: coordinator.StateRunning,
			Counters: coordinator.Counters{Scanned: 250}}, 0.25, true, "sending"},
		{"units only", 0, SpecSummary{}, coordinator.Status{State: coordinator.StateRunning,
			Units: coordinator.UnitCounts{Total: 8, Done: 2}}, 0.25, false, "sending"},
		{"done", 1000, SpecSummary{}, coordinator.Status{State: coordinator.StateDone,
			Counters: coordinator.Counters{Scanned: 990}}, 1, false, ""},
		{"paused", 1000, SpecSummary{RatePerSec: 50}, coordinator.Status{State: coordinator.StatePaused}, 0, false, "paused"},
		{"paced", 1000, SpecSummary{RatePerSec: 50}, coordinator.Status{State: coordinator.StateRunning}, 0, true, "paced at 50/s for the fleet"},
		{"waiting", 1000, SpecSummary{}, coordinator.Status{State: coordinator.StateRunning,
			Endpoint: &coordinator.EndpointStatus{Waiting: true, Since: now}}, 0, true, "waiting on the endpoint since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := entry{spec: tt.spec}
			e.meter.Total = tt.total
			st := tt.st
			e.observe(st, now, time.Second)
			st.Counters.Scanned += 100
			e.observe(st, now.Add(time.Second), time.Second)
			v := e.view(false)
			want := tt.progress
			if tt.total > 0 && tt.st.State != coordinator.StateDone {
				want = float64(st.Counters.Scanned) / float64(tt.total)
			}
			if v.Progress != want {
				t.Errorf("progress %.3f, want %.3f", v.Progress, want)
			}
			if (v.ETASeconds > 0) != tt.eta {
				t.Errorf("ETA %.1f s, want one: %v", v.ETASeconds, tt.eta)
			}
			if !strings.HasPrefix(v.EndpointState, tt.endpoint) || (tt.endpoint == "" && v.EndpointState != "") {
				t.Errorf("endpoint state %q, want %q", v.EndpointState, tt.endpoint)
			}
		})
	}
}

// TestSummarizeShowsNoSecrets: a page sees the endpoint without its
// credentials or query, whether it is signed but not the secret's name,
// and the batch size only when deliveries are batched.
func TestSummarizeShowsNoSecrets(t *testing.T) {
	raw := []byte(`{"id":"s","audience":{"source":"synthetic","count":1000,"seed":1},
		"template":{"default_locale":"en","locales":{"en":{"title":"Hi"}}},
		"endpoint":{"url":"https://user:pw@push.example/v1/send?token=abc","signing_secret":"hook-key","batch_size":100}}`)
	sum, n := summarize(raw)
	if n != 1000 || sum.Endpoint != "https://push.example/v1/send" || !sum.Signed || sum.BatchSize != 100 {
		t.Fatalf("summary %+v (audience %d)", sum, n)
	}
	if b, _ := json.Marshal(sum); strings.Contains(string(b), "hook-key") || strings.Contains(string(b), "pw") || strings.Contains(string(b), "abc") {
		t.Fatalf("summary shows a secret: %s", b)
	}
	unbatched, _ := summarize([]byte(strings.Replace(string(raw), `,"batch_size":100`, "", 1)))
	if unbatched.BatchSize != 0 {
		t.Fatalf("batch size %d for a spec without one", unbatched.BatchSize)
	}
}
