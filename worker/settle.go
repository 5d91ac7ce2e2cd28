package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/herald-dev/herald/coordinator"
)

// How long a unit's last write is tried. One attempt is bounded so a lost
// answer does not stall it; the whole is bounded so a write etcd keeps
// failing under a live lease does not hold the unit for ever.
const (
	settleAttempt = 5 * time.Second
	settleLimit   = 30 * time.Second
)

// settle writes a claim's last word, Finish or Handoff (write), and makes
// sure the claim does not outlive its runner: a claim left held under a
// live lease with no one working on it would never be finished, and its
// broadcast would never complete.
//
// write is tried again, with backoff, while it fails transiently (a leader
// election, etcd unreachable: coordinator.IsTransient), until it succeeds,
// the claim is proven lost (ErrNotOwner, which is also what the retry of a
// write that did land gets), or the claim's context ends (its lease is
// gone, and the claim key with it). After settleLimit, or at once on an
// error no retry can fix, it gives up and releases the claim
// (coordinator.Claim.Release): the unit goes back as last checkpointed, to
// be claimed again and resumed from that checkpoint. It reports whether
// write succeeded.
func settle(cl *coordinator.Claim, what string, write func(context.Context) error, m *metrics, log *slog.Logger) bool {
	err := retryWrite(cl, write, m)
	switch {
	case err == nil:
		return true
	case errors.Is(err, coordinator.ErrNotOwner), cl.Context().Err() != nil:
		// Someone else owns the unit now, or the lease ended and took the
		// claim with it; or an earlier try that reported failure landed.
		// Either way the claim is not this runner's to end.
		log.Warn(what+": claim no longer held", "err", err)
		return false
	}
	log.Error(what+" failed; releasing the claim so the unit resumes from its last checkpoint", "err", err)
	if rerr := retryWrite(cl, cl.Release, m); rerr != nil && !errors.Is(rerr, coordinator.ErrNotOwner) {
		// etcd takes neither write: the claim stays until the lease ends.
		log.Error("release claim", "err", rerr)
		return false
	}
	m.releases.Inc()
	return false
}

// retryWrite calls write until it succeeds, fails for good, the claim's
// context ends or settleLimit has passed, and returns its last error.
func retryWrite(cl *coordinator.Claim, write func(context.Context) error, m *metrics) error {
	// The claim's context may end during an attempt; the write's ownership
	// compare then decides, so the attempt is not cut short with it.
	base := context.WithoutCancel(cl.Context())
	giveUp := time.Now().Add(settleLimit)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(base, settleAttempt)
		err := write(ctx)
		cancel()
		if err == nil || !coordinator.IsTransient(err) || !time.Now().Before(giveUp) {
			return err
		}
		m.settleRetries.Inc()
		t := time.NewTimer(backoff(attempt)) // 200 ms, doubling, at most 5 s
		select {
		case <-t.C:
		case <-cl.Context().Done():
			t.Stop()
			return err
		}
	}
}
