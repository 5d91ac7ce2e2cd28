package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
)

// scUnbatched judges issue 17's unbatched target on its own: Herald's
// steady run against the plain sender with the same requests in flight,
// at each steady fleet size, at least 0.9. One run against one run moves
// by up to a quarter on a shared machine (the plain sender itself does),
// so it runs in UnbatchedRounds rounds, each the plain sender and then
// Herald back to back at every size, and judges the median of each
// size's ratios. Not in the default set, whose steady runs and baselines
// print the same ratio once, unjudged.
const scUnbatched = "unbatched"

// unbatchedMinRatio is the target.
const unbatchedMinRatio = 0.9

// UnbatchedConfig sizes the unbatched scenario. The zero value of every
// field means the documented default.
type UnbatchedConfig struct {
	// Rounds (0: 3) of the plain sender and Herald at every size of
	// Config.Workers.
	Rounds int
	// Subscribers (0: 1,000,000) of every run.
	Subscribers int64
}

func (c UnbatchedConfig) withDefaults() UnbatchedConfig {
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if c.Subscribers == 0 {
		c.Subscribers = 1_000_000
	}
	return c
}

func (c UnbatchedConfig) validate() error {
	if c.Rounds < 1 || c.Rounds > 20 {
		return fmt.Errorf("%w: %d unbatched rounds: want 1 to 20", ErrConfig, c.Rounds)
	}
	if c.Subscribers < 1 || c.Subscribers > 100_000_000 {
		return fmt.Errorf("%w: %d unbatched subscribers: want 1 to 100,000,000", ErrConfig, c.Subscribers)
	}
	return nil
}

func (c *UnbatchedConfig) registerFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Rounds, "unbatched-rounds", 3, "`rounds` of unbatched: each runs the plain sender and Herald at every --workers size; the judge takes each size's median ratio")
	fs.Int64Var(&c.Subscribers, "unbatched-subscribers", 1_000_000, "subscribers of each unbatched run")
}

// runUnbatched runs the unbatched scenario's rounds, emitting every run:
// the plain sender's as baseline-plain-<workers>-r<round>, Herald's as
// unbatched-<workers>-r<round> with its ratio, the last round's judged on
// the median.
func (h *harness) runUnbatched(ctx context.Context, emit func(Result) error) error {
	cfg := h.cfg
	uc := cfg.Unbatched
	ratios := map[int][]float64{}
	for round := 1; round <= uc.Rounds; round++ {
		for _, w := range cfg.Workers {
			if ctx.Err() != nil {
				return errStopped
			}
			pr, err := h.runPlain(ctx, w, w*cfg.MaxInFlight, uc.Subscribers)
			if err != nil {
				return err
			}
			pr.Scenario = fmt.Sprintf("%s-r%d", pr.Scenario, round)
			if err := emit(pr); err != nil {
				return err
			}
			sc := scenario{name: fmt.Sprintf("%s-%d-r%d", scUnbatched, w, round), kind: scSteady, workers: w, subscribers: uc.Subscribers}
			r, err := h.runScenario(ctx, sc, 1000*round+w)
			if err != nil {
				return err
			}
			judge(&r, sc, cfg)
			if r.RatioToPlain = ratioOf(r.MsgsPerS, &pr); r.RatioToPlain != nil {
				ratios[w] = append(ratios[w], *r.RatioToPlain)
			}
			if round == uc.Rounds {
				judgeUnbatched(&r, ratios[w])
			}
			if err := emit(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// judgeUnbatched checks the median of one fleet size's ratios to the
// plain sender, one a round.
func judgeUnbatched(r *Result, ratios []float64) {
	parts := make([]string, len(ratios))
	for i, x := range ratios {
		parts[i] = fmt.Sprintf("x%.2f", x)
	}
	m := median(ratios)
	r.check(fmt.Sprintf("median of %d rounds at least %.1f of the plain sender", len(ratios), unbatchedMinRatio),
		len(ratios) > 0 && m >= unbatchedMinRatio, "rounds %s: median x%.2f", strings.Join(parts, ", "), m)
}
