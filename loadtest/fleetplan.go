package main

import (
	"fmt"
	"strconv"
)

// fleetPlan lists the fleet-scale scenarios cfg selects, in the order they
// run. They measure what issue 13 asks of a fleet: bounded work units
// through a rolling update (rollout), the cost of idle members (idle),
// duplicates per crash while records retry (retrykill), and an etcd outage
// (etcdout).
func fleetPlan(cfg Config) []scenario {
	fc := cfg.Fleet
	var out []scenario
	if cfg.has(scRollout) {
		ro := &rollout{}
		out = append(out, scenario{name: scRollout, kind: scRollout, workers: fc.RolloutWorkers,
			subscribers: fc.RolloutSubscribers, chaos: ro.chaos, report: ro.report, judge: ro.judge})
	}
	if cfg.has(scIdle) {
		out = append(out, scenario{name: fmt.Sprintf("idle-%d", fc.IdleWorkers), kind: scIdle,
			workers: fc.IdleWorkers, standalone: runIdle, judge: judgeIdle})
	}
	if cfg.has(scRetryKill) {
		// The kill9 and sigstop scenarios, with an endpoint that keeps a
		// few records retrying at every moment, judged by the worker's
		// window rather than per unit.
		flags := []string{"--retry-one-in", strconv.FormatUint(fc.RetryOneIn, 10), "--retry-times", "1", "--retry-after", "1s"}
		k := scenario{name: scRetryKill + "-kill9", kind: scKill9, workers: cfg.ChaosWorkers,
			subscribers: cfg.ChaosSubscribers, chaos: chaosKill9, sinkFlags: flags, report: workerWindows}
		s := k
		s.name, s.kind, s.chaos, s.attribute = scRetryKill+"-sigstop", scSigstop, chaosSigstop, true
		out = append(out, k, s)
	}
	if cfg.has(scEtcdOut) {
		o := &outage{}
		out = append(out, scenario{name: scEtcdOut, kind: scEtcdOut, workers: cfg.ChaosWorkers,
			subscribers: cfg.ChaosSubscribers, etcdProxy: true, chaos: o.chaos, report: o.report, judge: o.judge})
	}
	return out
}

// fleetReport is what a fleet-scale scenario measured beyond the common
// figures; one of its parts is set.
type fleetReport struct {
	Rollout *rolloutReport `json:"rollout,omitempty"`
	Idle    *idleReport    `json:"idle,omitempty"`
	Outage  *outageReport  `json:"etcd_outage,omitempty"`
}

// workerWindows judges retrykill's kills and stops by issue 13's window:
// the victim's last 1,000 records or 1 s, whichever is fewer, over all
// the units it held, plus max_in_flight. It replaces the per-unit window
// kill9 and sigstop use (units × that), which grows with the units held.
func workerWindows(r *run, res *Result) {
	for _, e := range res.Events {
		if e.disruptive() {
			b := workerWindow(e.Units, e.rate, r.h.cfg.MaxInFlight)
			e.DuplicateBound = &b
		}
	}
}

// workerWindow is the most re-sends one worker's death may cause whatever
// the units it holds: one window of the worker, plus max_in_flight.
func workerWindow(units int, rate float64, maxInFlight int) int64 {
	return windowBound(min(units, 1), rate, maxInFlight)
}
