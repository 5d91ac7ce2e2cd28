package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/trigger"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/herald-dev/herald/worker/delivery"
)

// DefaultWorkerMaxInFlight is Config.MaxInFlight's default: the sends in
// flight on one worker over all its broadcasts. It is the largest
// max_in_flight one endpoint may ask for, so a broadcast alone is never
// held below what its spec allows.
const DefaultWorkerMaxInFlight = 1024

// Config configures a Worker. Zero values mean the documented defaults.
type Config struct {
	// Brokers are the Kafka bootstrap addresses. Required unless NoIntake.
	Brokers []string
	// Topic is the trigger topic; "" means trigger.DefaultTopic.
	Topic string
	// DeadLetterTopic receives failed deliveries; "" means
	// delivery.DefaultDeadLetterTopic.
	DeadLetterTopic string
	// GroupID is the Kafka consumer group of the fleet; "" means
	// DefaultGroupID.
	GroupID string
	// NoIntake leaves trigger intake to other workers (tests, batch runs).
	NoIntake bool

	// CheckpointEvery and CheckpointInterval bound the re-send window after
	// a crash: a unit checkpoints as soon as this many records finished
	// (0: 1000) or this much time passed (0: 1s), whichever comes first,
	// but never more often than CheckpointMinInterval (0: 20ms), so etcd
	// writes per unit stay bounded (50/s) whatever the message rate, and
	// the window holds up to 50,000 records a second per unit.
	CheckpointEvery       int
	CheckpointInterval    time.Duration
	CheckpointMinInterval time.Duration
	// Window is how many owned records of one unit may be read but not yet
	// finished (0: 4096). It bounds memory per unit and how far reading
	// runs ahead of a slow record.
	Window int
	// HandoffDrain is how long a hand-back waits for sends in flight before
	// abandoning them to the next owner (0: 5s).
	HandoffDrain time.Duration
	// MaxInFlight bounds the sends in flight on this worker over all its
	// broadcasts together (0: 1024), and with them the connections open to
	// endpoints. Each broadcast still sends at most its endpoint's
	// max_in_flight at once; broadcasts that want more than an equal share
	// of the worker's get an equal share, and one alone may use them all.
	MaxInFlight int

	// DeadLetters sizes the queue failed deliveries wait in for Kafka
	// (zero values: delivery's defaults, 10,000 letters).
	DeadLetters delivery.DeadLetterQueueConfig

	AudienceLimits audience.Limits
	SpecLimits     spec.Limits
	// Delivery tunes the sender beyond what each broadcast's endpoint sets.
	Delivery delivery.Config

	// Allow lists the endpoint origins deliveries may go to. A trigger
	// whose endpoint it does not allow is rejected at intake, and the
	// sender checks again before every attempt. Nil allows nothing.
	Allow *allowlist.List
	// Secrets supplies the secrets specs name (endpoint.signing_secret,
	// endpoint.auth_secret). Nil means none: a spec naming one is rejected.
	Secrets Secrets
	// KafkaDialer connects the trigger consumer, with TLS and SASL when
	// the cluster wants them (internal/connect builds one). Nil means
	// plain TCP.
	KafkaDialer *kafka.Dialer
	// AudienceDir, when set, is the only directory file audiences may be
	// read from: intake rejects a trigger whose audience.path, made
	// absolute against the working directory and cleaned, is not under it.
	// "" allows any file the worker can read (docs/SECURITY.md).
	AudienceDir string
	// FetchMaxBytes bounds what one fetch from the trigger topic may
	// return (0: 4 MiB). A trigger is at most SpecLimits.MaxBytes; the
	// broker still returns a single larger message, which intake rejects.
	FetchMaxBytes int
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = trigger.DefaultTopic
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = delivery.DefaultDeadLetterTopic
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = 1000
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Second
	}
	if c.CheckpointMinInterval == 0 {
		c.CheckpointMinInterval = 20 * time.Millisecond
	}
	if c.Window == 0 {
		c.Window = 4096
	}
	if c.HandoffDrain == 0 {
		c.HandoffDrain = 5 * time.Second
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultWorkerMaxInFlight
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = 4 << 20
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case !c.NoIntake && len(c.Brokers) == 0:
		return errors.New("worker: config: no Kafka brokers")
	case c.CheckpointEvery < 0, c.Window < 0:
		return errors.New("worker: config: negative checkpoint count or window")
	case c.FetchMaxBytes < 0:
		return errors.New("worker: config: negative fetch size")
	case c.MaxInFlight < 0:
		return errors.New("worker: config: negative max in flight")
	case c.CheckpointMinInterval > c.CheckpointInterval && c.CheckpointInterval > 0:
		return errors.New("worker: config: checkpoint min interval above the interval")
	}
	return nil
}

// Worker is one fleet member: it takes triggers from Kafka, and streams,
// renders and sends the units its coordinator claims.
type Worker struct {
	cfg     Config
	coord   *coordinator.Coordinator
	log     *slog.Logger
	metrics *metrics
	admit   *admission
	gather  prometheus.Gatherer
	// unitCfg and runDeps are what each unit run and broadcast run is
	// built with: the parts of the worker they use, and nothing else.
	unitCfg unitConfig
	runDeps broadcastDeps // dead is set by Run, which owns the queue
	dead    delivery.DeadLetterBatchWriter
	reg     prometheus.Registerer // nil: no metrics

	// broadcasts are the broadcasts with a unit running here. Only the
	// claim loop's goroutine reads or writes it.
	broadcasts map[string]*broadcastRun

	mu    sync.Mutex // guards ready
	ready bool
}

// New builds a worker around its coordinator. dead writes failed
// deliveries to the dead-letter topic (a *delivery.DeadLetterWriter); Run
// feeds it from a bounded queue, and the caller closes it after Run has
// returned. A nil registerer means no metrics are exported.
func New(cfg Config, c *coordinator.Coordinator, dead delivery.DeadLetterBatchWriter, log *slog.Logger, reg *prometheus.Registry) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Worker{
		cfg:        cfg,
		coord:      c,
		log:        log,
		unitCfg:    cfg.unitConfig(),
		broadcasts: make(map[string]*broadcastRun),
	}
	var r prometheus.Registerer
	if reg != nil {
		r, w.gather = reg, reg
	}
	w.metrics = newMetrics(r, c.Deadline)
	w.admit = newAdmission(r)
	w.dead, w.reg = dead, r
	w.runDeps = broadcastDeps{
		metrics:        w.metrics,
		admit:          w.admit,
		slots:          newSendSlots(cfg.MaxInFlight),
		rateShare:      c.RateShare,
		noteEndpoint:   c.NoteEndpoint,
		broadcastState: c.BroadcastState,
		log:            log,
	}
	if cfg.Allow.Len() == 0 {
		log.Warn("the endpoint allowlist is empty: every trigger will be rejected (configure --allow-endpoint)")
	}
	return w, nil
}

// Run works until ctx ends, then hands its units back and leaves the fleet.
func (w *Worker) Run(ctx context.Context) error {
	// Failed deliveries go to Kafka from a bounded queue, written after
	// every unit has stopped: the queue outlives the claim loop.
	dlq, err := delivery.NewDeadLetterQueue(w.dead, w.cfg.DeadLetters, w.log.With("component", "deadletters"), w.reg)
	if err != nil {
		return fmt.Errorf("worker: dead-letter queue: %w", err)
	}
	w.runDeps.dead = dlq
	defer func() {
		if err := dlq.Close(); err != nil {
			w.log.Warn("dead-letter queue closed with letters unwritten; their records go to the next owners", "err", err)
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	// The coordinator outlives the claims loop's context so that, on
	// shutdown, it can ask for every unit back and wait for the hand-backs.
	g.Go(func() error { return w.coord.Run(gctx) })
	if !w.cfg.NoIntake {
		in := newIntake(w.cfg, w.coord.Registry(), w.log.With("component", "intake"), w.metrics, w.admit)
		g.Go(func() error { return in.run(gctx) })
	}
	g.Go(func() error { return w.claimLoop(gctx) })
	w.setReady(true)
	err = g.Wait()
	w.setReady(false)
	return err
}

// claimLoop starts a unit runner for every claim and owns them all: it
// returns only after every runner has returned and, with the last unit of
// each broadcast, that broadcast's run (send pool and state watcher) has
// stopped.
func (w *Worker) claimLoop(ctx context.Context) error {
	done := make(chan *unitRun)
	var units sync.WaitGroup
	running := 0
	var waiting []*startRetry // claims whose unit could not start yet
	defer func() {
		// A claim never started has nothing in flight: give it back as it is.
		for _, r := range waiting {
			w.handBack(r, &units)
		}
		// Runners end when the coordinator ends their claims (hand-back on
		// shutdown, or lease loss); keep reaping until they have.
		for running > 0 {
			w.unitDone(<-done)
			running--
		}
		units.Wait()
	}()
	start := func(cl *coordinator.Claim) error {
		u, err := w.startUnit(ctx, cl)
		if err != nil {
			return err
		}
		running++
		units.Add(1)
		go func() {
			defer units.Done()
			u.run()
			done <- u
		}()
		return nil
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	claims := w.coord.Claims()
	for {
		select {
		case cl, ok := <-claims:
			if !ok {
				return nil
			}
			if err := start(cl); err != nil {
				waiting = append(waiting, w.cannotStart(cl, err, nil))
			}
		case u := <-done:
			running--
			w.unitDone(u)
		case now := <-tick.C:
			waiting = w.retryStarts(waiting, now, start, &units)
		case <-ctx.Done():
			return nil
		}
	}
}

// startRetry is a claimed unit that could not start: its spec could not be
// loaded or compiled, or a secret it names is missing here. The claim is
// kept and the start retried with backoff (the cause is often passing, and
// handing the unit back would only split it among workers that may fail
// alike); a hand-back request or the claim's end is honoured meanwhile.
type startRetry struct {
	cl      *coordinator.Claim
	attempt int
	next    time.Time
}

func (w *Worker) cannotStart(cl *coordinator.Claim, err error, r *startRetry) *startRetry {
	if r == nil {
		r = &startRetry{cl: cl}
	}
	r.attempt++
	r.next = time.Now().Add(min(backoff(r.attempt+3), 30*time.Second))
	w.metrics.startErrors.Inc()
	w.log.Error("cannot start claimed unit; retrying", "broadcast", cl.Broadcast(), "unit", cl.Unit().ID,
		"attempt", r.attempt, "err", err)
	return r
}

func (w *Worker) retryStarts(waiting []*startRetry, now time.Time, start func(*coordinator.Claim) error, hands *sync.WaitGroup) []*startRetry {
	kept := waiting[:0]
	for _, r := range waiting {
		select {
		case <-r.cl.Context().Done():
			continue // the claim ended; whoever owns the unit now starts it
		case <-r.cl.HandoffRequested():
			w.handBack(r, hands)
			continue
		default:
		}
		if now.Before(r.next) {
			kept = append(kept, r)
			continue
		}
		if err := start(r.cl); err != nil {
			kept = append(kept, w.cannotStart(r.cl, err, r))
		}
	}
	return kept
}

// handBack returns a never-started unit at the progress it was claimed
// with. It runs on a goroutine of its own, counted in hands (the claim
// loop's runners), since settle retries while etcd fails to answer and the
// claim loop must not wait for that.
func (w *Worker) handBack(r *startRetry, hands *sync.WaitGroup) {
	log := w.log.With("broadcast", r.cl.Broadcast(), "unit", r.cl.Unit().ID)
	hands.Add(1)
	go func() {
		defer hands.Done()
		settle(r.cl, "hand back unstarted unit", func(ctx context.Context) error {
			return r.cl.Handoff(ctx, r.cl.Progress())
		}, w.metrics, log)
	}()
}

func (w *Worker) startUnit(ctx context.Context, cl *coordinator.Claim) (*unitRun, error) {
	id := cl.Broadcast()
	b, err := w.broadcastFor(ctx, id)
	if err != nil {
		return nil, err
	}
	b.units++
	w.metrics.unitsHeld.Inc()
	return newUnitRun(b, cl, w.unitCfg, w.metrics), nil
}

// unitDone accounts for a unit runner that returned. The last unit of a
// broadcast on this worker stops the broadcast's run: nothing feeds its
// pool any more.
func (w *Worker) unitDone(u *unitRun) {
	w.metrics.unitsHeld.Dec()
	b := u.b
	if b.units--; b.units > 0 {
		return
	}
	delete(w.broadcasts, b.id)
	b.stop()
}

// broadcastFor returns the broadcast's run on this worker, loading and
// compiling its spec on first use.
func (w *Worker) broadcastFor(ctx context.Context, id string) (*broadcastRun, error) {
	if b := w.broadcasts[id]; b != nil {
		return b, nil
	}
	raw, err := w.coord.Registry().Spec(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("worker: load spec of %s: %w", id, err)
	}
	sp, set, err := spec.Parse(raw, w.cfg.SpecLimits)
	if err != nil {
		return nil, fmt.Errorf("worker: registered spec of %s: %w", id, err)
	}
	// Secrets are read once per broadcast on this worker: a rotated secret
	// takes effect for broadcasts started after the change.
	creds, cerr := loadCredentials(w.cfg.Secrets, sp.Endpoint)
	if cerr != nil {
		return nil, fmt.Errorf("worker: credentials of %s: %s: %s", id, cerr.Field, cerr.Msg)
	}
	dc := w.cfg.Delivery
	dc.MaxInFlight = sp.Endpoint.MaxInFlight
	dc.Timeout = time.Duration(sp.Endpoint.TimeoutMS) * time.Millisecond
	dc.MaxAttempts = sp.Endpoint.MaxAttempts
	dc.Fence = w.fence
	if exp := sp.ExpiresAt; exp != nil {
		// Checked before every attempt, probes of an open breaker
		// included: a send that waited past expires_at sends nothing.
		dc.Fence = func() error {
			if !time.Now().Before(*exp) {
				return errExpired
			}
			return w.fence()
		}
	}
	dc.Allow = w.senderAllow
	dc.OnLimit = w.admit.limit
	dc.SigningKeys, dc.Authorization = creds.keys, creds.auth
	// Send latency and retries are counted by the worker from each Result:
	// a Sender per broadcast cannot register the same series twice.
	s, err := delivery.New(dc, w.log.With("broadcast", id), nil)
	if err != nil {
		return nil, fmt.Errorf("worker: sender for %s: %w", id, err)
	}
	b := newBroadcastRun(id, sp, set, s, w.runDeps)
	w.broadcasts[id] = b
	return b, nil
}

// errFenced stops sends once the lease may have expired on the server.
var errFenced = errors.New("worker: lease deadline passed")

// errExpired stops the sends of a broadcast past its expires_at.
var errExpired = errors.New("worker: broadcast expired")

// fence allows a send attempt only before the coordinator's local lease
// deadline (last keepalive acknowledgement + TTL - margin). It is checked
// before every attempt, so a worker frozen past its lease (SIGSTOP) sends
// nothing when it wakes, before any timer has had a chance to fire.
func (w *Worker) fence() error {
	d := w.coord.Deadline()
	if d.IsZero() || !time.Now().Before(d) {
		return errFenced
	}
	return nil
}

func (w *Worker) setReady(v bool) {
	w.mu.Lock()
	w.ready = v
	w.mu.Unlock()
}

// Handler serves /metrics, /healthz (the process is alive) and /readyz
// (joined the fleet with a live lease).
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	if w.gather != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(w.gather, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		w.mu.Lock()
		ready := w.ready
		w.mu.Unlock()
		if !ready || !w.coord.Ready() {
			http.Error(rw, "not ready: not joined to the fleet", http.StatusServiceUnavailable)
			return
		}
		rw.Write([]byte("ready\n"))
	})
	return mux
}
