package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-dev/herald/internal/headerlimit"
	"github.com/herald-dev/herald/internal/sleep"
	"github.com/herald-dev/herald/signature"
)

// ShutdownTimeout bounds how long Run waits for requests in flight once
// its context ends.
const ShutdownTimeout = 5 * time.Second

// Sink is the reference receiving endpoint. It is an http.Handler; Run
// serves it on a listener.
type Sink struct {
	cfg        Config
	retryAfter string
	injects    bool // any fault or jitter configured: the RNG is needed
	// refuseBelow and refuseAll select the keys refused with 400
	// (Config.Refuse400): those whose hash is below, or all.
	refuses     bool // any key is refused
	refuseBelow uint64
	refuseAll   bool
	outageRetry bool             // the outage's status carries Retry-After
	now         func() time.Time // the outage's clock; tests set it

	cur  atomic.Pointer[counters]
	bufs sync.Pool // *bytes.Buffer for bodies

	rngMu sync.Mutex
	rng   *rand.Rand
}

// New returns a Sink with empty counters.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Sink{
		cfg:        cfg,
		retryAfter: strconv.FormatInt(cfg.retryAfterSeconds(), 10),
		injects:    cfg.Rate429 > 0 || cfg.Rate5xx > 0 || cfg.Jitter > 0,
		rng:        rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)),
		now:        time.Now,
	}
	s.refuseBelow, s.refuseAll = refuseBound(cfg.Refuse400)
	s.refuses = s.refuseAll || s.refuseBelow > 0
	s.outageRetry = cfg.OutageStatus == http.StatusTooManyRequests || cfg.OutageStatus == http.StatusServiceUnavailable
	s.bufs.New = func() any { return new(bytes.Buffer) }
	s.cur.Store(newCounters(time.Now()))
	return s, nil
}

// Stats returns the counts so far.
func (s *Sink) Stats() Stats { return s.stats(s.cur.Load()) }

// Reset clears every counter and forgets every key, returning the counts
// up to the reset. Requests in flight are counted in the returned period.
// The outage's clock starts again with the next request.
func (s *Sink) Reset() Stats {
	return s.stats(s.cur.Swap(newCounters(time.Now())))
}

func (s *Sink) stats(c *counters) Stats {
	st := c.snapshot()
	s.outageWindow(&st, c)
	return st
}

// ServeHTTP routes the control paths and takes every other POST as a
// delivery.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/stats":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "stats: use GET", http.StatusMethodNotAllowed)
			return
		}
		st := s.Stats()
		if r.URL.Query().Get("reset") == "1" {
			st = s.Reset()
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st) // the client went away; nothing to do
	case "/reset":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "reset: use POST", http.StatusMethodNotAllowed)
			return
		}
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "deliveries are POSTed", http.StatusMethodNotAllowed)
			return
		}
		s.deliver(w, r)
	}
}

// bodyBufMax is the largest buffer kept for reuse, so one big body does
// not pin a mebibyte per pooled buffer.
const bodyBufMax = 64 << 10

func (s *Sink) deliver(w http.ResponseWriter, r *http.Request) {
	c := s.cur.Load()
	buf := s.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= bodyBufMax {
			s.bufs.Put(buf)
		}
	}()
	n, err := buf.ReadFrom(io.LimitReader(r.Body, s.cfg.MaxBody+1))
	if err != nil {
		c.requests.Add(1)
		c.badRequests.Add(1)
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if n > s.cfg.MaxBody {
		c.requests.Add(1)
		c.badRequests.Add(1)
		http.Error(w, "body over "+strconv.FormatInt(s.cfg.MaxBody, 10)+" bytes", http.StatusRequestEntityTooLarge)
		return
	}
	body := buf.Bytes()
	if s.cfg.VerifyKeys != nil {
		// Before anything is counted for the broadcast: a forged request
		// says nothing about it.
		err := signature.Verify(s.cfg.VerifyKeys, r.Header.Get(signature.Header), body, time.Now(), s.cfg.VerifyTolerance)
		if err != nil {
			c.requests.Add(1)
			c.unauthorized.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	if isBatch(body) {
		s.deliverBatch(w, r, c, body)
		return
	}
	c.requests.Add(1)
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		c.badRequests.Add(1)
		http.Error(w, "missing Idempotency-Key header", http.StatusBadRequest)
		return
	}
	if s.cfg.Strict && (!validKey(key) || !json.Valid(body)) {
		c.invalidBodies.Add(1)
		http.Error(w, "strict: body is not JSON or key is not printable ASCII of at most 200 characters", http.StatusBadRequest)
		return
	}
	b := c.broadcast(broadcastID(body))
	b.requests.Add(1)
	if s.outage(w, c, 1) {
		return
	}
	delay, status := s.delay()
	h := hashKey(key)
	if status == 0 && s.cfg.Retry.picks(h) && c.refusals.refuse(h, s.cfg.Retry.Times) {
		status = http.StatusServiceUnavailable
	}
	if delay > 0 && !sleep.For(r.Context(), delay) {
		c.abandoned.Add(1)
		return
	}
	if s.refuses && s.refused(hashKey(key)) {
		c.refused.Add(1)
		b.refused.Add(1)
		http.Error(w, "refused: this sink refuses this key (--refuse-400)", http.StatusBadRequest)
		return
	}
	if s.injected(w, c, status, 1) {
		return
	}
	if c.keys.add(h) {
		c.firstDelivery(time.Now())
		b.delivered.Add(1)
		w.WriteHeader(http.StatusOK)
		return
	}
	c.duplicates.Add(1)
	b.duplicates.Add(1)
	w.WriteHeader(http.StatusConflict)
}

// outage answers a request of n deliveries, and counts them, if the
// configured outage covers now; it reports whether it did.
func (s *Sink) outage(w http.ResponseWriter, c *counters, n int64) bool {
	if !s.down(c, s.now()) {
		return false
	}
	c.outage.Add(n)
	if s.outageRetry {
		w.Header().Set("Retry-After", s.retryAfter)
	}
	w.WriteHeader(s.cfg.OutageStatus)
	return true
}

// delay is how long to hold this request (latency and jitter) and the
// status injected into it, 0 for none.
func (s *Sink) delay() (time.Duration, int) {
	if !s.injects {
		return s.cfg.Latency, 0
	}
	extra, status := s.draw()
	return s.cfg.Latency + extra, status
}

// injected answers a request of n deliveries with an injected status, and
// counts them, unless status is 0; it reports whether it answered.
func (s *Sink) injected(w http.ResponseWriter, c *counters, status int, n int64) bool {
	switch status {
	case http.StatusTooManyRequests:
		c.injected429.Add(n)
	case http.StatusServiceUnavailable:
		c.injected503.Add(n)
	case http.StatusInternalServerError:
		c.injected500.Add(n)
	default:
		return false
	}
	if status != http.StatusInternalServerError {
		w.Header().Set("Retry-After", s.retryAfter)
	}
	w.WriteHeader(status)
	return true
}

// draw picks this request's jitter and injected status (0 for none) with
// one RNG lock, in a fixed order so a seed replays the same choices.
func (s *Sink) draw() (time.Duration, int) {
	s.rngMu.Lock()
	u := s.rng.Float64()
	var jitter time.Duration
	if s.cfg.Jitter > 0 {
		jitter = time.Duration(s.rng.Int64N(int64(s.cfg.Jitter)))
	}
	s.rngMu.Unlock()
	r429, r5xx := s.cfg.Rate429, s.cfg.Rate5xx
	switch {
	case u < r429:
		return jitter, http.StatusTooManyRequests
	case u < r429+r5xx/2:
		return jitter, http.StatusInternalServerError
	case u < r429+r5xx:
		return jitter, http.StatusServiceUnavailable
	}
	return jitter, 0
}

// Run serves the sink on ln until ctx ends, then lets requests in flight
// finish for up to ShutdownTimeout and returns nil. Requests waiting out
// an injected latency are abandoned at once. Run closes ln.
func (s *Sink) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		// Request contexts derive from ctx, so the end of Run ends
		// injected waits instead of holding up the shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	// net/http answers oversized headers itself; the wrapper counts them.
	counted := headerlimit.CountRefusals(ln, func() { s.cur.Load().headersTooLarge.Add(1) })
	served := make(chan error, 1)
	go func() { served <- srv.Serve(counted) }()
	select {
	case err := <-served:
		return fmt.Errorf("sink: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(err, srv.Close())
	}
	<-served // http.ErrServerClosed once Shutdown has begun
	if err != nil {
		return fmt.Errorf("sink: shutdown %s: %w", ln.Addr(), err)
	}
	return nil
}
