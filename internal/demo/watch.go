package demo

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/fleet"
	"github.com/herald-dev/herald/internal/statusview"
)

// watcher follows the broadcast to its end, killing a worker on the way
// when asked, and measures how long the survivors took to claim its work.
type watcher struct {
	cfg   Config
	reg   *coordinator.Registry
	fleet *fleet.Fleet
	id    string
	out   io.Writer
	start time.Time

	killed   string
	killedAt time.Time
	failover *float64
}

func (w *watcher) run(ctx context.Context) (coordinator.Status, error) {
	meter := &statusview.Meter{Total: w.cfg.Subscribers}
	var lastPrint time.Time
	for {
		interval := 250 * time.Millisecond
		if w.killed != "" && w.failover == nil {
			interval = 50 * time.Millisecond // the failover time is measured by this loop
		}
		select {
		case <-ctx.Done():
			return coordinator.Status{}, fmt.Errorf("demo: broadcast %s did not finish: %w", w.id, ctx.Err())
		case <-time.After(interval):
		}
		st, err := w.reg.Status(ctx, w.id)
		if err != nil {
			continue // not registered yet, or etcd busy: ask again
		}
		now := time.Now()
		meter.Observe(st, now)
		if w.cfg.KillAfter > 0 && w.killed == "" && now.Sub(w.start) >= w.cfg.KillAfter && !st.State.Terminal() {
			w.kill(st)
		}
		if w.killed != "" && w.failover == nil && w.tookOver(st) {
			s := now.Sub(w.killedAt).Seconds()
			w.failover = &s
			w.println(fmt.Sprintf("failover: the survivors claimed %s's remaining work %.2f s after the kill", w.killed, s))
		}
		switch {
		case w.cfg.Live:
			fmt.Fprintf(w.out, "\r\033[K%s", meter.Line(st, 30))
		case now.Sub(lastPrint) >= 2*time.Second || st.State.Terminal():
			fmt.Fprintln(w.out, meter.Line(st, 30))
			lastPrint = now
		}
		if st.State.Terminal() {
			if w.cfg.Live {
				fmt.Fprintln(w.out)
			}
			if w.killed != "" && w.failover == nil {
				w.println("the broadcast ended before the failover could be measured")
			}
			return st, nil
		}
	}
}

// kill SIGKILLs a worker that holds work right now.
func (w *watcher) kill(st coordinator.Status) {
	var holders []string
	for id, s := range st.Workers {
		if s.Units > 0 {
			holders = append(holders, id)
		}
	}
	if len(holders) == 0 {
		return // nothing claimed yet; try on the next sample
	}
	slices.Sort(holders)
	victim := holders[0]
	for _, p := range w.fleet.Procs() {
		if p.ID == victim {
			_ = p.Kill()
			w.killed, w.killedAt = victim, time.Now()
			w.println(fmt.Sprintf("killed %s (SIGKILL, pid %d) holding %d units", victim, p.Pid(), st.Workers[victim].Units))
			return
		}
	}
}

// tookOver reports whether the dead worker holds nothing any more and every
// open unit is claimed by a live worker again.
func (w *watcher) tookOver(st coordinator.Status) bool {
	if st.Workers[w.killed].Units > 0 {
		return false
	}
	return st.Units.Unclaimed == 0
}

func (w *watcher) println(s string) {
	if w.cfg.Live {
		fmt.Fprint(w.out, "\r\033[K")
	}
	fmt.Fprintln(w.out, s)
}
