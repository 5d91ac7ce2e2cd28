package delivery

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome is how a Send ended.
type Outcome int

const (
	// Delivered: the endpoint answered 2xx, or 409 because it already had
	// the key.
	Delivered Outcome = iota + 1
	// Failed: the endpoint refused the message for good, or every attempt
	// failed. The caller counts it and writes a dead letter.
	Failed
	// Aborted: the caller's context ended before the delivery finished.
	// Not a failure: the message is unfinished and its next owner sends it
	// again under the same idempotency key.
	Aborted
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	case Aborted:
		return "aborted"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result reports one Send.
type Result struct {
	Outcome Outcome
	// Status is the last HTTP status received, 0 when the last attempt got
	// no response or nothing was sent.
	Status int
	// Attempts is how many requests were started, 0 when none was.
	Attempts int
	// Reason says why a delivery failed or aborted, naming the last status
	// or error; empty when delivered.
	Reason string
	// Latency runs from Send's call to its return, retries and waits
	// included.
	Latency time.Duration
}

// maxKeyLen is the longest idempotency key Herald promises endpoints.
const maxKeyLen = 200

// Sender delivers messages over a pool of keep-alive connections, retrying
// as classify decides. It is safe for concurrent use; Close it when done.
type Sender struct {
	cfg     Config
	log     *slog.Logger
	pool    *Pool
	ownPool bool // the pool is the Sender's own: Close closes its idle connections
	// rt sends one attempt: the pool's transport under the attempt's
	// deadline, fence and allow-list (attemptTransport). Redirects are
	// answers (classify fails them), never followed.
	rt      http.RoundTripper
	metrics *metrics
	breaker *breaker // nil when disabled
	// calls recycles per-Send state, so a Send allocates none of it.
	calls   sync.Pool
	callSeq atomic.Uint64

	// Hooks tests replace. now is the wall clock that Retry-After dates and
	// context deadlines are read against; randN draws backoff jitter;
	// sleepFor turns a planned wait into the one actually slept, so tests
	// can record plans without sleeping through them.
	now      func() time.Time
	randN    func(n int64) int64
	sleepFor func(planned time.Duration) time.Duration
}

// New returns a Sender with its own connection pool, or sending over
// cfg.Pool when that is set. log may be nil (no
// logs); reg may be nil (no metrics). The metric names are fixed, so
// Senders sharing a registry each need a registerer wrapped with a
// distinguishing label (prometheus.WrapRegistererWith).
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	pool, own := cfg.Pool, false
	if pool == nil {
		pool, own = newPool(cfg), true
	}
	randN := rand.Int64N
	return &Sender{
		cfg:      cfg,
		log:      log,
		pool:     pool,
		ownPool:  own,
		rt:       attemptTransport{pool: pool.roundTripper(modeOf(cfg.HTTP2)), timeout: cfg.Timeout, fence: cfg.Fence, allow: cfg.Allow},
		metrics:  m,
		breaker:  newBreaker(cfg, log, m, randN),
		now:      time.Now,
		randN:    randN,
		sleepFor: func(d time.Duration) time.Duration { return d },
	}, nil
}

// limit reports an answer past one of the Sender's limits.
func (s *Sender) limit(name string) {
	if s.cfg.OnLimit != nil {
		s.cfg.OnLimit(name)
	}
}

// Waiting reports whether the Sender's circuit breaker is open: most recent
// attempts failed as an unavailable endpoint fails them, so sends are
// paused while one probe at a time checks whether it is back. Status
// reports show the broadcast as waiting on its endpoint meanwhile.
func (s *Sender) Waiting() bool { return s.breaker.isOpen() }

// WaitingSince returns when the circuit breaker opened, the zero time when
// it is closed (or disabled).
func (s *Sender) WaitingSince() time.Time { return s.breaker.since() }

// Close drops the idle connections of the Sender's own pool (a shared
// Config.Pool is left as it is). Sends still running finish.
func (s *Sender) Close() {
	if s.ownPool {
		s.pool.CloseIdle()
	}
}

// Send POSTs body to url with the headers a delivery carries,
// identical in every attempt, and retries until the delivery is finished,
// MaxAttempts is spent, or ctx ends. It never waits past ctx: a retry that
// would fall after ctx's deadline is not waited for.
//
// Do not reuse body's memory for another message: when an endpoint answers
// before reading the whole request, net/http may still be writing body out
// after Send has returned.
func (s *Sender) Send(ctx context.Context, url, key string, body []byte) Result {
	start := time.Now()
	r := s.send(ctx, url, key, body)
	r.Latency = time.Since(start)
	s.metrics.result(r)
	if r.Outcome != Delivered && s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("delivery: not delivered", "key", key, "outcome", r.Outcome.String(),
			"attempts", r.Attempts, "status", r.Status, "reason", r.Reason)
	}
	return r
}

func (s *Sender) send(ctx context.Context, url, key string, body []byte) Result {
	if err := ctx.Err(); err != nil {
		return Result{Outcome: Aborted, Reason: "not sent: " + context.Cause(ctx).Error()}
	}
	if !validKey(key) {
		return Result{Outcome: Failed, Reason: "not sent: idempotency key must be 1 to 200 printable ASCII characters"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{Outcome: Failed, Reason: "not sent: " + describe(0, err)}
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return Result{Outcome: Failed, Reason: "not sent: endpoint url must be http or https"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	if s.cfg.Authorization != "" {
		req.Header.Set("Authorization", s.cfg.Authorization)
	}

	c := s.getCall()
	defer s.putCall(c)
	c.body = body
	// While the circuit breaker is open every attempt waits for it, the
	// first too (retries wait in prepareRetry); the wait ends with ctx.
	if err := c.admit(ctx); err != nil {
		return Result{Outcome: Aborted, Reason: "not sent: " + c.stopped}
	}
	return c.result(ctx, c.do(ctx, req))
}

// validKey holds a key to what Herald promises endpoints (printable ASCII,
// at most maxKeyLen characters), which also keeps it a valid header value:
// an invalid one would fail every attempt in the transport.
func validKey(key string) bool {
	if len(key) == 0 || len(key) > maxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}
