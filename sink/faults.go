package sink

import (
	"math"
	"time"
)

// An outage and refused keys are the sink's deterministic faults, unlike
// the random 429s and 5xx: a test knows in advance when the endpoint is
// down and which subscribers it refuses, so it can check a sender against
// exact figures.

// Refuses reports whether a sink whose Config.Refuse400 is fraction
// refuses key with 400. The choice depends on the key's hash alone.
func Refuses(key string, fraction float64) bool {
	below, all := refuseBound(fraction)
	return all || hashKey(key)[0] < below
}

// refuseBound is the hash value below which keys are refused, or all when
// fraction refuses every key.
func refuseBound(fraction float64) (below uint64, all bool) {
	if !(fraction > 0) {
		return 0, false
	}
	b := math.Ldexp(fraction, 64)
	if b >= math.Ldexp(1, 64) { // a fraction of 1, or so near it that it rounds there
		return 0, true
	}
	return uint64(b), false
}

// refused reports whether this sink refuses the key hashed as h.
func (s *Sink) refused(h keyHash) bool {
	return s.refuseAll || h[0] < s.refuseBelow
}

// down reports whether the configured outage covers now, in the counting
// period c. The outage's clock starts at the period's first delivery
// request.
func (s *Sink) down(c *counters, now time.Time) bool {
	if s.cfg.OutageFor <= 0 {
		return false
	}
	// Offset by one so that zero keeps meaning "none yet".
	n := now.Sub(c.since).Nanoseconds() + 1
	if c.firstRequestNanos.Load() == 0 {
		c.firstRequestNanos.CompareAndSwap(0, n)
	}
	at := time.Duration(n - c.firstRequestNanos.Load())
	return at >= s.cfg.OutageAfter && at < s.cfg.OutageAfter+s.cfg.OutageFor
}

// outageWindow adds to st when the outage of period c starts and ends,
// once its first request has set the clock.
func (s *Sink) outageWindow(st *Stats, c *counters) {
	if s.cfg.OutageFor <= 0 {
		return
	}
	if n := c.firstRequestNanos.Load(); n > 0 {
		st.OutageFrom = c.since.Add(time.Duration(n-1) + s.cfg.OutageAfter)
		st.OutageUntil = st.OutageFrom.Add(s.cfg.OutageFor)
	}
}
