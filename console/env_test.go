package console

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/trigger"
	"github.com/herald-dev/herald/worker"
	"github.com/herald-dev/herald/worker/delivery"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(childEnv); addr != "" {
		os.Exit(runChild(addr))
	}
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"))
}

// testToken is the access token of the tests' consoles.
const testToken = "test-token-0123456789"

// stack is what a console test runs against: etcd always; Kafka, an
// endpoint and workers when the test triggers real broadcasts.
type stack struct {
	t     testing.TB
	etcd  string
	kafka []string
	cli   *clientv3.Client
	reg   *coordinator.Registry
	sink  *sink.Sink
	srv   *httptest.Server // the endpoint
}

// newEtcd starts an embedded etcd only.
func newEtcd(t testing.TB) *stack {
	t.Helper()
	e, err := devstack.StartEtcd(context.Background(), devstack.EtcdConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	s := &stack{t: t, etcd: e.Endpoint()}
	s.cli = s.client()
	s.reg = coordinator.NewRegistry(s.cli, "")
	return s
}

// newStack starts etcd, Kafka and an endpoint (the reference sink).
func newStack(t testing.TB) *stack {
	t.Helper()
	ds, err := devstack.Start(context.Background(), devstack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	s := &stack{t: t, etcd: ds.EtcdEndpoint(), kafka: ds.KafkaBrokers()}
	s.cli = s.client()
	s.reg = coordinator.NewRegistry(s.cli, "")
	if s.sink, err = sink.New(sink.Config{}); err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(s.sink)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stack) client() *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.etcd}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cli.Close() })
	return cli
}

func (s *stack) endpoint() string { return s.srv.URL + "/push" }

// producer triggers through the stack's Kafka, checked as `herald
// trigger --allow-endpoint http://127.0.0.1:*` checks.
func (s *stack) producer() Producer {
	allow, err := allowlist.Parse([]string{"http://127.0.0.1:*"})
	if err != nil {
		s.t.Fatal(err)
	}
	return ProducerFunc(func(ctx context.Context, raw []byte) (spec.Spec, error) {
		return trigger.Produce(ctx, trigger.Config{Brokers: s.kafka, Allow: allow}, raw)
	})
}

// startWorker runs one fleet member in the test process until the test
// ends; the first takes triggers in.
func (s *stack) startWorker(id string, intake bool) {
	s.t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})).With("worker", id)
	reg := prometheus.NewRegistry()
	co, err := coordinator.New(coordinator.Config{MemberID: id, LeaseTTL: 2 * time.Second,
		ReconcileInterval: 100 * time.Millisecond, LeaveTimeout: 5 * time.Second}, s.client(), log, reg)
	if err != nil {
		s.t.Fatal(err)
	}
	allow, _ := allowlist.Parse([]string{"http://127.0.0.1:*"})
	dead := delivery.NewDeadLetterWriter(s.kafka, devstack.DeadLettersTopic, nil, log)
	w, err := worker.New(worker.Config{Brokers: s.kafka, NoIntake: !intake, Allow: allow, HandoffDrain: time.Second}, co, dead, log, reg)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := w.Run(ctx)
		dead.Close()
		done <- err
	}()
	s.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				s.t.Errorf("worker %s: %v", id, err)
			}
		case <-time.After(20 * time.Second):
			s.t.Errorf("worker %s did not stop", id)
		}
	})
	waitFor(s.t, 10*time.Second, "worker "+id+" ready", co.Ready)
}

// serve runs a console over the stack until the test ends.
func (s *stack) serve(cfg Config, produce Producer) (*Console, *httptest.Server) {
	s.t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	c, err := New(cfg, s.cli, produce, log)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	srv := httptest.NewServer(c)
	s.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("console Run: %v", err)
		}
		srv.Close()
	})
	return c, srv
}

// synthetic is a spec of n synthetic subscribers to the stack's endpoint.
func (s *stack) synthetic(id string, n int, rate float64) string {
	return fmt.Sprintf(`{"id":%q,"audience":{"source":"synthetic","count":%d,"seed":1},`+
		`"template":{"default_locale":"en","locales":{"en":{"title":"Hi {{default \"friend\" .name}}"}}},`+
		`"endpoint":{"url":%q,"max_in_flight":32,"rate_per_sec":%g}}`, id, n, s.endpoint(), rate)
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do sends a request to the console and decodes its JSON answer.
func do(t testing.TB, srv *httptest.Server, method, path, body string, hdr map[string]string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

// sseReader reads one event stream, event by event.
type sseReader struct {
	mu     sync.Mutex
	events []sseEvent
	cancel context.CancelFunc
	done   chan struct{}
}

type sseEvent struct {
	name string
	data string
}

// openEvents reads the console's event stream at path until the test
// ends.
func openEvents(t testing.TB, srv *httptest.Server, path string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("GET %s: %s %s", path, resp.Status, resp.Header.Get("Content-Type"))
	}
	r := &sseReader{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer resp.Body.Close()
		var ev sseEvent
		buf := make([]byte, 0, 64<<10)
		tmp := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for {
				i := strings.Index(string(buf), "\n")
				if i < 0 {
					break
				}
				line := string(buf[:i])
				buf = buf[i+1:]
				switch {
				case line == "":
					if ev.name != "" {
						r.mu.Lock()
						r.events = append(r.events, ev)
						r.mu.Unlock()
					}
					ev = sseEvent{}
				case strings.HasPrefix(line, "event: "):
					ev.name = line[len("event: "):]
				case strings.HasPrefix(line, "data: "):
					ev.data += line[len("data: "):]
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(r.close)
	return r
}

func (r *sseReader) close() { r.cancel(); <-r.done }

// find returns the first event named name whose data contains want.
func (r *sseReader) find(name, want string) (sseEvent, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.name == name && strings.Contains(ev.data, want) {
			return ev, true
		}
	}
	return sseEvent{}, false
}
