package worker

import (
	"context"
	"crypto/tls"
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
	// a crash: the worker writes the progress of all its slots of a
	// broadcast, in one transaction, as soon as half this many of their
	// records finished (0: 1000) or this much time passed (0: 1s),
	// whichever comes first, but never more often than
	// CheckpointMinInterval (0: 2ms), so etcd writes per broadcast stay
	// bounded (500/s) whatever the message rate and the number of slots.
	// Reading stops while CheckpointEvery records have finished without an
	// acknowledged write, so a crash or an etcd outage costs at most that
	// many (plus what is in flight), and a worker finishes at most
	// CheckpointEvery records per CheckpointMinInterval of one broadcast.
	CheckpointEvery       int
	CheckpointInterval    time.Duration
	CheckpointMinInterval time.Duration
	// Window is how many owned records of one broadcast may be read but
	// not yet finished on this worker (0: 4096; at most
	// coordinator.MaxPending). It bounds memory per broadcast, and how
	// many records a checkpoint lists as pending.
	Window int
	// HandoffDrain is how long a hand-back waits for sends in flight before
	// abandoning them to the next owner (0: 5s).
	HandoffDrain time.Duration
	// MaxInFlight bounds the sends in flight on this worker over all its
	// broadcasts together (0: 1024), and with them the goroutines that
	// send and the connections kept open to each endpoint host (one pool
	// for every broadcast). Each broadcast still sends at most its endpoint's
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
	// PushTLS configures TLS to push providers (APNs, FCM and its token
	// endpoint, Web Push services); nil means the system's roots. Tests
	// and `herald dev` trust their fake providers' certificates here.
	PushTLS *tls.Config
	// InvalidTokens receives the device tokens and push subscriptions a
	// provider declared dead (delivery.NewInvalidTokenWriter, topic
	// herald.invalid-tokens), written with their records' dead letters,
	// from the same queue. Nil means they go to the dead-letter topic only.
	InvalidTokens delivery.InvalidTokenBatchWriter
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
		c.CheckpointMinInterval = 2 * time.Millisecond
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
	case c.Window > coordinator.MaxPending:
		return fmt.Errorf("worker: config: window %d above %d", c.Window, coordinator.MaxPending)
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
// renders and sends the slots its coordinator claims.
type Worker struct {
	cfg     Config
	coord   *coordinator.Coordinator
	log     *slog.Logger
	metrics *metrics
	admit   *admission
	gather  prometheus.Gatherer
	// runCfg and runDeps are what each broadcast run is built with: the
	// parts of the worker it uses, and nothing else.
	runCfg  runConfig
	runDeps broadcastDeps // dead is set by Run, which owns the queue
	dead    delivery.DeadLetterBatchWriter
	reg     prometheus.Registerer // nil: no metrics
	// conns is the connection pool every broadcast's Sender sends over.
	conns *delivery.Pool
	// pushClient is the HTTP client every push broadcast sends over.
	pushClient *http.Client
	// empty carries runs that hold no slot any more to the claim loop.
	empty chan *broadcastRun

	// broadcasts are the broadcasts with a slot held here. Only the claim
	// loop's goroutine reads or writes it.
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
		runCfg:     cfg.runConfig(),
		empty:      make(chan *broadcastRun, 16),
		broadcasts: make(map[string]*broadcastRun),
	}
	var r prometheus.Registerer
	if reg != nil {
		r, w.gather = reg, reg
	}
	w.metrics = newMetrics(r, c.Deadline)
	w.admit = newAdmission(r)
	w.dead, w.reg = dead, r
	// One connection pool for every broadcast: the connections open to
	// endpoints follow the worker's bound on sends, not each broadcast's.
	w.conns = cfg.Delivery.Pool
	if w.conns == nil {
		w.conns = delivery.NewPool(cfg.MaxInFlight, cfg.Delivery.MaxResponseHeaderBytes)
	}
	w.pushClient = newPushClient(cfg.PushTLS, cfg.MaxInFlight)
	w.runDeps = broadcastDeps{
		metrics:        w.metrics,
		admit:          w.admit,
		slots:          newSendSlots(cfg.MaxInFlight),
		rateShare:      c.RateShare,
		noteEndpoint:   c.NoteEndpoint,
		broadcastState: c.BroadcastState,
		empty: func(b *broadcastRun) {
			select {
			case w.empty <- b:
			default: // the claim loop's sweep finds it
			}
		},
		log: log,
	}
	if cfg.Allow.Len() == 0 {
		log.Warn("the endpoint allowlist is empty: every trigger will be rejected (configure --allow-endpoint)")
	}
	return w, nil
}

// Run works until ctx ends, then hands its slots back and leaves the fleet.
func (w *Worker) Run(ctx context.Context) error {
	// Failed deliveries go to Kafka from a bounded queue, written after
	// every unit has stopped: the queue outlives the claim loop.
	var dead delivery.DeadLetterBatchWriter = w.dead
	if w.cfg.InvalidTokens != nil {
		dead = delivery.WithInvalidTokens(w.dead, w.cfg.InvalidTokens)
	}
	dlq, err := delivery.NewDeadLetterQueue(dead, w.cfg.DeadLetters, w.log.With("component", "deadletters"), w.reg)
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
	// shutdown, it can ask for every slot back and wait for the hand-backs.
	g.Go(func() error { return w.coord.Run(gctx) })
	if !w.cfg.NoIntake {
		in := newIntake(w.cfg, w.coord.Registry(), w.log.With("component", "intake"), w.metrics, w.admit)
		g.Go(func() error { return in.run(gctx) })
	}
	// Senders deliver the records of every broadcast; the claim loop
	// returns only once every broadcast run has stopped, after which none
	// is handed a record.
	snd := newSenders(w.cfg.MaxInFlight)
	w.runDeps.senders = snd
	g.Go(func() error { return w.claimLoop(gctx) })
	w.setReady(true)
	err = g.Wait()
	w.setReady(false)
	snd.close()
	w.conns.CloseIdle()
	w.pushClient.CloseIdleConnections()
	return err
}

// claimLoop gives every claim to its broadcast's run, starting the run
// with the broadcast's first slot here, and stops a run once it holds no
// slot. It owns every run: after ctx ends it keeps taking claims and
// stopping runs until the coordinator has closed Claims (its leave is
// over: every slot handed back or dropped) and every run has stopped.
func (w *Worker) claimLoop(ctx context.Context) error {
	var waiting []*startRetry // claims whose slot could not start yet
	var hands sync.WaitGroup  // hand-backs of claims never started
	defer hands.Wait()
	// A claim never started has nothing in flight: give it back as it is.
	handBackAll := func() {
		for _, r := range waiting {
			w.handBack(r, &hands)
		}
		waiting = nil
	}
	defer handBackAll()
	start := func(cl *coordinator.Claim) error {
		b, err := w.broadcastFor(ctx, cl)
		if err != nil {
			return err
		}
		b.add(cl)
		return nil
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	claims := w.coord.Claims()
	done := ctx.Done()
	for claims != nil || len(w.broadcasts) > 0 {
		select {
		case cl, ok := <-claims:
			if !ok {
				claims = nil
				continue
			}
			if err := start(cl); err != nil {
				waiting = append(waiting, w.cannotStart(cl, err, nil))
			}
		case b := <-w.empty:
			w.stopIfEmpty(b)
		case now := <-tick.C:
			waiting = w.retryStarts(waiting, now, start, &hands)
			for _, b := range w.broadcasts {
				w.stopIfEmpty(b)
			}
		case <-done:
			// Leaving: the coordinator asks for every slot back and waits.
			done = nil
			handBackAll()
		}
	}
	return nil
}

// stopIfEmpty stops b if it holds no slot. Only the claim loop adds
// slots, so an empty run stays empty until stopped.
func (w *Worker) stopIfEmpty(b *broadcastRun) {
	if w.broadcasts[b.id] != b || !b.t.empty() {
		return
	}
	delete(w.broadcasts, b.id)
	b.stop()
	// The connection pool is shared by every broadcast; with none left
	// here, its idle connections are let go rather than kept for the next.
	if len(w.broadcasts) == 0 {
		w.conns.CloseIdle()
		w.pushClient.CloseIdleConnections()
	}
}

// startRetry is a claimed slot that could not start: its spec could not be
// loaded or compiled, or a secret it names is missing here. The claim is
// kept and the start retried with backoff (the cause is often passing, and
// handing the slot back would only pass it to workers that may fail
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
	w.log.Error("cannot start claimed slot; retrying", "broadcast", cl.Broadcast(), "slot", cl.Slot(),
		"attempt", r.attempt, "err", err)
	return r
}

func (w *Worker) retryStarts(waiting []*startRetry, now time.Time, start func(*coordinator.Claim) error, hands *sync.WaitGroup) []*startRetry {
	kept := waiting[:0]
	for _, r := range waiting {
		select {
		case <-r.cl.Context().Done():
			continue // the claim ended; whoever holds the slot now starts it
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

// handBack returns a never-started slot at the progress it was claimed
// with. It runs on a goroutine of its own, counted in hands, since settle
// retries while etcd fails to answer and the claim loop must not wait for
// that.
func (w *Worker) handBack(r *startRetry, hands *sync.WaitGroup) {
	log := w.log.With("broadcast", r.cl.Broadcast(), "slot", r.cl.Slot())
	hands.Add(1)
	go func() {
		defer hands.Done()
		settle(r.cl, "hand back unstarted slot", func(ctx context.Context) error {
			return r.cl.Handoff(ctx, r.cl.Progress())
		}, w.metrics, log)
	}()
}

// broadcastFor returns the broadcast's run on this worker, loading and
// compiling its spec on first use.
func (w *Worker) broadcastFor(ctx context.Context, cl *coordinator.Claim) (*broadcastRun, error) {
	id := cl.Broadcast()
	if b := w.broadcasts[id]; b != nil {
		return b, nil
	}
	// The claim's context, not the loop's: a spec is still worth loading
	// while the worker leaves, for a slot it then hands back at once.
	raw, err := w.coord.Registry().Spec(cl.Context(), id)
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
	ra, err := newRangeAudience(sp.Audience, w.cfg.Secrets, w.cfg.AudienceLimits)
	if err != nil {
		return nil, fmt.Errorf("worker: audience of %s: %w", id, err)
	}
	dc := w.cfg.Delivery
	dc.MaxInFlight = sp.Endpoint.MaxInFlight
	dc.Pool = w.conns
	dc.HTTP2 = sp.Endpoint.HTTP2
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
	p, err := w.newPusher(id, sp.Endpoint, dc.Fence)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("worker: push sender for %s: %w", id, err)
	}
	b := newBroadcastRun(id, sp, set, s, p, ra, cl.Slots(), w.runCfg, w.runDeps)
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
