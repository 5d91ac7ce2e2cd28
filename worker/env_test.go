package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/internal/faultproxy"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/trigger"
	"github.com/herald-dev/herald/worker/delivery"
)

// env is a real stack for one test: embedded etcd and Kafka, and the
// reference sink behind real HTTP, recording every body it accepted.
type env struct {
	t     testing.TB
	stack *devstack.Stack
	sink  *sink.Sink
	srv   *httptest.Server
	reg   *coordinator.Registry

	mu sync.Mutex
	// keepBodies makes serve record bodies: only for tests that check them,
	// since the record grows with the audience.
	keepBodies bool
	bodies     map[string][]byte // by idempotency key, the first accepted body
	// answer, when set, answers a request instead of the sink.
	answer func(key string, w http.ResponseWriter) bool
	// inspect, when set, sees every delivery request first.
	inspect func(r *http.Request)
}

func newEnv(t testing.TB, sc sink.Config) *env {
	t.Helper()
	ctx := context.Background()
	stack, err := devstack.Start(ctx, devstack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stack.Close() })
	s, err := sink.New(sc)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, stack: stack, sink: s, bodies: make(map[string][]byte)}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	// The endpoint also speaks h2c by prior knowledge, for broadcasts
	// that ask for it; others reach it over HTTP/1.1.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	e.srv.Config.Protocols = &protocols
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	cli := e.etcd()
	e.reg = coordinator.NewRegistry(cli, coordinator.DefaultPrefix)
	return e
}

func (e *env) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		e.sink.ServeHTTP(w, r)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	e.mu.Lock()
	answer, inspect := e.answer, e.inspect
	e.mu.Unlock()
	if inspect != nil {
		inspect(r)
	}
	if answer != nil && answer(key, w) {
		io.Copy(io.Discard, r.Body)
		return
	}
	if !e.keepBodies {
		e.sink.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := &statusRecorder{ResponseWriter: w}
	e.sink.ServeHTTP(rec, r)
	if rec.code == http.StatusOK {
		e.mu.Lock()
		e.bodies[key] = body
		e.mu.Unlock()
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (e *env) endpoint() string { return e.srv.URL + "/push" }

func (e *env) etcd() *clientv3.Client { return e.etcdAt(e.stack.EtcdEndpoint()) }

// etcdAt is a client of endpoint. Keepalive pings make a severed
// connection show quickly.
func (e *env) etcdAt(endpoint string) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint},
		DialTimeout: 5 * time.Second, DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second,
		Logger: zap.NewNop()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cli.Close() })
	return cli
}

// testWorker is one fleet member running in the test process.
type testWorker struct {
	id     string
	w      *Worker
	cli    *clientv3.Client
	proxy  *faultproxy.Proxy // between the worker and etcd, when asked for
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
}

type workerOpts struct {
	intake bool
	tune   func(*Config)
	// proxied puts a proxy the test can sever between the worker and etcd.
	proxied bool
	// etcd, if set, adjusts the worker's etcd client before the
	// coordinator is built on it (to wrap its KV, say).
	etcd func(*clientv3.Client)
	// capacity is the worker's weight in the assignment (0: 1).
	capacity float64
	// dead, if set, wraps the worker's dead-letter writer (to make Kafka
	// refuse for a while, say).
	dead func(delivery.DeadLetterBatchWriter) delivery.DeadLetterBatchWriter
}

func (e *env) startWorker(id string, o workerOpts) *testWorker {
	e.t.Helper()
	var cli *clientv3.Client
	var px *faultproxy.Proxy
	if o.proxied {
		var err error
		if px, err = faultproxy.New(e.stack.EtcdEndpoint()); err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(px.Close)
		cli = e.etcdAt(px.Endpoint())
	} else {
		cli = e.etcd()
	}
	if o.etcd != nil {
		o.etcd(cli)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("worker", id)
	reg := prometheus.NewRegistry()
	co, err := coordinator.New(coordinator.Config{MemberID: id, LeaseTTL: 2 * time.Second, Capacity: o.capacity,
		ReconcileInterval: 100 * time.Millisecond, LeaveTimeout: 5 * time.Second}, cli, log, reg)
	if err != nil {
		e.t.Fatal(err)
	}
	dead := delivery.NewDeadLetterWriter(e.stack.KafkaBrokers(), devstack.DeadLettersTopic, nil, log)
	tokens := delivery.NewInvalidTokenWriter(e.stack.KafkaBrokers(), devstack.InvalidTokensTopic, nil, log)
	cfg := Config{
		Brokers:  e.stack.KafkaBrokers(),
		NoIntake: !o.intake,
		Delivery: delivery.Config{BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
			MaxRetryAfter: 50 * time.Millisecond},
		HandoffDrain: time.Second,
		// The test endpoints listen on loopback; nothing else is allowed.
		Allow:         loopback,
		InvalidTokens: tokens,
	}
	if o.tune != nil {
		o.tune(&cfg)
	}
	var letters delivery.DeadLetterBatchWriter = dead
	if o.dead != nil {
		letters = o.dead(dead)
	}
	w, err := New(cfg, co, letters, log, reg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tw := &testWorker{id: id, w: w, cli: cli, proxy: px, cancel: cancel, done: make(chan error, 1), reg: reg}
	go func() {
		err := w.Run(ctx)
		dead.Close()
		tokens.Close()
		tw.done <- err
	}()
	e.t.Cleanup(func() { tw.stop(e.t) })
	waitFor(e.t, 10*time.Second, "worker "+id+" ready", co.Ready)
	return tw
}

// loopback is the allowlist of the test workers: the httptest servers.
var loopback = func() *allowlist.List {
	a, err := allowlist.Parse([]string{"http://127.0.0.1:*"})
	if err != nil {
		panic(err)
	}
	return a
}()

// stop leaves gracefully, as on SIGTERM. Safe to call twice.
func (tw *testWorker) stop(t testing.TB) {
	t.Helper()
	if tw.cancel == nil {
		return
	}
	tw.cancel()
	tw.cancel = nil
	select {
	case err := <-tw.done:
		if err != nil {
			t.Errorf("worker %s: %v", tw.id, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("worker %s did not stop", tw.id)
	}
}

// kill abandons the worker like a crash: its etcd connection goes first, so
// it can write no checkpoint, hand nothing back and revoke nothing; its
// lease expires on its own.
func (tw *testWorker) kill(t testing.TB) {
	t.Helper()
	tw.cli.Close()
	tw.stop(t)
}

// trigger produces a spec, given as its JSON object, through Kafka.
func (e *env) trigger(obj map[string]any) string {
	e.t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := trigger.Trigger(ctx, e.stack.KafkaBrokers(), devstack.BroadcastsTopic, raw, spec.Limits{})
	if err != nil {
		e.t.Fatal(err)
	}
	return s.ID
}

// waitState polls until the broadcast reaches a terminal state.
func (e *env) waitDone(id string, within time.Duration) coordinator.Status {
	e.t.Helper()
	var st coordinator.Status
	waitFor(e.t, within, "broadcast "+id+" to end", func() bool {
		var err error
		st, err = e.reg.Status(context.Background(), id)
		return err == nil && st.State.Terminal()
	})
	return st
}

func (e *env) status(id string) coordinator.Status {
	e.t.Helper()
	st, err := e.reg.Status(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// conserved checks that every scanned record of a finished broadcast ended
// exactly one way: scanned = unreachable + invalid + delivered + failed + expired.
func conserved(t *testing.T, st coordinator.Status) {
	t.Helper()
	c := st.Counters
	if c.Scanned != c.Unreachable+c.Invalid+c.Delivered+c.Failed+c.Expired {
		t.Errorf("counters do not add up: %+v", c)
	}
}

func synthetic(id, url string, count int) map[string]any {
	return map[string]any{
		"id":             id,
		"audience":       map[string]any{"source": "synthetic", "count": count, "seed": 7},
		"only_reachable": true,
		"template": map[string]any{"default_locale": "en", "locales": map[string]any{
			"en": map[string]string{"title": "Hi {{.name}}", "body": "Code {{.code}}"},
		}},
		"endpoint": map[string]any{"url": url, "max_in_flight": 16, "timeout_ms": 2000, "max_attempts": 8},
	}
}
