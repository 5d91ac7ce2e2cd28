package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/demo"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/internal/fleet"
	"github.com/herald-dev/herald/internal/sleep"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/trigger"
)

// What soak and concurrent share: they run many broadcasts on one fleet
// rather than the one broadcast run.execute follows.

// startFleet makes the run's fleet, every worker with extra flags besides
// the harness's, and starts its sc.workers workers together. It returns
// how long each took from its start to /readyz answering 200. The caller
// closes r.fleet.
func (r *run) startFleet(ctx context.Context, extra ...string) ([]float64, error) {
	cfg := r.h.cfg
	logDir := filepath.Join(r.h.out, "logs", r.sc.name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	fl, err := fleet.New(fleet.Config{
		Binary: r.h.binary, Etcd: r.st.EtcdEndpoint(), Kafka: r.st.KafkaBrokers()[0],
		Args: append(append([]string(nil), r.h.workerArgs...), extra...), LogDir: logDir,
		ReadyTimeout: cfg.LeaseTTL + 20*time.Second,
	})
	if err != nil {
		return nil, err
	}
	r.fleet = fl
	ready := make([]float64, r.sc.workers)
	errs := make([]error, r.sc.workers)
	var wg sync.WaitGroup
	for i := range r.sc.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready[i], errs[i] = r.startTimed(ctx, workerID(i+1))
		}()
	}
	wg.Wait()
	return ready, errors.Join(errs...)
}

// startTimed starts worker id and returns the seconds until it was ready.
func (r *run) startTimed(ctx context.Context, id string) (float64, error) {
	t := time.Now()
	if _, err := r.fleet.Start(ctx, id); err != nil {
		return 0, err
	}
	return time.Since(t).Seconds(), nil
}

// triggerDemo produces the demo broadcast id with n subscribers, sent to
// the run's endpoint.
func (r *run) triggerDemo(ctx context.Context, id string, n int64) error {
	raw := demo.SpecJSON(id, n, r.h.cfg.Seed, r.sink.url("/push"), r.h.cfg.MaxInFlight)
	_, err := trigger.Trigger(ctx, r.st.KafkaBrokers(), devstack.BroadcastsTopic, raw, spec.Limits{})
	return err
}

// waitEnd polls broadcast id every `every` until it is in a terminal
// state, and returns that status.
func (r *run) waitEnd(ctx context.Context, id string, every time.Duration) (coordinator.Status, error) {
	for {
		if st, err := r.st.reg.Status(ctx, id); err == nil && st.State.Terminal() {
			return st, nil
		}
		if !sleep.For(ctx, every) {
			return coordinator.Status{}, fmt.Errorf("loadtest: %s: broadcast %s did not finish: %w", r.sc.name, id, ctx.Err())
		}
	}
}

// tally adds up, over many broadcasts of eligible subscribers each, what
// the endpoint counted against what Herald recorded as failed.
type tally struct {
	done, broadcasts                    int
	delivered, duplicates, failed, lost int64
	firstBad                            []string // a few broadcasts not done, or not exact
	notDone                             string   // the first state other than done, if any
}

// add counts broadcast id, which ended in st, with the endpoint's counts
// got for it.
func (t *tally) add(id string, st coordinator.Status, got sink.BroadcastStats, eligible int64) {
	t.broadcasts++
	lost := max(eligible-got.Delivered-st.Counters.Failed, 0)
	t.delivered += got.Delivered
	t.duplicates += got.Duplicates
	t.failed += st.Counters.Failed
	t.lost += lost
	if st.State == coordinator.StateDone {
		t.done++
	} else if t.notDone == "" {
		t.notDone = string(st.State)
	}
	if (st.State != coordinator.StateDone || lost != 0 || got.Duplicates != 0) && len(t.firstBad) < 10 {
		t.firstBad = append(t.firstBad, fmt.Sprintf("%s: %s, delivered %d, failed %d, duplicates %d, lost %d",
			id, st.State, got.Delivered, st.Counters.Failed, got.Duplicates, lost))
	}
}

// fill sets res's delivery figures from the tally of what should have
// been `want` broadcasts: its state is done only if all of them were.
func (t *tally) fill(res *Result, eligibleEach int64, want int) {
	res.Eligible = eligibleEach * int64(want)
	res.Delivered, res.Duplicates, res.Failed = t.delivered, t.duplicates, t.failed
	// A broadcast never followed to its end lost all it did not deliver.
	res.Lost = t.lost + max(res.Eligible-eligibleEach*int64(t.broadcasts), 0)
	res.State = string(coordinator.StateDone)
	switch {
	case t.notDone != "":
		res.State = t.notDone
	case t.broadcasts < want:
		res.State = "unfinished"
	}
	if t.done != want {
		res.Reason = fmt.Sprintf("%d of %d broadcasts done", t.done, want)
	}
}

// sendLatency sets res's send latency quantiles from the histograms of
// every worker running now.
func (r *run) sendLatency(ctx context.Context, res *Result) {
	var send hist
	for _, p := range r.fleet.Procs() {
		if s, err := scrape(ctx, r.client, p.HTTPAddr); err == nil {
			_ = send.add(s.send) // one binary, one set of buckets
		}
	}
	res.setLatency(send)
}
