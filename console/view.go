package console

import (
	"net/url"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/statusview"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/worker/audience"
)

// View is what a page shows of one broadcast: its status with a rate, the
// progress it makes of the audience, and a summary of its spec.
type View struct {
	coordinator.Status
	// Total is the audience size when known (0: unknown), the bar's 100%.
	Total int64 `json:"total"`
	// Progress is the fraction done, 0 to 1: of the audience when its size
	// is known, else of the units.
	Progress float64 `json:"progress"`
	// ETASeconds is the time left at the current rate; 0 when unknown.
	ETASeconds float64 `json:"eta_s,omitempty"`
	// MsgsPerSec is the delivery rate, smoothed (RatePerSec counts every
	// finished record, as `herald status` does).
	MsgsPerSec float64 `json:"msgs_per_s"`
	// EndpointState says in words how sending goes: paused, waiting on the
	// endpoint, paced, sending, or "" when over.
	EndpointState string      `json:"endpoint_state"`
	Spec          SpecSummary `json:"spec"`
	// History is the delivery rate over the broadcast's life as this
	// console saw it; only in a single broadcast's view.
	History []Point `json:"history,omitempty"`
	// Point is the newest sample, in an update.
	Point *Point `json:"point,omitempty"`
}

// Point is one sample of the delivery rate: T in Unix milliseconds.
type Point struct {
	T    int64   `json:"t"`
	Rate float64 `json:"r"`
}

// SpecSummary is what a page may show of a spec: no template, no secret
// name, no credentials or query in the endpoint URL.
type SpecSummary struct {
	Audience    string  `json:"audience,omitempty"` // "synthetic, 200000" or the file's path
	Endpoint    string  `json:"endpoint,omitempty"` // scheme://host/path
	RatePerSec  float64 `json:"rate_per_sec,omitempty"`
	MaxInFlight int     `json:"max_in_flight,omitempty"`
	BatchSize   int     `json:"batch_size,omitempty"` // deliveries a request, when more than 1
	Signed      bool    `json:"signed,omitempty"`
	NotBefore   string  `json:"not_before,omitempty"`
	ExpiresAt   string  `json:"expires_at,omitempty"`
}

// summarize reads what a page may show of a spec, and the audience size.
func summarize(raw []byte) (SpecSummary, int64) {
	s, _, err := spec.Parse(raw, spec.Limits{})
	if err != nil {
		return SpecSummary{}, 0
	}
	sum := SpecSummary{RatePerSec: s.Endpoint.RatePerSec, MaxInFlight: s.Endpoint.MaxInFlight,
		Signed: s.Endpoint.SigningSecret != ""}
	if n := s.Endpoint.Batch(); n > 1 {
		sum.BatchSize = n
	}
	switch s.Audience.Source {
	case audience.SourceSynthetic:
		sum.Audience = "synthetic, " + statusview.Count(s.Audience.Count)
	case audience.SourcePostgres:
		sum.Audience = "postgres table " + s.Audience.Table // not the connection: a secret's name
	default:
		sum.Audience = s.Audience.Source + " " + s.Audience.Path
	}
	if u, err := url.Parse(s.Endpoint.URL); err == nil {
		sum.Endpoint = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	if s.NotBefore != nil {
		sum.NotBefore = s.NotBefore.Format(time.RFC3339)
	}
	if s.ExpiresAt != nil {
		sum.ExpiresAt = s.ExpiresAt.Format(time.RFC3339)
	}
	return sum, statusview.AudienceSize(raw)
}

// Chart history bounds: a point a step (at first the interval, at least a
// second), and when maxPoints are kept, pairs are merged and the step
// doubles, so a broadcast's whole life fits whatever its length.
const maxPoints = 600

// entry is the Run loop's own record of one broadcast.
type entry struct {
	status   coordinator.Status
	spec     SpecSummary
	specRead bool
	meter    statusview.Meter // records finished per second, as herald status
	// Delivery rate, smoothed like the meter's.
	msgsRate      float64
	lastDelivered int64
	lastAt        time.Time

	history  []Point
	step     time.Duration
	lastStep time.Time
	newPoint *Point
}

// observe takes a status sample at now: rates, and a chart point when a
// step has passed.
func (t *entry) observe(st coordinator.Status, now time.Time, minStep time.Duration) {
	st.RatePerSec = t.meter.Observe(st, now)
	d := st.Counters.Delivered
	if !t.lastAt.IsZero() {
		if dt := now.Sub(t.lastAt).Seconds(); dt > 0 {
			inst := float64(d-t.lastDelivered) / dt
			if t.msgsRate == 0 {
				t.msgsRate = inst
			} else {
				t.msgsRate = 0.7*t.msgsRate + 0.3*inst
			}
		}
	}
	t.lastDelivered, t.lastAt = d, now
	if st.State.Terminal() {
		t.msgsRate, st.RatePerSec = 0, 0
	}
	t.status = st
	t.newPoint = nil
	if st.State != coordinator.StateRunning && len(t.history) == 0 {
		return // nothing to chart yet
	}
	if t.step == 0 {
		t.step = max(minStep, time.Second)
	}
	ended := st.State.Terminal()
	if ended && len(t.history) > 0 && t.history[len(t.history)-1].Rate == 0 {
		return // the line ended at zero already
	}
	if !ended && !t.lastStep.IsZero() && now.Sub(t.lastStep) < t.step {
		return
	}
	t.lastStep = now
	p := Point{T: now.UnixMilli(), Rate: t.msgsRate}
	if len(t.history) == maxPoints {
		for i := range maxPoints / 2 {
			a, b := t.history[2*i], t.history[2*i+1]
			t.history[i] = Point{T: b.T, Rate: (a.Rate + b.Rate) / 2}
		}
		t.history = t.history[:maxPoints/2]
		t.step *= 2
	}
	t.history = append(t.history, p)
	t.newPoint = &p
}

// view is what pages show of t; withHistory copies the chart in.
func (t *entry) view(withHistory bool) View {
	st := t.status
	v := View{Status: st, Total: t.meter.Total, Spec: t.spec, MsgsPerSec: t.msgsRate, Point: t.newPoint}
	switch {
	case st.State == coordinator.StateDone:
		v.Progress = 1
	case v.Total > 0:
		v.Progress = min(float64(st.Counters.Scanned)/float64(v.Total), 1)
	case st.Units.Total > 0:
		v.Progress = float64(st.Units.Done) / float64(st.Units.Total)
	}
	if v.Total > 0 && st.RatePerSec > 0 && st.State == coordinator.StateRunning {
		v.ETASeconds = float64(max(v.Total-st.Counters.Scanned, 0)) / st.RatePerSec
	}
	v.EndpointState = endpointState(st, t.spec)
	if withHistory {
		v.History = append([]Point(nil), t.history...)
	}
	return v
}

func endpointState(st coordinator.Status, s SpecSummary) string {
	switch {
	case st.State.Terminal():
		return ""
	case st.State == coordinator.StatePaused:
		return "paused"
	case st.Endpoint != nil && st.Endpoint.Waiting:
		return "waiting on the endpoint since " + st.Endpoint.Since.UTC().Format(time.RFC3339) +
			": it has been failing; sends pause and probe until it answers"
	case st.State == coordinator.StatePending:
		return "pending"
	case s.RatePerSec > 0:
		return "paced at " + statusview.Count(int64(s.RatePerSec)) + "/s for the fleet"
	}
	return "sending"
}
