package delivery

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seen is one request as the endpoint received it.
type seen struct {
	method, contentType, key string
	body                     string
}

// endpoint is a real HTTP server whose answers a test scripts; it records
// every request and counts the connections clients opened.
type endpoint struct {
	srv   *httptest.Server
	conns atomic.Int64

	mu   sync.Mutex
	reqs []seen
}

// newEndpoint starts a server that answers the n-th request (from 1) with
// answer.
func newEndpoint(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *endpoint {
	t.Helper()
	e := &endpoint{}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.reqs = append(e.reqs, seen{
			method:      r.Method,
			contentType: r.Header.Get("Content-Type"),
			key:         r.Header.Get("Idempotency-Key"),
			body:        string(body),
		})
		n := len(e.reqs)
		e.mu.Unlock()
		answer(n, w, r)
	}))
	e.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			e.conns.Add(1)
		}
	}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) url() string { return e.srv.URL + "/push" }

func (e *endpoint) requests() []seen {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]seen(nil), e.reqs...)
}

// status answers every request with code.
func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// script answers request n with steps[n-1], repeating the last step.
func script(steps ...func(http.ResponseWriter)) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		steps[min(n, len(steps))-1](w)
	}
}

// reply is a script step: code with optional header pairs and body.
func reply(code int, body string, header ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// plannedWaits records the waits a Sender plans between attempts.
type plannedWaits struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (p *plannedWaits) list() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.waits...)
}

// testClock is the wall clock test Senders read Retry-After dates against,
// whole seconds as HTTP dates are.
var testClock = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// newTestSender returns a Sender that records its planned waits instead of
// sleeping them, reads the time as testClock, and draws the largest
// jitter, so every wait is predictable.
func newTestSender(t *testing.T, cfg Config) (*Sender, *plannedWaits) {
	t.Helper()
	s, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	p := &plannedWaits{}
	s.now = func() time.Time { return testClock }
	s.randN = func(n int64) int64 { return n - 1 }
	s.sleepFor = func(d time.Duration) time.Duration {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.waits = append(p.waits, d)
		return 0
	}
	return s, p
}
