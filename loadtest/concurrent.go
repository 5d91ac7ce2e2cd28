package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/sleep"
)

// concurrent triggers many broadcasts at once and checks that each
// worker's resources stay bounded by its --max-in-flight (the sends in
// flight over all its broadcasts), and by a few goroutines per broadcast,
// not by every broadcast's max_in_flight.

// The bound each worker is checked against. Its --max-in-flight cap
// bounds its sender goroutines, and its one connection pool keeps at most
// cap + cap/8 + 2 connections to one host (dials in progress and
// connections being closed count too; every broadcast here sends to one
// sink): one file descriptor and two goroutines (net/http's read and
// write loops) each. A broadcast it runs adds a few goroutines (its
// reader, checkpointer, slot watcher and state watcher, and now and then
// a hand-back or release in progress). The allowances are for what a
// worker has whatever it sends: its etcd and Kafka connections, its HTTP
// server, logs and runtime (about 20 descriptors and 50 goroutines when
// idle).
const (
	goroutinesPerConn      = 2
	goroutinesPerBroadcast = 8
	fdAllowance            = 64
	goroutineAllowance     = 128
	concurrentSampleEvery  = 250 * time.Millisecond
)

// poolConns is the most connections a worker's pool opens to one host.
func poolConns(capacity int) int { return capacity + capacity/8 + 2 }

// concurrentReport is the concurrent scenario's own figures.
type concurrentReport struct {
	Broadcasts      int   `json:"broadcasts"`
	Done            int   `json:"done"`
	SubscribersEach int64 `json:"subscribers_each"`
	EligibleEach    int64 `json:"eligible_each"`
	// WorkerCap is every worker's --max-in-flight; BroadcastMaxInFlight
	// each broadcast's endpoint.max_in_flight.
	WorkerCap            int `json:"worker_max_in_flight"`
	BroadcastMaxInFlight int `json:"broadcast_max_in_flight"`
	// TriggerS is how long producing every trigger took. From the first
	// trigger: LastRunningS is when the last broadcast was first seen
	// running (started), LastClaimedS when the last was first seen with
	// every unit claimed, FirstDoneS and LastDoneS when the first and the
	// last was seen done. Polled every half second.
	TriggerS     float64 `json:"trigger_s"`
	LastRunningS float64 `json:"last_running_s"`
	LastClaimedS float64 `json:"last_claimed_s"`
	FirstDoneS   float64 `json:"first_done_s"`
	LastDoneS    float64 `json:"last_done_s"`
	// FDBound and GoroutineBound are what each worker is checked against.
	FDBound        int `json:"fd_bound"`
	GoroutineBound int `json:"goroutine_bound"`
	// Workers are each worker's readings.
	Workers  map[string]*workerPeaks `json:"workers"`
	NotExact []string                `json:"not_exact,omitempty"`
}

// workerPeaks is one worker's resources before the triggers and at their
// largest after.
type workerPeaks struct {
	IdleFDs        int     `json:"idle_fds"`
	PeakFDs        int     `json:"peak_fds"`
	IdleGoroutines int     `json:"idle_goroutines"`
	PeakGoroutines int     `json:"peak_goroutines"`
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	Samples        int     `json:"samples"`
}

// runConcurrent is the concurrent scenario.
func runConcurrent(ctx context.Context, r *run) (Result, error) {
	cfg := r.h.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	n, subs, capacity := cfg.ConcurrentBroadcasts, cfg.ConcurrentSubscribers, cfg.ConcurrentWorkerCap
	eligible, err := r.h.eligible(subs)
	if err != nil {
		return Result{}, err
	}
	if err := r.sink.reset(ctx); err != nil {
		return Result{}, err
	}
	_, err = r.startFleet(ctx, "--max-in-flight", strconv.Itoa(capacity))
	if r.fleet != nil {
		defer r.fleet.Close(30 * time.Second)
	}
	if err != nil {
		return Result{}, err
	}
	rep := &concurrentReport{Broadcasts: n, SubscribersEach: subs, EligibleEach: eligible, WorkerCap: capacity,
		BroadcastMaxInFlight: cfg.MaxInFlight, Workers: map[string]*workerPeaks{},
		FDBound:        poolConns(capacity) + fdAllowance,
		GoroutineBound: capacity + goroutinesPerConn*poolConns(capacity) + goroutinesPerBroadcast*n + goroutineAllowance}
	// What the workers hold before any broadcast: every sample after is
	// compared with the bound, this one only reported.
	for _, p := range r.fleet.Procs() {
		s := r.sampleResources(ctx, p.ID, p.Pid(), p.HTTPAddr)
		rep.Workers[p.ID] = &workerPeaks{IdleFDs: s.fds, IdleGoroutines: s.goroutines}
	}
	if r.rev0, err = r.st.revision(ctx); err != nil {
		return Result{}, err
	}

	// The sampler runs from just before the first trigger to the last
	// broadcast's end.
	sctx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		r.samplePeaks(sctx, rep)
	}()
	defer func() { stopSampling(); sampling.Wait() }()

	stamp := time.Now().Unix()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("lt-concurrent-%d-%03d", stamp, i+1)
	}
	r.t0 = time.Now()
	var g errgroup.Group
	g.SetLimit(16) // producers at once: the triggers land within a second or so
	for _, id := range ids {
		g.Go(func() error { return r.triggerDemo(ctx, id, subs) })
	}
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	rep.TriggerS = time.Since(r.t0).Seconds()

	ends := make(map[string]coordinator.Status, n)
	running, claimed := map[string]bool{}, map[string]bool{}
	var lastLog time.Time
	for len(ends) < n {
		for _, id := range ids {
			if _, ok := ends[id]; ok {
				continue
			}
			st, err := r.st.reg.Status(ctx, id)
			if err != nil {
				continue // not registered yet
			}
			at := time.Since(r.t0).Seconds()
			if st.State != coordinator.StatePending && !running[id] {
				running[id], rep.LastRunningS = true, at
			}
			if (st.State.Terminal() || st.Units.Total > 0 && st.Units.Unclaimed == 0) && !claimed[id] {
				claimed[id], rep.LastClaimedS = true, at
			}
			if st.State.Terminal() {
				ends[id] = st
				if rep.FirstDoneS == 0 {
					rep.FirstDoneS = at
				}
				rep.LastDoneS = at
			}
		}
		if time.Since(lastLog) >= 5*time.Second {
			r.h.log.Info("progress", "scenario", r.sc.name, "running", len(running), "claimed", len(claimed), "done", len(ends), "of", n,
				"s", int(time.Since(r.t0).Seconds()))
			lastLog = time.Now()
		}
		if len(ends) < n && !sleep.For(ctx, 500*time.Millisecond) {
			return Result{}, fmt.Errorf("loadtest: %s: %d of %d broadcasts finished: %w", r.sc.name, len(ends), n, ctx.Err())
		}
	}
	end := time.Now()
	stopSampling()
	sampling.Wait()

	ss, err := r.sink.stats(ctx)
	if err != nil {
		return Result{}, err
	}
	var t tally
	for _, id := range ids {
		t.add(id, ends[id], ss.Broadcasts[id], eligible)
	}
	rep.Done, rep.NotExact = t.done, t.firstBad
	rev1, err := r.st.revision(ctx)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		Scenario: r.sc.name, Sender: "herald", BroadcastID: fmt.Sprintf("lt-concurrent-%d-*", stamp), Workers: r.sc.workers,
		Subscribers: r.sc.subscribers, ElapsedS: end.Sub(r.t0).Seconds(), Endpoint: endpointFigures(ss),
		FirstDeliveryS: sinceOrZero(ss.FirstDeliveryAt, r.t0), Concurrent: rep, Series: seriesSince(ss, r.t0),
	}
	t.fill(&res, eligible, n)
	r.sendLatency(ctx, &res)
	if res.ElapsedS > 0 {
		res.MsgsPerS = float64(res.Delivered) / res.ElapsedS
		res.EtcdWritesPerS = float64(rev1-r.rev0) / res.ElapsedS
	}
	res.check("every broadcast exact", t.done == n && len(t.firstBad) == 0,
		"%d of %d done, %d not exactly once %s", t.done, n, len(t.firstBad), strings.Join(t.firstBad, "; "))
	for _, id := range slices.Sorted(maps.Keys(rep.Workers)) {
		w := rep.Workers[id]
		res.WorkerPeakRSSMiB = max(res.WorkerPeakRSSMiB, w.PeakRSSMiB)
		res.check("open files of "+id+" bounded", w.Samples > 0 && w.PeakFDs <= rep.FDBound,
			"peak %d (idle %d) over %d samples; bound %d connections + %d = %d",
			w.PeakFDs, w.IdleFDs, w.Samples, poolConns(capacity), fdAllowance, rep.FDBound)
		res.check("goroutines of "+id+" bounded", w.Samples > 0 && w.PeakGoroutines <= rep.GoroutineBound,
			"peak %d (idle %d); bound %d senders + %d x %d connections + %d x %d broadcasts + %d = %d",
			w.PeakGoroutines, w.IdleGoroutines, capacity, goroutinesPerConn, poolConns(capacity),
			goroutinesPerBroadcast, n, goroutineAllowance, rep.GoroutineBound)
	}
	return res, nil
}

// resourceSample is one reading of a worker's resources; -1 where a
// reading failed.
type resourceSample struct {
	fds, goroutines int
	peakRSS         int64
}

func (r *run) sampleResources(ctx context.Context, id string, pid int, addr string) resourceSample {
	s := resourceSample{fds: -1, goroutines: -1, peakRSS: -1}
	if n, err := openFiles(pid); err == nil {
		s.fds = n
	}
	if g, err := scrapeGauge(ctx, r.client, addr, "go_goroutines"); err == nil {
		s.goroutines = int(g)
	} else if ctx.Err() == nil {
		r.h.log.Warn("goroutines", "worker", id, "err", err)
	}
	if _, peak, err := procMemory(pid); err == nil {
		s.peakRSS = peak
	}
	return s
}

// samplePeaks reads every worker's resources every
// concurrentSampleEvery until ctx ends, keeping the largest.
func (r *run) samplePeaks(ctx context.Context, rep *concurrentReport) {
	for {
		for _, p := range r.fleet.Procs() {
			s := r.sampleResources(ctx, p.ID, p.Pid(), p.HTTPAddr)
			if ctx.Err() != nil {
				return // a scrape cut short is no reading
			}
			w := rep.Workers[p.ID]
			if w == nil || s.fds < 0 || s.goroutines < 0 {
				continue
			}
			w.Samples++
			w.PeakFDs, w.PeakGoroutines = max(w.PeakFDs, s.fds), max(w.PeakGoroutines, s.goroutines)
			w.PeakRSSMiB = max(w.PeakRSSMiB, mib(s.peakRSS))
		}
		if !sleep.For(ctx, concurrentSampleEvery) {
			return
		}
	}
}

// lines are the report as writeFigures prints it.
func (rep *concurrentReport) lines() []string {
	out := []string{
		fmt.Sprintf("%d of %d broadcasts of %d subscribers (%d eligible) done; worker --max-in-flight %d, broadcast max_in_flight %d",
			rep.Done, rep.Broadcasts, rep.SubscribersEach, rep.EligibleEach, rep.WorkerCap, rep.BroadcastMaxInFlight),
		fmt.Sprintf("from the first trigger: all produced %.2fs, all started %.1fs, all units claimed %.1fs, first done %.1fs, last done %.1fs",
			rep.TriggerS, rep.LastRunningS, rep.LastClaimedS, rep.FirstDoneS, rep.LastDoneS),
	}
	for _, id := range slices.Sorted(maps.Keys(rep.Workers)) {
		w := rep.Workers[id]
		out = append(out, fmt.Sprintf("%s: open files %d idle, %d peak (bound %d); goroutines %d idle, %d peak (bound %d); peak RSS %.1f MiB",
			id, w.IdleFDs, w.PeakFDs, rep.FDBound, w.IdleGoroutines, w.PeakGoroutines, rep.GoroutineBound, w.PeakRSSMiB))
	}
	return out
}
