package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/herald-dev/herald/internal/fleet"
)

// The checkpoint window Herald guarantees (docs/CONTRACTS.md, "Guarantees",
// 2): a unit checkpoints at least every second or every 1000 records,
// whichever comes first.
const (
	windowRecords = 1000
	windowTime    = time.Second
)

// chaosKill9 SIGKILLs a random worker that holds work every KillEvery, at
// most Kills times, and restarts each RestartAfter later under the same id.
func chaosKill9(ctx context.Context, r *run) error {
	var restarts errgroup.Group
	err := r.killEvery(ctx, &restarts)
	return errors.Join(err, restarts.Wait())
}

func (r *run) killEvery(ctx context.Context, restarts *errgroup.Group) error {
	cfg := r.h.cfg
	for i := 1; i <= cfg.Kills; i++ {
		if err := r.sleepUntil(ctx, time.Duration(i)*cfg.KillEvery); err != nil {
			return nil // the broadcast ended first
		}
		victim, err := r.disruptHolder(ctx, r.kill)
		if err != nil || victim == "" {
			return ignoreEnd(ctx, err)
		}
		restarts.Go(func() error {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(cfg.RestartAfter):
			}
			return ignoreEnd(ctx, r.start(ctx, victim, "restart"))
		})
	}
	return nil
}

// chaosSigstop freezes a worker that holds work for StopFor, longer than
// its lease, then wakes it: a zombie that must find itself fenced.
func chaosSigstop(ctx context.Context, r *run) error {
	cfg := r.h.cfg
	if err := r.sleepUntil(ctx, cfg.StopAfter); err != nil {
		return nil
	}
	var watched <-chan struct{}
	victim, err := r.disruptHolder(ctx, func(ctx context.Context, id string) (bool, error) {
		var err error
		watched, err = r.stop(ctx, id)
		return watched != nil, err
	})
	if err != nil || victim == "" {
		return ignoreEnd(ctx, err)
	}
	// Wake it whatever happens: a frozen process cannot even be terminated.
	select {
	case <-ctx.Done():
	case <-time.After(cfg.StopFor):
	}
	r.cont(victim)
	<-watched // ends with its new lease, or with the broadcast
	return nil
}

// chaosScaleout starts with one worker and adds one every JoinEvery up to
// ChaosWorkers.
func chaosScaleout(ctx context.Context, r *run) error {
	cfg := r.h.cfg
	for i := 2; i <= cfg.ChaosWorkers; i++ {
		if err := r.sleepUntil(ctx, time.Duration(i-1)*cfg.JoinEvery); err != nil {
			return nil
		}
		if err := r.start(ctx, workerID(i), "join"); err != nil {
			return ignoreEnd(ctx, err)
		}
	}
	return nil
}

// chaosSigterm restarts every worker in turn, gracefully: SIGTERM, wait
// for its exit, start it again, pause RollEvery, next.
func chaosSigterm(ctx context.Context, r *run) error {
	cfg := r.h.cfg
	for i := 1; i <= cfg.ChaosWorkers; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.RollEvery):
		}
		id := workerID(i)
		if err := r.terminate(ctx, id); err != nil {
			return ignoreEnd(ctx, err)
		}
		if err := r.start(ctx, id, "restart"); err != nil {
			return ignoreEnd(ctx, err)
		}
	}
	return nil
}

// ignoreEnd drops an error caused by the broadcast ending under an action.
func ignoreEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// sleepUntil waits until d after the broadcast was first seen running.
func (r *run) sleepUntil(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(time.Until(r.t1.Add(d)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// disruptHolder applies act (kill or stop) to a random running worker
// that holds units, trying again if the chosen one turns out to hold none
// by the time act looks (act then reports false), for up to 10 s. It
// returns the victim, "" if there was none.
func (r *run) disruptHolder(ctx context.Context, act func(context.Context, string) (bool, error)) (string, error) {
	for range 100 {
		if victim := r.pickHolder(); victim != "" {
			done, err := act(ctx, victim)
			if err != nil || done {
				return victim, err
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "", nil
}

// pickHolder chooses, at random, a running worker that held units in the
// latest status; "" when none did.
func (r *run) pickHolder() string {
	live := map[string]bool{}
	for _, p := range r.fleet.Procs() {
		live[p.ID] = true
	}
	r.mu.Lock()
	var holders []string
	for id, s := range r.status.Workers {
		if s.Units > 0 && live[id] && !r.stopped[id] {
			holders = append(holders, id)
		}
	}
	r.mu.Unlock()
	if len(holders) == 0 {
		return ""
	}
	slices.Sort(holders) // map order is random; the seed alone must decide
	return holders[r.rng.IntN(len(holders))]
}

func (r *run) proc(id string) (*fleet.Proc, error) {
	for _, p := range r.fleet.Procs() {
		if p.ID == id {
			return p, nil
		}
	}
	return nil, fmt.Errorf("loadtest: worker %s is not running", id)
}

// start launches worker id and records the event kind ("" records none:
// the initial fleet).
func (r *run) start(ctx context.Context, id, kind string) error {
	if _, err := r.fleet.Start(ctx, id); err != nil {
		return err
	}
	if kind != "" {
		r.addEvent(&event{at: time.Now(), Kind: kind, Worker: id})
	}
	return nil
}

// disruption prepares the event of a kill or a stop of p: what it held,
// the endpoint's duplicates so far, its member record, and the most
// duplicates its checkpoint window allows.
func (r *run) disruption(ctx context.Context, p *fleet.Proc, kind string) *event {
	r.sampleProc(ctx, p) // its last metrics and peak RSS, and its rate
	e := &event{Kind: kind, Worker: p.ID}
	// What it holds now, read fresh: the monitor's last status may be
	// 100 ms old, and a hand-over may have moved its units since.
	st, err := r.st.reg.Status(ctx, r.id)
	r.mu.Lock()
	if err != nil {
		st = r.status
	}
	e.Units = st.Workers[p.ID].Units
	rate := 0.0
	if rec := r.procs[procKey{p.ID, p.Pid()}]; rec != nil {
		rate = rec.rate()
	}
	r.mu.Unlock()
	e.memberRev, _ = r.st.memberRev(ctx, p.ID)
	if ss, err := r.sink.stats(ctx); err == nil {
		e.dupBefore = ss.Broadcasts[r.id].Duplicates
	}
	e.rate = rate
	b := windowBound(e.Units, rate, r.h.cfg.MaxInFlight)
	e.DuplicateBound = &b
	return e
}

// windowBound is the most re-sends a worker's death may cause: for each
// unit it held, the records of one checkpoint window (1 s of the unit's
// rate or 1000 records, whichever is smaller), plus the records that were
// in flight when that checkpoint was taken (at most max_in_flight for the
// whole worker), which lie after its cursor too.
func windowBound(units int, rate float64, maxInFlight int) int64 {
	if units == 0 {
		return int64(maxInFlight)
	}
	perUnit := math.Min(windowRecords, math.Ceil(rate/float64(units)*windowTime.Seconds()))
	return int64(units)*int64(perUnit) + int64(maxInFlight)
}

// kill SIGKILLs worker id if it holds units now, and reports whether it
// did.
func (r *run) kill(ctx context.Context, id string) (bool, error) {
	p, err := r.proc(id)
	if err != nil {
		return false, err
	}
	e := r.disruption(ctx, p, "kill")
	if e.Units == 0 {
		return false, nil
	}
	_ = p.Kill()
	e.at = time.Now()
	r.addEvent(e)
	return true, nil
}

// stop freezes worker id with SIGSTOP if it holds units now, and watches
// for its new lease until ctx ends or it has one; the returned channel
// closes then. Nil when it held no units.
func (r *run) stop(ctx context.Context, id string) (<-chan struct{}, error) {
	p, err := r.proc(id)
	if err != nil {
		return nil, err
	}
	e := r.disruption(ctx, p, "stop")
	if e.Units == 0 {
		return nil, nil
	}
	rev, err := r.st.revision(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.stopped[id] = true
	r.mu.Unlock()
	p.Stop()
	e.at = time.Now()
	r.addEvent(e)
	watched := make(chan struct{})
	go func() { // owned by the caller, which waits on watched
		defer close(watched)
		r.watchRejoin(ctx, e, rev)
	}()
	return watched, nil
}

// cont wakes worker id with SIGCONT. Its proxy starts watching what it
// sends first, so not one request escapes the count.
func (r *run) cont(id string) {
	p, err := r.proc(id)
	if err != nil {
		return
	}
	if r.attr != nil {
		r.attr.markWoken(id)
	}
	p.Cont()
	r.mu.Lock()
	delete(r.stopped, id)
	r.mu.Unlock()
	r.addEvent(&event{at: time.Now(), Kind: "cont", Worker: id})
}

// terminate stops worker id with SIGTERM and waits for it to leave. A
// graceful exit must be status 0; anything else is noted on the event.
func (r *run) terminate(ctx context.Context, id string) error {
	p, err := r.proc(id)
	if err != nil {
		return err
	}
	r.sampleProc(ctx, p)
	r.mu.Lock()
	units := r.status.Workers[id].Units
	r.mu.Unlock()
	e := &event{at: time.Now(), Kind: "term", Worker: id, Units: units}
	if err := p.Terminate(30 * time.Second); err != nil {
		e.Note = err.Error()
	}
	e.LeftS = time.Since(e.at).Seconds()
	r.addEvent(e)
	return nil
}
