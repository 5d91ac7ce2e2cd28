package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/demo"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/internal/faultproxy"
	"github.com/herald-dev/herald/internal/fleet"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/trigger"
)

// run is one Herald scenario in progress: its fleet, its broadcast, and
// everything observed about them. The monitor loop and the scenario's
// chaos goroutine share it under mu.
type run struct {
	h      *harness
	st     *stack
	sc     scenario
	id     string // the broadcast
	fleet  *fleet.Fleet
	sink   *sinkProc
	attr   *attribution // nil unless the scenario tells senders apart
	rng    *rand.Rand   // the chaos goroutine's only
	client *http.Client // scrapes

	// etcdProxy, when set, stands between the workers and etcd.
	etcdProxy *faultproxy.Proxy
	// aud, when set, is the audience the spec names instead of the
	// synthetic one, and what the workers need to read it.
	aud *audienceSetup

	t0   time.Time // the trigger was produced
	rev0 int64     // etcd's revision just before
	// running closes when the broadcast is first seen running with every
	// unit claimed; t1 is then. The chaos schedule counts from t1, so that
	// how long intake takes does not move it.
	running chan struct{}
	t1      time.Time

	mu      sync.Mutex
	status  coordinator.Status // the latest
	events  []*event
	procs   map[procKey]*procRecord
	stopped map[string]bool // worker ids frozen now
	scrapeE error           // the last scrape error, for the log
}

// procKey names one process: a restarted worker is a new one.
type procKey struct {
	id  string
	pid int
}

// procRecord is what was last seen of one worker process.
type procRecord struct {
	addr    string
	samples []workerSample // oldest first; a few seconds' worth
	peakRSS int64
}

func (p *procRecord) last() workerSample {
	if len(p.samples) == 0 {
		return workerSample{}
	}
	return p.samples[len(p.samples)-1]
}

// rate is the process's delivered messages per second over the last few
// seconds of scrapes, 0 with fewer than two.
func (p *procRecord) rate() float64 {
	if len(p.samples) < 2 {
		return 0
	}
	a, b := p.samples[0], p.samples[len(p.samples)-1]
	if dt := b.at.Sub(a.at).Seconds(); dt > 0 {
		return (b.delivered - a.delivered) / dt
	}
	return 0
}

// event is something the scenario did to the fleet, as the report and the
// chart show it.
type event struct {
	AtS    float64 `json:"at_s"` // since the trigger
	Kind   string  `json:"kind"` // start, kill, restart, stop, cont, rejoin, join, term
	Worker string  `json:"worker"`
	// Units the worker held just before, for kill, stop and term.
	Units int `json:"units,omitempty"`
	// FailoverS, for kill and stop: until every open unit was claimed by a
	// live worker again.
	FailoverS *float64 `json:"failover_s,omitempty"`
	// Duplicates the endpoint saw from this kill or stop until the next
	// one (or the end), and the most the checkpoint window allows.
	Duplicates     *int64 `json:"duplicates,omitempty"`
	DuplicateBound *int64 `json:"duplicate_bound,omitempty"`
	// LeftS, for term: from SIGTERM to the process's exit.
	LeftS float64 `json:"left_s,omitempty"`
	// Note says what went wrong, if anything (a graceful exit that was not).
	Note string `json:"note,omitempty"`

	at        time.Time
	dupBefore int64 // the endpoint's duplicates at the event
	memberRev int64 // create revision of the worker's member record at the event
	rejoined  bool  // the worker holds a new lease since

	rate float64 // the worker's delivered per second just before, for kill and stop
}

func (e *event) disruptive() bool { return e.Kind == "kill" || e.Kind == "stop" }

// execute runs the scenario's broadcast to its end, with its chaos, and
// returns what it measured. The fleet is stopped before it returns.
func (r *run) execute(ctx context.Context) (Result, error) {
	cfg := r.h.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logDir := filepath.Join(r.h.out, "logs", r.sc.name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("loadtest: %w", err)
	}
	etcd := r.st.EtcdEndpoint()
	if r.etcdProxy != nil {
		etcd = r.etcdProxy.Endpoint()
	}
	fcfg := fleet.Config{
		Binary: r.h.binary, Etcd: etcd, Kafka: r.st.KafkaBrokers()[0],
		Args: r.h.workerArgs, LogDir: logDir, ReadyTimeout: cfg.LeaseTTL + 20*time.Second,
	}
	endpoint := r.sink.url("/push")
	if r.sc.attribute {
		r.attr = newAttribution(r.sink.addr)
		defer r.attr.close()
		endpoint = "http://" + proxyHost + ":" + port(r.sink.addr) + "/push"
		fcfg.Env = func(id string) []string {
			env, err := r.attr.env(id)
			if err != nil {
				r.h.log.Error("proxy", "worker", id, "err", err)
			}
			return env
		}
	}
	if r.sc.cpuProfile > 0 {
		fcfg.Args = append(slices.Clone(fcfg.Args), "--pprof")
	}
	if r.aud != nil {
		fcfg.Args = append(slices.Clone(fcfg.Args), r.aud.workerArgs...)
	}
	fl, err := fleet.New(fcfg)
	if err != nil {
		return Result{}, err
	}
	r.fleet = fl
	defer fl.Close(30 * time.Second)

	eligible, err := r.h.eligible(r.sc.subscribers)
	if err != nil {
		return Result{}, err
	}
	if r.aud != nil {
		eligible = r.aud.eligible
	}
	if err := r.sink.reset(ctx); err != nil {
		return Result{}, err
	}
	if err := r.startInitial(ctx); err != nil {
		return Result{}, err
	}
	r.rev0, err = r.st.revision(ctx)
	if err != nil {
		return Result{}, err
	}
	raw, err := withBatch(demo.SpecJSON(r.id, r.sc.subscribers, cfg.Seed, endpoint, cfg.MaxInFlight), r.sc.batchSize)
	if err != nil {
		return Result{}, err
	}
	if r.aud != nil {
		if raw, err = withAudience(raw, r.aud.spec); err != nil {
			return Result{}, err
		}
	}
	r.t0 = time.Now()
	if _, err := trigger.Trigger(ctx, r.st.KafkaBrokers(), devstack.BroadcastsTopic, raw, spec.Limits{}); err != nil {
		return Result{}, err
	}
	r.h.log.Info("triggered", "scenario", r.sc.name, "broadcast", r.id, "subscribers", r.sc.subscribers,
		"eligible", eligible, "workers", r.sc.workers)

	chaosCtx, stopChaos := context.WithCancel(ctx)
	var chaosErr error
	var chaos sync.WaitGroup
	if r.sc.chaos != nil {
		chaos.Add(1)
		go func() {
			defer chaos.Done()
			select {
			case <-r.running:
				chaosErr = r.sc.chaos(chaosCtx, r)
			case <-chaosCtx.Done():
			}
		}()
	}
	var profiles sync.WaitGroup
	if r.sc.cpuProfile > 0 {
		profiles.Go(func() { r.profileCPU(chaosCtx, eligible) })
	}
	st, err := r.monitor(ctx)
	end := time.Now()
	// A profile still running finishes on the fleet, now idle: it is
	// kept, and its log line says so.
	profiles.Wait()
	stopChaos()
	chaos.Wait()
	if err != nil {
		return Result{}, err
	}
	if chaosErr != nil && !errors.Is(chaosErr, context.Canceled) {
		return Result{}, fmt.Errorf("loadtest: %s: %w", r.sc.name, chaosErr)
	}
	res, err := r.finish(ctx, st, eligible, end)
	if err != nil || r.sc.after == nil {
		return res, err
	}
	// Before the fleet stops: the scenario may use it once more.
	return res, r.sc.after(ctx, r, &res)
}

// startInitial starts the scenario's first workers together.
func (r *run) startInitial(ctx context.Context) error {
	errs := make([]error, r.sc.workers)
	var wg sync.WaitGroup
	for i := range r.sc.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.start(ctx, workerID(i+1), "")
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func workerID(i int) string { return fmt.Sprintf("worker-%d", i) }

// monitor follows the broadcast until it ends: its status ten times a
// second (the failover times are measured here), the workers' metrics and
// memory and the endpoint's counts every second.
func (r *run) monitor(ctx context.Context) (coordinator.Status, error) {
	var lastSlow, lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return coordinator.Status{}, fmt.Errorf("loadtest: %s: broadcast %s did not finish: %w", r.sc.name, r.id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		st, err := r.st.reg.Status(ctx, r.id)
		if err != nil {
			continue // not registered yet, or etcd busy: ask again
		}
		now := time.Now()
		r.observe(ctx, st, now)
		if now.Sub(lastSlow) >= time.Second {
			r.sampleWorkers(ctx)
			lastSlow = now
		}
		if now.Sub(lastLog) >= 5*time.Second {
			r.h.log.Info("progress", "scenario", r.sc.name, "state", st.State, "delivered", st.Counters.Delivered,
				"units", st.Units.Total, "done", st.Units.Done, "unclaimed", st.Units.Unclaimed, "s", int(now.Sub(r.t0).Seconds()))
			lastLog = now
		}
		if st.State.Terminal() {
			return st, nil
		}
	}
}

// observe records a status and resolves the failovers it completes: after
// a kill or a stop, the failover is over once no open unit lacks a claim
// and the victim holds none, or holds them under a new lease.
func (r *run) observe(ctx context.Context, st coordinator.Status, now time.Time) {
	type pending struct {
		e         *event
		rejoined  bool
		memberRev int64
	}
	var check []pending
	if r.t1.IsZero() && st.State == coordinator.StateRunning && st.Units.Total > 0 && st.Units.Unclaimed == 0 {
		r.t1 = now
		close(r.running)
	}
	r.mu.Lock()
	r.status = st
	for _, e := range r.events {
		if e.disruptive() && e.FailoverS == nil {
			check = append(check, pending{e, e.rejoined, e.memberRev})
		}
	}
	r.mu.Unlock()
	for _, c := range check {
		victim := st.Workers[c.e.Worker]
		if !c.rejoined && victim.Units > 0 && st.Units.Unclaimed == 0 && !r.stoppedNow(c.e.Worker) {
			// Claims again: a restart may hold them under a new lease,
			// which its member record tells.
			if rev, err := r.st.memberRev(ctx, c.e.Worker); err == nil && rev != 0 && rev != c.memberRev {
				r.rejoin(c.e, now)
				c.rejoined = true
			}
		}
		if st.Units.Unclaimed == 0 && (victim.Units == 0 || c.rejoined) {
			s := now.Sub(c.e.at).Seconds()
			r.mu.Lock()
			c.e.FailoverS = &s
			r.mu.Unlock()
			r.h.log.Info("failover", "scenario", r.sc.name, "victim", c.e.Worker, "s", fmt.Sprintf("%.2f", s))
		}
	}
}

// watchRejoin waits for the victim of e to hold a new lease: its member
// record created again. An etcd watch sees that within milliseconds, well
// before the worker can claim work under the new lease and send, so the
// zombie's sends in between are told apart exactly.
func (r *run) watchRejoin(ctx context.Context, e *event, fromRev int64) {
	for resp := range r.st.cli.Watch(ctx, memberKey(e.Worker), clientv3.WithRev(fromRev+1)) {
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypePut && ev.Kv.CreateRevision != e.memberRev {
				r.rejoin(e, time.Now())
				return
			}
		}
	}
}

// rejoin notes that the victim of e holds a new lease.
func (r *run) rejoin(e *event, now time.Time) {
	if r.attr != nil && e.Kind == "stop" {
		r.attr.markRejoined(e.Worker) // first: its next request may be legitimate
	}
	r.mu.Lock()
	if e.rejoined {
		r.mu.Unlock()
		return
	}
	e.rejoined = true
	r.mu.Unlock()
	if e.Kind == "stop" {
		r.addEvent(&event{at: now, Kind: "rejoin", Worker: e.Worker})
	}
}

func (r *run) stoppedNow(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped[id]
}

// sampleWorkers scrapes every running worker's metrics and peak RSS, frozen
// ones excepted: they would not answer.
func (r *run) sampleWorkers(ctx context.Context) {
	for _, p := range r.fleet.Procs() {
		if r.stoppedNow(p.ID) {
			continue
		}
		r.sampleProc(ctx, p)
	}
}

// sampleProc records one scrape and the peak RSS of p.
func (r *run) sampleProc(ctx context.Context, p *fleet.Proc) {
	s, err := scrape(ctx, r.client, p.HTTPAddr)
	rss, rerr := p.PeakRSS()
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.procs[procKey{p.ID, p.Pid()}]
	if rec == nil {
		rec = &procRecord{addr: p.HTTPAddr}
		r.procs[procKey{p.ID, p.Pid()}] = rec
	}
	if err == nil {
		rec.samples = append(rec.samples, s)
		// Keep about three seconds: enough for a rate, bounded for long runs.
		for len(rec.samples) > 2 && s.at.Sub(rec.samples[0].at) > 3*time.Second {
			rec.samples = rec.samples[1:]
		}
	} else {
		r.scrapeE = err
	}
	if rerr == nil {
		rec.peakRSS = max(rec.peakRSS, rss)
	}
}

// addEvent records e, which happened at e.at.
func (r *run) addEvent(e *event) *event {
	e.AtS = e.at.Sub(r.t0).Seconds()
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.h.log.Info(e.Kind, "scenario", r.sc.name, "worker", e.Worker, "at_s", fmt.Sprintf("%.1f", e.AtS), "units", e.Units)
	return e
}

// finish reads the final figures and builds the result.
func (r *run) finish(ctx context.Context, st coordinator.Status, eligible int64, end time.Time) (Result, error) {
	r.sampleWorkers(ctx)
	rev1, err := r.st.revision(ctx)
	if err != nil {
		return Result{}, err
	}
	ss, err := r.sink.stats(ctx)
	if err != nil {
		return Result{}, err
	}
	got := ss.Broadcasts[r.id]
	elapsed := end.Sub(r.t0).Seconds()
	res := Result{
		Scenario: r.sc.name, Sender: "herald", BroadcastID: r.id, Workers: r.sc.maxWorkers(),
		Subscribers: r.sc.subscribers, Eligible: eligible,
		Delivered: got.Delivered, Duplicates: got.Duplicates, Failed: st.Counters.Failed,
		State: string(st.State), Reason: st.Reason, ElapsedS: elapsed, Endpoint: endpointFigures(ss),
		FirstDeliveryS: sinceOrZero(ss.FirstDeliveryAt, r.t0), RunningS: sinceOrZero(r.t1, r.t0),
	}
	res.Lost = max(eligible-res.Delivered-res.Failed, 0)
	if elapsed > 0 {
		res.MsgsPerS = float64(res.Delivered) / elapsed
		res.EtcdWritesPerS = float64(rev1-r.rev0) / elapsed
	}
	var send hist
	r.mu.Lock()
	for _, p := range r.procs {
		if err := send.add(p.last().send); err != nil {
			r.mu.Unlock()
			return Result{}, err
		}
		res.WorkerPeakRSSMiB = max(res.WorkerPeakRSSMiB, float64(p.peakRSS)/(1<<20))
	}
	events := r.events
	r.mu.Unlock()
	res.setLatency(send)
	res.Events = events
	windowDuplicates(events, got.Duplicates)
	for _, e := range events {
		if e.disruptive() && e.FailoverS != nil {
			res.FailoverS = append(res.FailoverS, *e.FailoverS)
		}
	}
	if r.attr != nil {
		for _, e := range events {
			if e.Kind == "stop" {
				z := r.attr.zombie(e.Worker)
				res.Zombie = &z
			}
		}
	}
	res.Series = seriesSince(ss, r.t0)
	return res, nil
}

// endpointFigures keeps what the endpoint answered besides deliveries.
func endpointFigures(ss sink.Stats) *endpointStats {
	return &endpointStats{Requests: ss.Requests, Injected429: ss.Injected429, Injected5xx: ss.Injected500 + ss.Injected503,
		BadRequests: ss.BadRequests, Abandoned: ss.Abandoned}
}

func port(hostport string) string {
	for i := len(hostport) - 1; i >= 0; i-- {
		if hostport[i] == ':' {
			return hostport[i+1:]
		}
	}
	return ""
}

// sinceOrZero is t - t0 in seconds, 0 when t is unset.
func sinceOrZero(t, t0 time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return t.Sub(t0).Seconds()
}
