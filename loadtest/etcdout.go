package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// outage cuts every worker off etcd mid-broadcast for OutageFor (twice the
// lease TTL by default), then restores it. The workers reach etcd through
// a faultproxy.Proxy; the harness reads etcd directly, so it follows the broadcast
// throughout. Every lease expires during the outage, so every worker must
// stop sending at its deadline, rejoin with a new lease once etcd is back,
// keep that lease, and re-send no more than one checkpoint window.
//
// The chaos goroutine fills rep and dupBefore; report reads them once that
// goroutine has ended.
type outage struct {
	rep       outageReport
	dupBefore int64
}

// outageReport is etcdout's own figures.
type outageReport struct {
	// AtS is the cut, in seconds since the trigger; ForS its length.
	AtS  float64 `json:"at_s"`
	ForS float64 `json:"for_s"`
	// RecoveryS runs from etcd's return until every open unit was claimed
	// again; absent if that was never seen.
	RecoveryS *float64 `json:"recovery_s,omitempty"`
	// Duplicates are the endpoint's from the cut to the end, against
	// DuplicateBound, the sum of the workers' windows.
	Duplicates     int64          `json:"duplicates"`
	DuplicateBound int64          `json:"duplicate_bound"`
	Workers        []outageWorker `json:"workers"`
}

// outageWorker is one worker through the outage.
type outageWorker struct {
	Worker string `json:"worker"`
	// Units it held and its delivered per second just before the cut,
	// and the window they allow: 1,000 records or 1 s of it, whichever
	// is fewer, plus max_in_flight.
	Units    int     `json:"units"`
	MsgsPerS float64 `json:"msgs_per_s"`
	Window   int64   `json:"window"`
	// LeasesLost counts its member record deleted (or re-created) after
	// the cut, NewLeases the records it created; MemberAtEnd whether it
	// had one when the broadcast ended.
	LeasesLost  int  `json:"leases_lost"`
	NewLeases   int  `json:"new_leases"`
	MemberAtEnd bool `json:"member_at_end"`
}

// chaos runs on the scenario's chaos goroutine from the moment the
// broadcast runs until it ends.
func (o *outage) chaos(ctx context.Context, r *run) error {
	cfg := r.h.cfg
	if err := r.sleepUntil(ctx, cfg.Fleet.OutageAfter); err != nil {
		return nil
	}
	st, err := r.st.reg.Status(ctx, r.id)
	if err != nil {
		return ignoreEnd(ctx, err)
	}
	for _, p := range r.fleet.Procs() {
		r.sampleProc(ctx, p)
		r.mu.Lock()
		rate := 0.0
		if rec := r.procs[procKey{p.ID, p.Pid()}]; rec != nil {
			rate = rec.rate()
		}
		r.mu.Unlock()
		units := st.Workers[p.ID].Units
		w := outageWorker{Worker: p.ID, Units: units, MsgsPerS: rate, Window: workerWindow(units, rate, cfg.MaxInFlight)}
		o.rep.Workers = append(o.rep.Workers, w)
		o.rep.DuplicateBound += w.Window
	}
	slices.SortFunc(o.rep.Workers, func(a, b outageWorker) int { return compareIDs(a.Worker, b.Worker) })
	rev, err := r.st.revision(ctx)
	if err != nil {
		return ignoreEnd(ctx, err)
	}
	watch, err := newMemberWatch(ctx, r.st.cli, rev)
	if err != nil {
		return ignoreEnd(ctx, err)
	}
	defer watch.stop()
	ss, err := r.sink.stats(ctx)
	if err != nil {
		return ignoreEnd(ctx, err)
	}
	o.dupBefore = ss.Broadcasts[r.id].Duplicates

	r.etcdProxy.Cut()
	cut := r.addEvent(&event{at: time.Now(), Kind: "cut", Worker: "etcd"})
	o.rep.AtS = cut.AtS
	if err := sleepCtx(ctx, cfg.Fleet.OutageFor); err != nil {
		r.etcdProxy.Restore()
		return nil
	}
	r.etcdProxy.Restore()
	back := r.addEvent(&event{at: time.Now(), Kind: "restore", Worker: "etcd"})
	o.rep.ForS = back.AtS - cut.AtS
	o.waitRecovery(ctx, r, back.at)

	<-ctx.Done() // the broadcast ended: who holds a lease now?
	end, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	resp, err := r.st.cli.Get(end, memberKey(""), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("loadtest: members at the end: %w", err)
	}
	present := map[string]bool{}
	for _, kv := range resp.Kvs {
		present[string(kv.Key)] = true
	}
	for i := range o.rep.Workers {
		w := &o.rep.Workers[i]
		w.LeasesLost, w.NewLeases = watch.counts(w.Worker)
		w.MemberAtEnd = present[memberKey(w.Worker)]
	}
	return nil
}

// waitRecovery records the time from back until every open unit is
// claimed again, polling etcd directly every 100 ms.
func (o *outage) waitRecovery(ctx context.Context, r *run, back time.Time) {
	for {
		st, err := r.st.reg.Status(ctx, r.id)
		if err == nil && (st.Units.Unclaimed == 0 || st.State.Terminal()) {
			s := time.Since(back).Seconds()
			o.rep.RecoveryS = &s
			r.h.log.Info("etcd outage: every unit claimed again", "s", fmt.Sprintf("%.2f", s))
			return
		}
		if sleepCtx(ctx, 100*time.Millisecond) != nil {
			return
		}
	}
}

// report adds the duplicates since the cut.
func (o *outage) report(_ *run, res *Result) {
	rep := o.rep
	if rep.AtS > 0 {
		rep.Duplicates = res.Duplicates - o.dupBefore
	}
	res.Fleet = &fleetReport{Outage: &rep}
}

// judge checks issue 13's targets for an etcd outage.
func (o *outage) judge(res *Result, cfg Config) {
	if res.Fleet == nil || res.Fleet.Outage == nil || res.Fleet.Outage.AtS == 0 {
		res.check("outage performed", false, "the broadcast ended before the cut")
		return
	}
	rep := res.Fleet.Outage
	res.check("outage performed", rep.ForS > 0, "cut at %.1fs for %.1fs (lease TTL %v)", rep.AtS, rep.ForS, cfg.LeaseTTL)
	if rep.RecoveryS == nil {
		res.check("every unit claimed again after the outage", false, "never seen")
	} else {
		res.check("every unit claimed again after the outage", true, "%.2fs after etcd was back", *rep.RecoveryS)
	}
	res.check("duplicates within one window per worker", rep.Duplicates <= rep.DuplicateBound,
		"%d since the cut, windows %d over %d workers", rep.Duplicates, rep.DuplicateBound, len(rep.Workers))
	for _, w := range rep.Workers {
		res.check(fmt.Sprintf("%s keeps its lease after the outage", w.Worker),
			w.LeasesLost <= 1 && w.NewLeases <= 1 && w.MemberAtEnd,
			"%d leases lost, %d new, member record at the end: %v", w.LeasesLost, w.NewLeases, w.MemberAtEnd)
	}
}

// compareIDs orders worker ids as worker-2 before worker-10.
func compareIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
