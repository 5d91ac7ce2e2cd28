package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newSink(t testing.TB, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deliveryBody is a body shaped like the one a delivery POSTs
// (docs/CONTRACTS.md, "A delivery").
func deliveryBody(broadcast, subscriber, key string) []byte {
	b, err := json.Marshal(map[string]any{
		"broadcast_id":    broadcast,
		"subscriber_id":   subscriber,
		"idempotency_key": key,
		"locale":          "en",
		"message":         map[string]string{"title": "Hi " + subscriber, "body": "Your code: X7"},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// post sends one delivery straight to the handler.
func post(s *Sink, key string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/push", bytes.NewReader(body))
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// httpClient is a client whose connections the test closes, so goleak
// sees no idle connection goroutines.
func httpClient(t testing.TB, conns int) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestConcurrentCountsExact(t *testing.T) {
	const (
		workers  = 64
		requests = 50_000
		distinct = 20_000 // request i uses key i % distinct
	)
	s := newSink(t, Config{Strict: true})
	srv := httptest.NewServer(s)
	defer srv.Close()
	cl := httpClient(t, workers)

	var next atomic.Int64
	var ok, conflict atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= requests {
					return
				}
				k := int(i % distinct)
				key := fmt.Sprintf("b%d:u%d", k%2, k)
				body := deliveryBody(fmt.Sprintf("b%d", k%2), fmt.Sprintf("u%d", k), key)
				req, err := http.NewRequest(http.MethodPost, srv.URL+"/push", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Idempotency-Key", key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := cl.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusConflict:
					conflict.Add(1)
				default:
					errs <- fmt.Errorf("request %d: status %d", i, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	st := s.Stats()
	want := Stats{Requests: requests, Delivered: distinct, Duplicates: requests - distinct}
	if st.Requests != want.Requests || st.Delivered != want.Delivered || st.Duplicates != want.Duplicates ||
		st.BadRequests != 0 || st.InvalidBodies != 0 || st.Abandoned != 0 {
		t.Fatalf("stats %+v, want requests %d delivered %d duplicates %d and nothing else",
			st, want.Requests, want.Delivered, want.Duplicates)
	}
	if ok.Load() != distinct || conflict.Load() != requests-distinct {
		t.Errorf("answers: %d 200s and %d 409s, want %d and %d", ok.Load(), conflict.Load(), distinct, requests-distinct)
	}
	if n := s.cur.Load().keys.len(); n != distinct {
		t.Errorf("key set holds %d keys, want %d", n, distinct)
	}
	for _, id := range []string{"b0", "b1"} {
		got := st.Broadcasts[id]
		if want := (BroadcastStats{Requests: requests / 2, Delivered: distinct / 2, Duplicates: (requests - distinct) / 2}); got != want {
			t.Errorf("broadcast %s: %+v, want %+v", id, got, want)
		}
	}
	var perSecond int64
	for _, n := range st.PerSecond {
		perSecond += n
	}
	if perSecond != distinct {
		t.Errorf("per-second series sums to %d, want %d", perSecond, distinct)
	}
}

func TestRejectedRequests(t *testing.T) {
	valid := deliveryBody("b", "u1", "b:u1")
	tests := []struct {
		name    string
		cfg     Config
		method  string
		key     string
		body    []byte
		status  int
		counted func(Stats) int64
	}{
		{"missing key", Config{}, http.MethodPost, "", valid, http.StatusBadRequest, func(s Stats) int64 { return s.BadRequests }},
		{"body too large", Config{MaxBody: 16}, http.MethodPost, "k", valid, http.StatusRequestEntityTooLarge, func(s Stats) int64 { return s.BadRequests }},
		{"body at the limit", Config{MaxBody: int64(len(valid))}, http.MethodPost, "k", valid, http.StatusOK, func(s Stats) int64 { return s.Delivered }},
		{"not JSON, lenient", Config{}, http.MethodPost, "k", []byte("{oops"), http.StatusOK, func(s Stats) int64 { return s.Delivered }},
		{"not JSON, strict", Config{Strict: true}, http.MethodPost, "k", []byte("{oops"), http.StatusBadRequest, func(s Stats) int64 { return s.InvalidBodies }},
		{"non-ASCII key, strict", Config{Strict: true}, http.MethodPost, "kä", valid, http.StatusBadRequest, func(s Stats) int64 { return s.InvalidBodies }},
		{"long key, strict", Config{Strict: true}, http.MethodPost, strings.Repeat("k", 201), valid, http.StatusBadRequest, func(s Stats) int64 { return s.InvalidBodies }},
		{"200-char key, strict", Config{Strict: true}, http.MethodPost, strings.Repeat("k", 200), valid, http.StatusOK, func(s Stats) int64 { return s.Delivered }},
		{"GET a delivery path", Config{}, http.MethodGet, "k", nil, http.StatusMethodNotAllowed, func(s Stats) int64 { return 1 - s.Requests }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink(t, tt.cfg)
			r := httptest.NewRequest(tt.method, "/anything/here", bytes.NewReader(tt.body))
			if tt.key != "" {
				r.Header.Set("Idempotency-Key", tt.key)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
			st := s.Stats()
			if n := tt.counted(st); n != 1 {
				t.Errorf("expected counter is %d, want 1: %+v", n, st)
			}
			if tt.status != http.StatusOK && st.Delivered != 0 {
				t.Errorf("a rejected request was delivered: %+v", st)
			}
		})
	}
}

func TestInjectionRatesAndRetryAfter(t *testing.T) {
	const n = 20_000
	cfg := Config{Rate429: 0.2, Rate5xx: 0.1, RetryAfter: 1500 * time.Millisecond, Seed: 42}
	s := newSink(t, cfg)
	codes := map[int]int{}
	firstOK := map[string]int{} // key -> status of its first non-injected answer
	for i := range n {
		key := fmt.Sprintf("k%d", i%(n/4))
		w := post(s, key, deliveryBody("b", key, key))
		codes[w.Code]++
		switch w.Code {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			if got := w.Header().Get("Retry-After"); got != "2" {
				t.Fatalf("%d with Retry-After %q, want \"2\" (1.5 s rounded up)", w.Code, got)
			}
		case http.StatusInternalServerError:
		case http.StatusOK, http.StatusConflict:
			if _, seen := firstOK[key]; !seen {
				firstOK[key] = w.Code
			}
		default:
			t.Fatalf("unexpected status %d", w.Code)
		}
	}
	// A binomial count lies within 5 standard deviations of its mean
	// with near certainty; the seed makes the run reproducible anyway.
	within := func(name string, got int, p float64) {
		mean, sd := n*p, math.Sqrt(n*p*(1-p))
		if math.Abs(float64(got)-mean) > 5*sd {
			t.Errorf("%s: %d of %d, want about %.0f (±%.0f)", name, got, n, mean, 5*sd)
		}
	}
	within("429", codes[429], 0.2)
	within("500", codes[500], 0.05)
	within("503", codes[503], 0.05)
	for key, code := range firstOK {
		if code != http.StatusOK {
			t.Fatalf("key %s: first accepted answer %d, want 200: an injected failure recorded it", key, code)
		}
	}
	st := s.Stats()
	if st.Injected429 != int64(codes[429]) || st.Injected500 != int64(codes[500]) || st.Injected503 != int64(codes[503]) {
		t.Errorf("stats %+v disagree with answers %v", st, codes)
	}
	if sum := st.Delivered + st.Duplicates + st.Injected429 + st.Injected500 + st.Injected503; sum != st.Requests || st.Requests != n {
		t.Errorf("counters sum to %d of %d requests (sent %d)", sum, st.Requests, n)
	}
	if st.Delivered != int64(len(firstOK)) {
		t.Errorf("delivered %d, want %d distinct accepted keys", st.Delivered, len(firstOK))
	}
}

func TestSameSeedSameFailures(t *testing.T) {
	run := func(seed uint64) string {
		s := newSink(t, Config{Rate429: 0.3, Rate5xx: 0.3, Seed: seed})
		var b strings.Builder
		for i := range 200 {
			fmt.Fprintf(&b, "%d ", post(s, fmt.Sprint(i), nil).Code)
		}
		return b.String()
	}
	if a, b := run(7), run(7); a != b {
		t.Error("the same seed gave different failures")
	}
	if a, b := run(7), run(8); a == b {
		t.Error("different seeds gave the same 200 answers")
	}
}

func TestLatencyAndAbandon(t *testing.T) {
	const latency = 100 * time.Millisecond
	s := newSink(t, Config{Latency: latency, Jitter: 10 * time.Millisecond})
	srv := httptest.NewServer(s)
	defer srv.Close()
	cl := httpClient(t, 2)

	send := func(ctx context.Context, key string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
		req.Header.Set("Idempotency-Key", key)
		return cl.Do(req)
	}
	t0 := time.Now()
	resp, err := send(context.Background(), "slow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A lower bound only: the sink must not answer before its latency.
	if d := time.Since(t0); d < latency || resp.StatusCode != http.StatusOK {
		t.Fatalf("answered %d after %v, want 200 after at least %v", resp.StatusCode, d, latency)
	}

	ctx, cancel := context.WithTimeout(context.Background(), latency/5)
	defer cancel()
	if _, err := send(ctx, "gone"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient client: %v, want its deadline", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Abandoned == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := s.Stats()
	if st.Abandoned != 1 || st.Delivered != 1 || st.Requests != 2 {
		t.Fatalf("stats %+v, want 2 requests, 1 delivered, 1 abandoned", st)
	}
}

func TestStatsEndpointAndReset(t *testing.T) {
	s := newSink(t, Config{})
	for _, key := range []string{"a", "b", "a"} {
		post(s, key, deliveryBody("spring-sale", "u-"+key, key))
	}
	get := func(path string) Stats {
		t.Helper()
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %q", path, w.Code, w.Header().Get("Content-Type"))
		}
		var st Stats
		if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, w.Body)
		}
		return st
	}
	st := get("/stats")
	if st.Requests != 3 || st.Delivered != 2 || st.Duplicates != 1 {
		t.Fatalf("stats %+v", st)
	}
	if b := st.Broadcasts["spring-sale"]; b != (BroadcastStats{Requests: 3, Delivered: 2, Duplicates: 1}) {
		t.Errorf("broadcast counts %+v", b)
	}
	if st.FirstDeliveryAt.IsZero() || st.LastDeliveryAt.Before(st.FirstDeliveryAt) || len(st.PerSecond) == 0 || st.SeriesStart.IsZero() {
		t.Errorf("times and series missing: %+v", st)
	}

	if again := get("/stats?reset=1"); again.Delivered != 2 {
		t.Errorf("reset=1 returned %+v, want the counts before the reset", again)
	}
	if st := get("/stats"); st.Requests != 0 || st.Delivered != 0 || len(st.Broadcasts) != 0 || len(st.PerSecond) != 0 {
		t.Errorf("after reset: %+v", st)
	}
	if w := post(s, "a", nil); w.Code != http.StatusOK {
		t.Errorf("a key delivered before the reset answered %d, want 200", w.Code)
	}

	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/reset", nil))
	if w.Code != http.StatusNoContent || s.Stats().Requests != 0 {
		t.Errorf("POST /reset: %d, stats %+v", w.Code, s.Stats())
	}
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/stats", nil),
		httptest.NewRequest(http.MethodGet, "/reset", nil),
	} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 405", r.Method, r.URL.Path, w.Code)
		}
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	s := newSink(t, Config{Latency: time.Hour})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()

	cl := httpClient(t, 1)
	answered := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/", nil)
		req.Header.Set("Idempotency-Key", "k")
		resp, err := cl.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	for s.Stats().Requests == 0 {
		time.Sleep(time.Millisecond)
	}
	// The hour-long injected wait must not hold up the shutdown.
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	<-answered
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("still listening after Run returned")
	}
	if st := s.Stats(); st.Abandoned != 1 {
		t.Errorf("stats %+v, want the waiting request abandoned", st)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"all set", Config{Latency: time.Millisecond, Jitter: time.Millisecond, Rate429: 0.5, Rate5xx: 0.5, RetryAfter: time.Second, Seed: 1, Strict: true, MaxBody: 10}, true},
		{"negative latency", Config{Latency: -1}, false},
		{"negative jitter", Config{Jitter: -1}, false},
		{"429 above 1", Config{Rate429: 1.1}, false},
		{"5xx negative", Config{Rate5xx: -0.1}, false},
		{"NaN rate", Config{Rate429: math.NaN()}, false},
		{"rates sum above 1", Config{Rate429: 0.6, Rate5xx: 0.6}, false},
		{"negative retry-after", Config{RetryAfter: -time.Second}, false},
		{"negative max body", Config{MaxBody: -1}, false},
		{"outage", Config{OutageAfter: time.Second, OutageFor: time.Second, OutageStatus: 429, Refuse400: 1}, true},
		{"negative outage", Config{OutageFor: -time.Second}, false},
		{"outage answered 404", Config{OutageFor: time.Second, OutageStatus: 404}, false},
		{"refuse above 1", Config{Refuse400: 1.5}, false},
		{"refuse NaN", Config{Refuse400: math.NaN()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if _, err := New(tt.cfg); (err == nil) != tt.ok {
				t.Fatalf("New() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestSeriesPerSecond(t *testing.T) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var s series
	s.start = start
	if at, v := s.snapshot(); !at.IsZero() || len(v) != 0 {
		t.Fatalf("empty series: %v %v", at, v)
	}
	for _, d := range []time.Duration{
		2500 * time.Millisecond, 2900 * time.Millisecond, 5 * time.Second,
		(2*chunkSeconds + 2) * time.Second,        // lands two chunks on; the one between stays nil
		-time.Second, seriesSeconds * time.Second, // outside the charted range
	} {
		s.add(start.Add(d))
	}
	at, v := s.snapshot()
	if !at.Equal(start.Add(2 * time.Second)) {
		t.Errorf("series starts at %v, want %v", at, start.Add(2*time.Second))
	}
	want := make([]int64, 2*chunkSeconds+1)
	want[0], want[3], want[2*chunkSeconds] = 2, 1, 1
	if fmt.Sprint(v) != fmt.Sprint(want) {
		t.Errorf("series %v, want %v", v, want)
	}
}

func TestOutageWindow(t *testing.T) {
	s := newSink(t, Config{OutageAfter: 10 * time.Second, OutageFor: 30 * time.Second, RetryAfter: 2 * time.Second})
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	var now time.Time
	s.now = func() time.Time { return now }
	steps := []struct {
		at     time.Duration // since the first request
		key    string
		status int
	}{
		{0, "a", http.StatusOK}, // starts the clock
		{9 * time.Second, "b", http.StatusOK},
		{10 * time.Second, "c", http.StatusServiceUnavailable}, // down from After
		{25 * time.Second, "b", http.StatusServiceUnavailable}, // even a delivered key
		{40*time.Second - 1, "d", http.StatusServiceUnavailable},
		{40 * time.Second, "c", http.StatusOK}, // up at After + For
		{time.Hour, "d", http.StatusOK},
	}
	for _, st := range steps {
		now = t0.Add(st.at)
		w := post(s, st.key, deliveryBody("b1", st.key, st.key))
		if w.Code != st.status {
			t.Fatalf("at %v: %d, want %d", st.at, w.Code, st.status)
		}
		if w.Code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") != "2" {
			t.Errorf("at %v: Retry-After %q, want 2", st.at, w.Header().Get("Retry-After"))
		}
	}
	st := s.Stats()
	if st.Outage != 3 || st.Delivered != 4 || st.Requests != 7 || st.Broadcasts["b1"].Requests != 7 {
		t.Errorf("stats %+v, want 3 outage answers of 7 requests, 4 delivered", st)
	}
	// The window is reported on the sink's own clock from the first
	// request; the test's clock only decided the answers.
	if got := st.OutageUntil.Sub(st.OutageFrom); got != 30*time.Second || st.OutageFrom.IsZero() {
		t.Errorf("window %v to %v, want 30s", st.OutageFrom, st.OutageUntil)
	}

	// A reset starts the clock again: down from the first request on.
	s = newSink(t, Config{OutageFor: time.Minute, OutageStatus: http.StatusBadGateway})
	s.now = func() time.Time { return t0 }
	if w := post(s, "a", nil); w.Code != http.StatusBadGateway || w.Header().Get("Retry-After") != "" {
		t.Errorf("outage with 502: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	s.Reset()
	s.now = func() time.Time { return t0.Add(time.Hour) }
	if w := post(s, "a", nil); w.Code != http.StatusBadGateway {
		t.Errorf("after a reset: %d, want the outage again", w.Code)
	}
}

func TestRefuse400(t *testing.T) {
	const n = 20_000
	s := newSink(t, Config{Refuse400: 0.05})
	refused := 0
	for i := range n {
		key := fmt.Sprintf("spring:u%d", i)
		w := post(s, key, deliveryBody("spring", fmt.Sprint(i), key))
		switch {
		case w.Code == http.StatusBadRequest && Refuses(key, 0.05):
			refused++
			// Refused every time, never delivered.
			if again := post(s, key, deliveryBody("spring", fmt.Sprint(i), key)); again.Code != http.StatusBadRequest {
				t.Fatalf("key %s refused, then answered %d", key, again.Code)
			}
		case w.Code == http.StatusOK && !Refuses(key, 0.05):
		default:
			t.Fatalf("key %s: %d, Refuses says %v", key, w.Code, Refuses(key, 0.05))
		}
	}
	mean, sd := n*0.05, math.Sqrt(n*0.05*0.95)
	if math.Abs(float64(refused)-mean) > 5*sd {
		t.Errorf("refused %d of %d keys, want about %.0f", refused, n, mean)
	}
	st := s.Stats()
	if st.Refused != int64(2*refused) || st.Broadcasts["spring"].Refused != st.Refused || st.Delivered != int64(n-refused) {
		t.Errorf("stats %+v, want %d refused requests and %d delivered", st, 2*refused, n-refused)
	}
	if sum := st.Delivered + st.Refused; sum != st.Requests {
		t.Errorf("counters sum to %d of %d requests", sum, st.Requests)
	}
	for _, f := range []struct {
		fraction float64
		want     bool
	}{{0, false}, {math.NaN(), false}, {1, true}, {math.Nextafter(1, 0), true}} {
		if got := Refuses("any", f.fraction); got != f.want {
			t.Errorf("Refuses(any, %v) = %v, want %v", f.fraction, got, f.want)
		}
	}
}
