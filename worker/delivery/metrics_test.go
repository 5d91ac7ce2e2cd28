package delivery

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(testConfig, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.sleepFor = func(d time.Duration) time.Duration { return 0 }
	e := newEndpoint(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	ctx := context.Background()
	s.Send(ctx, e.url(), testKey, nil) // 503 then 200
	s.Send(ctx, e.url(), testKey, nil) // 404
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	s.Send(cancelled, e.url(), testKey, nil)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName() + labels(m)
			switch {
			case m.Counter != nil:
				got[name] = m.Counter.GetValue()
			case m.Histogram != nil:
				got[name+" count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		`herald_delivery_attempts_total{class="2xx"}`:        1,
		`herald_delivery_attempts_total{class="4xx"}`:        1,
		`herald_delivery_attempts_total{class="5xx"}`:        1,
		`herald_delivery_attempts_total{class="error"}`:      0,
		`herald_delivery_retries_total`:                      1,
		`herald_delivery_results_total{outcome="delivered"}`: 1,
		`herald_delivery_results_total{outcome="failed"}`:    1,
		`herald_delivery_results_total{outcome="aborted"}`:   1,
		`herald_delivery_send_seconds count`:                 3,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}

	if _, err := New(testConfig, nil, reg); err == nil {
		t.Error("a second Sender registered the same metrics without error")
	}
	shared := prometheus.NewRegistry()
	for _, name := range []string{"a", "b"} {
		s, err := New(testConfig, nil, prometheus.WrapRegistererWith(prometheus.Labels{"sender": name}, shared))
		if err != nil {
			t.Fatalf("Sender %s under its own label: %v", name, err)
		}
		s.Close()
	}
}

func labels(m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return ""
	}
	s := "{"
	for i, l := range m.GetLabel() {
		if i > 0 {
			s += ","
		}
		s += l.GetName() + `="` + l.GetValue() + `"`
	}
	return s + "}"
}
