package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// rollout replaces every worker of the fleet, mid-broadcast, as a
// Kubernetes Deployment with maxSurge 1 and maxUnavailable 0 rolls out a
// new version: start a worker with a new id, wait until it holds work,
// SIGTERM an old one, wait for it to exit, next. Every round replaces the
// whole fleet; RolloutRounds rounds run back to back. It measures what a
// rolling update costs a broadcast: open units (every membership change
// may split them), duplicates (none: every exit is graceful), and the
// delivery rate during the rollout against the steady phase before it.
//
// The chaos goroutine fills rep; report reads it once that goroutine has
// ended.
type rollout struct {
	rep rolloutReport

	deliveredAtStart int64 // the endpoint's count when the broadcast ran
	deliveredAtRoll  int64 // when the first replacement started
	deliveredAtEnd   int64 // when the last old worker had exited
}

// rolloutReport is rollout's own figures. Rates are the endpoint's first
// deliveries per second.
type rolloutReport struct {
	// SteadyMsgsPerS runs from the broadcast running (every unit claimed)
	// to the first replacement, RolloutMsgsPerS from then to the exit of
	// the last old worker (or the end of the broadcast, if it came first),
	// AfterMsgsPerS from then to the end. RolloutToSteady is their ratio.
	SteadyMsgsPerS  float64  `json:"steady_msgs_per_s"`
	RolloutMsgsPerS float64  `json:"rollout_msgs_per_s"`
	AfterMsgsPerS   *float64 `json:"after_msgs_per_s,omitempty"`
	RolloutToSteady float64  `json:"rollout_to_steady"`
	// StartS and EndS bound the rollout, in seconds since the trigger.
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	// Replacements counts the old workers stopped after their successor
	// held work, of Planned (workers × rounds).
	Replacements int `json:"replacements"`
	Planned      int `json:"planned"`
	// HoldS is, per new worker in start order, the time from its start
	// until etcd showed it holding a unit; -1 if it held none within
	// RolloutHold (the old one was stopped anyway).
	HoldS []float64 `json:"hold_s"`
	// OpenUnits samples the broadcast's open units (Units.Total -
	// Units.Done, `herald status`) every second from OpenUnitsStartS
	// after the trigger, Unclaimed those no live worker held;
	// OpenUnitsMax and UnclaimedMax are the largest samples and
	// MaxUnitsPerWorker the most any one worker held in a sample.
	OpenUnits         []int   `json:"open_units"`
	Unclaimed         []int   `json:"unclaimed"`
	OpenUnitsStartS   float64 `json:"open_units_start_s"`
	OpenUnitsMax      int     `json:"open_units_max"`
	UnclaimedMax      int     `json:"unclaimed_max"`
	MaxUnitsPerWorker int     `json:"max_units_per_worker"`
}

// chaos runs on the scenario's chaos goroutine from the moment the
// broadcast runs until it ends.
func (ro *rollout) chaos(ctx context.Context, r *run) error {
	cfg := r.h.cfg.Fleet
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() { // owned here: ctx ends it, and chaos waits for it
		defer sampler.Done()
		ro.sampleUnits(ctx, r)
	}()
	defer sampler.Wait()

	ro.deliveredAtStart = r.delivered(ctx)
	ro.rep.Planned = cfg.RolloutWorkers * cfg.RolloutRounds
	if err := r.sleepUntil(ctx, cfg.RolloutAfter); err != nil {
		return nil // the broadcast ended first
	}
	ro.deliveredAtRoll = r.delivered(ctx)
	ro.rep.StartS = time.Since(r.t0).Seconds()
	ro.rep.SteadyMsgsPerS = float64(ro.deliveredAtRoll-ro.deliveredAtStart) / time.Since(r.t1).Seconds()
	old := make([]string, cfg.RolloutWorkers)
	for i := range old {
		old[i] = workerID(i + 1)
	}
	next := cfg.RolloutWorkers + 1
	for range cfg.RolloutRounds {
		for i, id := range old {
			fresh := workerID(next)
			next++
			if err := ro.surge(ctx, r, fresh); err != nil {
				return ignoreEnd(ctx, err)
			}
			if err := r.terminate(ctx, id); err != nil {
				return ignoreEnd(ctx, err)
			}
			if ctx.Err() != nil {
				return nil
			}
			ro.rep.Replacements++
			old[i] = fresh
		}
	}
	ro.deliveredAtEnd = r.delivered(ctx)
	ro.rep.EndS = time.Since(r.t0).Seconds()
	<-ctx.Done() // keep sampling until the broadcast ends
	return nil
}

// surge starts worker id and waits until it holds a unit, or RolloutHold.
func (ro *rollout) surge(ctx context.Context, r *run, id string) error {
	started := time.Now()
	if err := r.start(ctx, id, "join"); err != nil {
		return err
	}
	limit := time.NewTimer(r.h.cfg.Fleet.RolloutHold)
	defer limit.Stop()
	for {
		r.mu.Lock()
		units := r.status.Workers[id].Units
		r.mu.Unlock()
		if units > 0 {
			ro.rep.HoldS = append(ro.rep.HoldS, time.Since(started).Seconds())
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-limit.C:
			ro.rep.HoldS = append(ro.rep.HoldS, -1)
			r.h.log.Warn("rollout: new worker holds no work", "worker", id, "after", r.h.cfg.Fleet.RolloutHold)
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sampleUnits records the broadcast's open units once a second, from the
// status the monitor read last (at most 100 ms old), until ctx ends.
func (ro *rollout) sampleUnits(ctx context.Context, r *run) {
	ro.rep.OpenUnitsStartS = time.Since(r.t0).Seconds()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		r.mu.Lock()
		st := r.status
		r.mu.Unlock()
		open := st.Units.Total - st.Units.Done
		ro.rep.OpenUnits = append(ro.rep.OpenUnits, open)
		ro.rep.OpenUnitsMax = max(ro.rep.OpenUnitsMax, open)
		ro.rep.Unclaimed = append(ro.rep.Unclaimed, st.Units.Unclaimed)
		ro.rep.UnclaimedMax = max(ro.rep.UnclaimedMax, st.Units.Unclaimed)
		for _, w := range st.Workers {
			ro.rep.MaxUnitsPerWorker = max(ro.rep.MaxUnitsPerWorker, w.Units)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// report completes the rates with the end of the broadcast.
func (ro *rollout) report(r *run, res *Result) {
	rep := ro.rep
	end := res.ElapsedS
	if rep.StartS > 0 {
		rollEnd, delivered := rep.EndS, ro.deliveredAtEnd
		if rep.Replacements < rep.Planned || rollEnd == 0 {
			rollEnd, delivered = end, res.Delivered // the broadcast ended during the rollout
		} else if end > rollEnd {
			after := float64(res.Delivered-delivered) / (end - rollEnd)
			rep.AfterMsgsPerS = &after
		}
		if rollEnd > rep.StartS {
			rep.RolloutMsgsPerS = float64(delivered-ro.deliveredAtRoll) / (rollEnd - rep.StartS)
		}
		if rep.SteadyMsgsPerS > 0 {
			rep.RolloutToSteady = rep.RolloutMsgsPerS / rep.SteadyMsgsPerS
		}
	}
	res.Fleet = &fleetReport{Rollout: &rep}
}

// judge checks issue 13's targets for a rolling update.
func (ro *rollout) judge(res *Result, cfg Config) {
	res.check("duplicates 0", res.Duplicates == 0, "duplicates %d", res.Duplicates)
	if res.Fleet == nil || res.Fleet.Rollout == nil {
		res.check("rollout measured", false, "no rollout figures")
		return
	}
	rep := res.Fleet.Rollout
	res.check("every worker replaced", rep.Replacements == rep.Planned, "%d of %d replacements before the broadcast ended",
		rep.Replacements, rep.Planned)
	limit := 8 * cfg.Fleet.RolloutWorkers
	res.check(fmt.Sprintf("open units at most 8 × %d workers", cfg.Fleet.RolloutWorkers), rep.OpenUnitsMax <= limit,
		"max %d open units (limit %d), at most %d held by one worker, up to %d unclaimed", rep.OpenUnitsMax, limit,
		rep.MaxUnitsPerWorker, rep.UnclaimedMax)
	res.check("rollout throughput at least 0.8 of steady", rep.RolloutToSteady >= 0.8,
		"%.0f msgs/s during the rollout, %.0f before it: x%.2f", rep.RolloutMsgsPerS, rep.SteadyMsgsPerS, rep.RolloutToSteady)
}

// delivered is the endpoint's count of the broadcast's distinct keys so
// far, 0 if the endpoint does not answer.
func (r *run) delivered(ctx context.Context) int64 {
	ss, err := r.sink.stats(ctx)
	if err != nil {
		r.h.log.Warn("sink stats", "err", err)
		return 0
	}
	return ss.Broadcasts[r.id].Delivered
}
