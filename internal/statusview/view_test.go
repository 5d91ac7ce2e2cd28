package statusview

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
)

func TestCount(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := Count(in); got != want {
			t.Errorf("Count(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestMeterLine(t *testing.T) {
	m := &Meter{Total: 1000}
	t0 := time.Unix(100, 0)
	st := coordinator.Status{ID: "b", State: coordinator.StateRunning}
	m.Observe(st, t0)
	st.Counters.Scanned, st.Counters.Delivered = 500, 480
	if r := m.Observe(st, t0.Add(time.Second)); r != 500 {
		t.Fatalf("rate = %v, want 500", r)
	}
	line := m.Line(st, 10)
	for _, want := range []string{"b running", "[█████░░░░░]", "50.0%", "500/1,000", "500/s", "ETA 1s", "delivered 480"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
}

// A push broadcast's line says how many failures were dead tokens; a
// webhook's line is as it was.
func TestMeterLineInvalidTokens(t *testing.T) {
	m := &Meter{Total: 10}
	st := coordinator.Status{ID: "b", State: coordinator.StateDone}
	st.Counters = coordinator.Counters{Scanned: 10, Delivered: 7, Failed: 3}
	if line := m.Line(st, 10); strings.Contains(line, "invalid tokens") {
		t.Errorf("line %q names invalid tokens of a webhook broadcast", line)
	}
	st.Counters.InvalidTokens = 2
	if line := m.Line(st, 10); !strings.Contains(line, "failed 3 (2 invalid tokens)") {
		t.Errorf("line %q lacks the invalid tokens", line)
	}
}
