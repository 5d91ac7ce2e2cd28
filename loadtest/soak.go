package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/coordinator"
)

// soak sends many small broadcasts back to back to one fleet, as months
// of use would, and watches what must not grow with them: etcd's database
// (what a finished broadcast leaves behind, and the history of every
// write), the workers' memory, and how long a worker started at the end
// takes to join (it reads the fleet's state from etcd).

// soakReport is soak's own figures.
type soakReport struct {
	Broadcasts      int   `json:"broadcasts"`
	Done            int   `json:"done"`
	SubscribersEach int64 `json:"subscribers_each"`
	EligibleEach    int64 `json:"eligible_each"`
	// Seconds from producing a broadcast's trigger to seeing it done:
	// quantiles over all, and the mean of the first and the last tenth
	// (at most 100 each), which tell whether broadcasts slow down.
	BroadcastP50S float64 `json:"broadcast_p50_s"`
	BroadcastP99S float64 `json:"broadcast_p99_s"`
	BroadcastMaxS float64 `json:"broadcast_max_s"`
	FirstMeanS    float64 `json:"first_mean_s"`
	LastMeanS     float64 `json:"last_mean_s"`
	// Marks are etcd's size and the workers' memory before the first
	// broadcast, every 100 broadcasts, at the first quarter and at the
	// end.
	Marks []soakMark `json:"marks"`
	// WorkerRSSMiB and WorkerPeakRSSMiB are each worker's resident set
	// now (VmRSS) and its peak (VmHWM) at the end.
	WorkerRSSMiB     map[string]float64 `json:"worker_rss_mib"`
	WorkerPeakRSSMiB map[string]float64 `json:"worker_peak_rss_mib"`
	// ReadyAtStartS is how long each first worker took to be ready on an
	// empty etcd; FreshReadyS how long one more took at the end.
	ReadyAtStartS []float64 `json:"ready_at_start_s"`
	FreshReadyS   float64   `json:"fresh_worker_ready_s"`
	// NotExact names the first broadcasts not done, or not delivered
	// exactly once.
	NotExact []string `json:"not_exact,omitempty"`
}

// soakMark is one reading of etcd and the workers during soak.
type soakMark struct {
	Broadcasts int     `json:"broadcasts"` // finished so far
	AtS        float64 `json:"at_s"`       // since the first trigger
	// DBSize is etcd's database file; DBSizeInUse the part of it holding
	// data (the rest is free pages, reused before the file grows).
	DBSize      int64 `json:"db_size_bytes"`
	DBSizeInUse int64 `json:"db_size_in_use_bytes"`
	Revision    int64 `json:"revision"`
	// Keys counts the keys under Herald's prefix, LiveBytes their keys'
	// and values' bytes: what is live, without the history of earlier
	// revisions that DBSizeInUse holds until etcd compacts it.
	Keys      int64 `json:"keys"`
	LiveBytes int64 `json:"live_bytes"`
	// WorkerRSSMiB is the largest resident set of a worker now.
	WorkerRSSMiB float64 `json:"worker_rss_mib"`
}

// runSoak is the soak scenario.
func runSoak(ctx context.Context, r *run) (Result, error) {
	cfg := r.h.cfg
	n, subs := cfg.SoakBroadcasts, cfg.SoakSubscribers
	eligible, err := r.h.eligible(subs)
	if err != nil {
		return Result{}, err
	}
	if err := r.sink.reset(ctx); err != nil {
		return Result{}, err
	}
	ready, err := r.startFleet(ctx, "--retention", cfg.SoakRetention.String())
	if r.fleet != nil {
		defer r.fleet.Close(30 * time.Second)
	}
	if err != nil {
		return Result{}, err
	}
	rep := &soakReport{Broadcasts: n, SubscribersEach: subs, EligibleEach: eligible, ReadyAtStartS: ready}
	if r.rev0, err = r.st.revision(ctx); err != nil {
		return Result{}, err
	}
	r.t0 = time.Now()
	if err := r.soakMark(ctx, rep, 0); err != nil {
		return Result{}, err
	}
	// A broadcast of a few hundred subscribers takes well under a second;
	// one that takes minutes is stuck, and the soak ends there.
	bound := min(cfg.Timeout, 2*time.Minute)
	stamp := time.Now().Unix()
	var (
		ids   []string
		ends  []coordinator.Status
		spent []float64
	)
	for i := 1; i <= n; i++ {
		if ctx.Err() != nil {
			return Result{}, errStopped
		}
		id := fmt.Sprintf("lt-soak-%d-%05d", stamp, i)
		bctx, cancel := context.WithTimeout(ctx, bound)
		t := time.Now()
		err := r.triggerDemo(bctx, id, subs)
		var st coordinator.Status
		if err == nil {
			st, err = r.waitEnd(bctx, id, 10*time.Millisecond)
		}
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return Result{}, errStopped
			}
			r.h.log.Warn("soak stopped", "broadcast", id, "after", i-1, "err", err)
			break
		}
		ids, ends, spent = append(ids, id), append(ends, st), append(spent, time.Since(t).Seconds())
		if i%100 == 0 || i == n/4 || i == n {
			if err := r.soakMark(ctx, rep, i); err != nil {
				return Result{}, err
			}
			r.h.log.Info("soak", "broadcasts", i, "of", n, "s", int(time.Since(r.t0).Seconds()))
		}
	}
	end := time.Now()

	rep.WorkerRSSMiB, rep.WorkerPeakRSSMiB = map[string]float64{}, map[string]float64{}
	var peak float64
	for _, p := range r.fleet.Procs() {
		if rss, hwm, err := procMemory(p.Pid()); err == nil {
			rep.WorkerRSSMiB[p.ID], rep.WorkerPeakRSSMiB[p.ID] = mib(rss), mib(hwm)
			peak = max(peak, mib(hwm))
		}
	}
	var latency Result
	r.sendLatency(ctx, &latency)
	// A worker joining now reads the fleet's state as months of use left
	// it; compare with the first workers' start on an empty etcd.
	if rep.FreshReadyS, err = r.startTimed(ctx, workerID(r.sc.workers+1)); err != nil {
		return Result{}, err
	}

	ss, err := r.sink.stats(ctx)
	if err != nil {
		return Result{}, err
	}
	var t tally
	for i, id := range ids {
		t.add(id, ends[i], ss.Broadcasts[id], eligible)
	}
	rep.Done, rep.NotExact = t.done, t.firstBad
	rep.setTimes(spent)
	rev1, err := r.st.revision(ctx)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		Scenario: r.sc.name, Sender: "herald", BroadcastID: fmt.Sprintf("lt-soak-%d-*", stamp), Workers: r.sc.workers,
		Subscribers: r.sc.subscribers, ElapsedS: end.Sub(r.t0).Seconds(), Endpoint: endpointFigures(ss),
		FirstDeliveryS: sinceOrZero(ss.FirstDeliveryAt, r.t0), WorkerPeakRSSMiB: peak, Soak: rep,
		Series: seriesSince(ss, r.t0),
	}
	t.fill(&res, eligible, n)
	res.SendP50Ms, res.SendP99Ms = latency.SendP50Ms, latency.SendP99Ms
	if res.ElapsedS > 0 {
		res.MsgsPerS = float64(res.Delivered) / res.ElapsedS
		res.EtcdWritesPerS = float64(rev1-r.rev0) / res.ElapsedS
	}
	res.check("every broadcast exact", t.done == n && len(t.firstBad) == 0,
		"%d of %d done, %d not exactly once %s", t.done, n, len(t.firstBad), strings.Join(t.firstBad, "; "))
	res.checkFlat(rep, n)
	return res, nil
}

// soakMark records etcd's size and the workers' memory after i
// broadcasts.
func (r *run) soakMark(ctx context.Context, rep *soakReport, i int) error {
	st, err := r.st.cli.Status(ctx, r.st.EtcdEndpoint())
	if err != nil {
		return fmt.Errorf("loadtest: etcd status: %w", err)
	}
	live, err := r.st.cli.Get(ctx, coordinator.DefaultPrefix+"/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("loadtest: etcd keys: %w", err)
	}
	m := soakMark{Broadcasts: i, AtS: time.Since(r.t0).Seconds(), DBSize: st.DbSize, DBSizeInUse: st.DbSizeInUse,
		Revision: st.Header.Revision, Keys: live.Count}
	for _, kv := range live.Kvs {
		m.LiveBytes += int64(len(kv.Key) + len(kv.Value))
	}
	for _, p := range r.fleet.Procs() {
		if rss, _, err := procMemory(p.Pid()); err == nil {
			m.WorkerRSSMiB = max(m.WorkerRSSMiB, mib(rss))
		}
	}
	rep.Marks = append(rep.Marks, m)
	return nil
}

// checkFlat is soak's target: what etcd holds does not grow with the
// broadcasts. etcd frees the history of writes only when it compacts
// (once a minute in the devstack), so the size in use saws up and down
// between compactions, and two single readings compare phases of the saw,
// not growth. So the checks compare the largest reading of the last
// quarter of the soak with the largest of its second quarter (after the
// first quarter, by which the fleet has done everything it does once:
// registrations, first compactions, summaries reaching their retention),
// each window several compactions long in a soak of the default size:
// the size in use, and the keys live (the archive of finished broadcasts
// and the sweep of their summaries).
func (res *Result) checkFlat(rep *soakReport, n int) {
	var early, late, last *soakMark
	for i := range rep.Marks {
		m := &rep.Marks[i]
		switch {
		case m.Broadcasts >= n/4 && m.Broadcasts <= n/2:
			early = larger(early, m)
		case m.Broadcasts > 3*n/4:
			late = larger(late, m)
		}
		last = m
	}
	if early == nil || late == nil || last.Broadcasts != n {
		res.check("etcd size in use flat", false, "no readings in the second and the last quarter (%d broadcasts done)", last.Broadcasts)
		return
	}
	res.check("etcd size in use flat", float64(late.DBSizeInUse) <= 1.2*float64(early.DBSizeInUse),
		"largest in use %.2f MiB in the last quarter (after %d broadcasts), %.2f MiB in the second (after %d): x%.2f, limit x1.2; file %.2f MiB at the end",
		mib(late.DBSizeInUse), late.Broadcasts, mib(early.DBSizeInUse), early.Broadcasts,
		float64(late.DBSizeInUse)/max(float64(early.DBSizeInUse), 1), mib(last.DBSize))
	lk, ek := maxKeys(rep.Marks, 3*n/4+1, n), maxKeys(rep.Marks, n/4, n/2)
	res.check("etcd keys live flat", float64(lk) <= 1.2*float64(ek),
		"at most %d keys live in the last quarter, %d in the second: x%.2f, limit x1.2; %d keys of %.2f MiB at the end",
		lk, ek, float64(lk)/max(float64(ek), 1), last.Keys, mib(last.LiveBytes))
}

// larger returns the mark with more in use.
func larger(a, b *soakMark) *soakMark {
	if a == nil || b.DBSizeInUse > a.DBSizeInUse {
		return b
	}
	return a
}

// maxKeys is the most keys live at a mark from broadcasts from to to.
func maxKeys(marks []soakMark, from, to int) int64 {
	var most int64
	for _, m := range marks {
		if m.Broadcasts >= from && m.Broadcasts <= to {
			most = max(most, m.Keys)
		}
	}
	return most
}

// setTimes summarises the broadcasts' durations, in the order they ran.
func (rep *soakReport) setTimes(spent []float64) {
	if len(spent) == 0 {
		return
	}
	tenth := min(max(len(spent)/10, 1), 100)
	rep.FirstMeanS, rep.LastMeanS = mean(spent[:tenth]), mean(spent[len(spent)-tenth:])
	sorted := slices.Clone(spent)
	slices.Sort(sorted)
	at := func(q float64) float64 { return sorted[min(int(q*float64(len(sorted))), len(sorted)-1)] }
	rep.BroadcastP50S, rep.BroadcastP99S, rep.BroadcastMaxS = at(0.5), at(0.99), sorted[len(sorted)-1]
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// lines are the report as writeFigures prints it.
func (rep *soakReport) lines() []string {
	tenth := min(max(rep.Broadcasts/10, 1), 100)
	out := []string{
		fmt.Sprintf("%d of %d broadcasts of %d subscribers (%d eligible) done; trigger to done p50 %.2fs, p99 %.2fs, max %.2fs; first %d mean %.2fs, last %d mean %.2fs",
			rep.Done, rep.Broadcasts, rep.SubscribersEach, rep.EligibleEach, rep.BroadcastP50S, rep.BroadcastP99S, rep.BroadcastMaxS,
			tenth, rep.FirstMeanS, tenth, rep.LastMeanS),
	}
	for _, m := range rep.Marks {
		out = append(out, fmt.Sprintf("after %5d: etcd %7.2f MiB in use of %7.2f MiB, revision %6d, %5d keys of %6.2f MiB; largest worker RSS %5.1f MiB (at %.0fs)",
			m.Broadcasts, mib(m.DBSizeInUse), mib(m.DBSize), m.Revision, m.Keys, mib(m.LiveBytes), m.WorkerRSSMiB, m.AtS))
	}
	ids := make([]string, 0, len(rep.WorkerRSSMiB))
	for id := range rep.WorkerRSSMiB {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var rss []string
	for _, id := range ids {
		rss = append(rss, fmt.Sprintf("%s %.1f MiB (peak %.1f)", id, rep.WorkerRSSMiB[id], rep.WorkerPeakRSSMiB[id]))
	}
	var ready []string
	for _, s := range rep.ReadyAtStartS {
		ready = append(ready, fmt.Sprintf("%.2f", s))
	}
	out = append(out, "worker RSS at the end: "+strings.Join(rss, ", "),
		fmt.Sprintf("ready: first workers %ss on an empty etcd, one more at the end %.2fs", strings.Join(ready, ", "), rep.FreshReadyS))
	return out
}
