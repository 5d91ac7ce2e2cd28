package main

import (
	"flag"
	"fmt"
	"time"
)

// The fleet-scale scenarios (issue 13). None is in the default set: each
// takes minutes, and idle starts a hundred processes.
const (
	scRollout   = "rollout"
	scIdle      = "idle"
	scRetryKill = "retrykill"
	scEtcdOut   = "etcdout"
)

var fleetScenarios = []string{scRollout, scIdle, scRetryKill, scEtcdOut}

// FleetConfig sizes the fleet-scale scenarios. The zero value of every
// field means the documented default.
type FleetConfig struct {
	// RolloutWorkers is rollout's fleet (0: 4), RolloutSubscribers its
	// audience (0: 1,000,000). RolloutAfter is the steady phase before
	// the first replacement (0: 10 s), RolloutRounds how many times every
	// worker is replaced (0: 2). A replacement waits up to RolloutHold
	// (0: 30 s) for the new worker to hold work before it stops an old one.
	RolloutWorkers     int
	RolloutSubscribers int64
	RolloutAfter       time.Duration
	RolloutRounds      int
	RolloutHold        time.Duration

	// IdleWorkers idle for IdleFor (0: 100 workers, 1 minute), measured
	// from IdleSettle (0: 30 s) after the last one is ready.
	IdleWorkers int
	IdleFor     time.Duration
	IdleSettle  time.Duration
	// IdleNoIntake runs idle's workers with --no-intake: no Kafka consumer
	// group, so only the coordinator's cost is left.
	IdleNoIntake bool

	// RetryOneIn is the share of subscribers retrykill's endpoint refuses
	// once with 503 and Retry-After: 1 (0: one in 200).
	RetryOneIn uint64

	// OutageAfter is when etcdout cuts the workers off etcd (0: 6 s after
	// the broadcast runs), OutageFor for how long (0: twice the lease TTL).
	OutageAfter time.Duration
	OutageFor   time.Duration
}

func (c FleetConfig) withDefaults(leaseTTL time.Duration) FleetConfig {
	if c.RolloutWorkers == 0 {
		c.RolloutWorkers = 4
	}
	if c.RolloutSubscribers == 0 {
		c.RolloutSubscribers = 1_000_000
	}
	if c.RolloutAfter == 0 {
		c.RolloutAfter = 10 * time.Second
	}
	if c.RolloutRounds == 0 {
		c.RolloutRounds = 2
	}
	if c.RolloutHold == 0 {
		c.RolloutHold = 30 * time.Second
	}
	if c.IdleWorkers == 0 {
		c.IdleWorkers = 100
	}
	if c.IdleFor == 0 {
		c.IdleFor = time.Minute
	}
	if c.IdleSettle == 0 {
		c.IdleSettle = 30 * time.Second
	}
	if c.RetryOneIn == 0 {
		c.RetryOneIn = 200
	}
	if c.OutageAfter == 0 {
		c.OutageAfter = 6 * time.Second
	}
	if c.OutageFor == 0 {
		c.OutageFor = 2 * leaseTTL
	}
	return c
}

// validate reports the first invalid field of c with its defaults filled.
func (c FleetConfig) validate() error {
	switch {
	case c.RolloutWorkers < 1 || c.RolloutWorkers > 16:
		return fmt.Errorf("%w: %d rollout workers: want 1 to 16 on one machine", ErrConfig, c.RolloutWorkers)
	case c.RolloutSubscribers < 1 || c.RolloutSubscribers > 100_000_000:
		return fmt.Errorf("%w: %d rollout subscribers: want 1 to 100,000,000", ErrConfig, c.RolloutSubscribers)
	case c.RolloutRounds < 1 || c.RolloutRounds > 10:
		return fmt.Errorf("%w: %d rollout rounds: want 1 to 10", ErrConfig, c.RolloutRounds)
	case c.IdleWorkers < 1 || c.IdleWorkers > 1000:
		return fmt.Errorf("%w: %d idle workers: want 1 to 1000", ErrConfig, c.IdleWorkers)
	case c.RolloutAfter < 0 || c.RolloutHold < 0 || c.IdleFor < 0 || c.IdleSettle < 0 || c.OutageAfter < 0 || c.OutageFor < 0:
		return fmt.Errorf("%w: negative interval", ErrConfig)
	}
	return nil
}

// registerFlags declares c's flags on fs.
func (c *FleetConfig) registerFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.RolloutWorkers, "rollout-workers", 4, "workers of rollout, each replaced once a round")
	fs.Int64Var(&c.RolloutSubscribers, "rollout-subscribers", 1_000_000, "subscribers of rollout")
	fs.DurationVar(&c.RolloutAfter, "rollout-after", 10*time.Second, "steady `phase` of rollout before its first replacement")
	fs.IntVar(&c.RolloutRounds, "rollout-rounds", 2, "`rounds` of rollout: each replaces every worker with a new id")
	fs.DurationVar(&c.RolloutHold, "rollout-hold", 30*time.Second, "rollout waits up to this `long` for a new worker to hold work before stopping an old one")
	fs.IntVar(&c.IdleWorkers, "idle-workers", 100, "worker processes of idle")
	fs.DurationVar(&c.IdleFor, "idle-for", time.Minute, "how `long` idle measures")
	fs.DurationVar(&c.IdleSettle, "idle-settle", 30*time.Second, "idle waits this `long` after the last worker is ready before measuring")
	fs.BoolVar(&c.IdleNoIntake, "idle-no-intake", false, "run idle's workers without trigger intake (no Kafka consumer group)")
	fs.Uint64Var(&c.RetryOneIn, "retry-one-in", 200, "retrykill's endpoint refuses one subscriber in `n` once with 503 and Retry-After: 1")
	fs.DurationVar(&c.OutageAfter, "outage-after", 6*time.Second, "etcdout cuts the workers off etcd at this `time` after the broadcast runs")
	fs.DurationVar(&c.OutageFor, "outage-for", 0, "etcdout's outage `length` (default twice the lease TTL)")
}
