// Package statusview renders a broadcast's progress for people: a progress
// bar with rate, ETA and each worker's share, as `herald status --watch` and
// `herald demo` show it. It reads coordinator.Status values; it does not
// fetch them.
package statusview

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/herald-dev/herald/coordinator"
)

// Meter turns successive status samples into a rate and an ETA.
type Meter struct {
	// Total is the audience size when known (0 when not): the bar's 100%.
	Total int64

	lastAt      time.Time
	lastScanned int64
	rate        float64 // records finished per second, smoothed
}

// Observe records a sample taken at now and returns the smoothed rate of
// finished records per second.
func (m *Meter) Observe(st coordinator.Status, now time.Time) float64 {
	scanned := st.Counters.Scanned
	if !m.lastAt.IsZero() {
		dt := now.Sub(m.lastAt).Seconds()
		if dt > 0 {
			inst := float64(scanned-m.lastScanned) / dt
			if m.rate == 0 {
				m.rate = inst
			} else {
				m.rate = 0.7*m.rate + 0.3*inst // smooth out sampling jitter
			}
		}
	}
	m.lastAt, m.lastScanned = now, scanned
	return m.rate
}

// Line is one line of live progress:
//
//	spring-sale running [██████░░░░░░] 52.1%  104,200/200,000  31,400/s  ETA 3s  delivered 93,810 failed 2
func (m *Meter) Line(st coordinator.Status, width int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s ", st.ID, st.State)
	scanned := st.Counters.Scanned
	if m.Total > 0 {
		frac := min(float64(scanned)/float64(m.Total), 1)
		if st.State == coordinator.StateDone {
			frac = 1
		}
		filled := int(frac * float64(width))
		fmt.Fprintf(&b, "[%s%s] %5.1f%%  %s/%s", strings.Repeat("█", filled), strings.Repeat("░", width-filled),
			100*frac, Count(scanned), Count(m.Total))
	} else {
		fmt.Fprintf(&b, "%s scanned", Count(scanned))
	}
	fmt.Fprintf(&b, "  %s/s", Count(int64(m.rate)))
	if m.Total > 0 && m.rate > 0 && !st.State.Terminal() {
		left := time.Duration(float64(m.Total-scanned) / m.rate * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s", left.Round(time.Second))
	}
	c := st.Counters
	fmt.Fprintf(&b, "  delivered %s failed %s", Count(c.Delivered), Count(c.Failed))
	if c.InvalidTokens > 0 {
		fmt.Fprintf(&b, " (%s invalid tokens)", Count(c.InvalidTokens))
	}
	if e := st.Endpoint; e != nil && e.Waiting && !st.State.Terminal() {
		fmt.Fprintf(&b, "  waiting on endpoint since %s", e.Since.Local().Format(time.TimeOnly))
	}
	return b.String()
}

// Workers writes each worker's share: units held now and deliveries counted.
func Workers(w io.Writer, st coordinator.Status) {
	ids := make([]string, 0, len(st.Workers))
	for id := range st.Workers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var total int64
	for _, id := range ids {
		total += st.Workers[id].Delivered
	}
	for _, id := range ids {
		s := st.Workers[id]
		share := 0.0
		if total > 0 {
			share = 100 * float64(s.Delivered) / float64(total)
		}
		fmt.Fprintf(w, "  %-24s units %3d  delivered %12s  %5.1f%%\n", id, s.Units, Count(s.Delivered), share)
	}
}

// Table writes one line per broadcast, for `herald status` without an id.
func Table(w io.Writer, sts []coordinator.Status) {
	fmt.Fprintf(w, "%-32s %-10s %12s %12s %10s %10s %8s\n", "ID", "STATE", "SCANNED", "DELIVERED", "FAILED", "INVALID", "UNITS")
	waiting := false
	for _, st := range sts {
		c := st.Counters
		state := string(st.State)
		if e := st.Endpoint; e != nil && e.Waiting && !st.State.Terminal() {
			state += "*"
			waiting = true
		}
		fmt.Fprintf(w, "%-32s %-10s %12s %12s %10s %10s %4d/%-4d\n", st.ID, state, Count(c.Scanned), Count(c.Delivered),
			Count(c.Failed), Count(c.Invalid), st.Units.Done, st.Units.Total)
	}
	if waiting {
		fmt.Fprintln(w, "* waiting on its endpoint: it has been failing, and sends pause and probe until it answers")
	}
}

// Count formats n with thousands separators.
func Count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
