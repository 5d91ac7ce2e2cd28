package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/signature"
	"github.com/herald-dev/herald/sink"
)

// batchItems makes n items whose bodies are deliveries keyed k0, k1, ...
func batchItems(n int) []Item {
	items := make([]Item, n)
	for i := range items {
		key := fmt.Sprintf("k%d", i)
		items[i] = Item{Key: key, Body: fmt.Appendf(nil, `{"broadcast_id":"b","subscriber_id":"u%d","idempotency_key":%q}`, i, key)}
	}
	return items
}

// keysOf decodes a batch request's body and returns its items' keys,
// failing the test if the body is not a JSON array of deliveries.
func keysOf(t *testing.T, body string) []string {
	t.Helper()
	var items []struct {
		Key string `json:"idempotency_key"`
	}
	if err := json.Unmarshal([]byte(body), &items); err != nil {
		t.Fatalf("batch body is not a JSON array of deliveries: %v: %.200s", err, body)
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return keys
}

// answerEach answers a batch with one result per item, whose status is
// pick(request number, key) and, for 429 and 503, a retry_after of 0.3 s.
func answerEach(pick func(n int, key string) int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		keys := r.Context().Value(keysCtx{}).([]string)
		var a batchAnswer
		for _, k := range keys {
			st := pick(n, k)
			ia := itemAnswer{Key: k, Status: st}
			if st == 429 || st == 503 {
				ra := 0.3
				ia.RetryAfter = &ra
			}
			if st == 400 {
				ia.Error = "no such device"
			}
			a.Results = append(a.Results, ia)
		}
		_ = json.NewEncoder(w).Encode(a)
	}
}

// keysCtx hands answerEach the keys of the request being answered.
type keysCtx struct{}

// newBatchEndpoint is newEndpoint whose answer functions can read the keys
// of the batch they answer from the request's context.
func newBatchEndpoint(t *testing.T, answer func(int, http.ResponseWriter, *http.Request)) *endpoint {
	t.Helper()
	var e *endpoint
	e = newEndpoint(t, func(n int, w http.ResponseWriter, r *http.Request) {
		reqs := e.requests()
		keys := keysOf(t, reqs[n-1].body)
		answer(n, w, r.WithContext(context.WithValue(r.Context(), keysCtx{}, keys)))
	})
	return e
}

func TestSendBatchAllDelivered(t *testing.T) {
	e := newBatchEndpoint(t, answerEach(func(int, string) int { return 200 }))
	s, waits := newTestSender(t, testConfig)
	items := batchItems(5)
	results := make([]Result, len(items))
	s.SendBatch(context.Background(), e.url(), items, nil, results)

	reqs := e.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	if got, want := keysOf(t, reqs[0].body), []string{"k0", "k1", "k2", "k3", "k4"}; !slices.Equal(got, want) {
		t.Fatalf("batch keys %v, want %v", got, want)
	}
	if reqs[0].contentType != "application/json" || reqs[0].key != "" {
		t.Fatalf("content type %q, idempotency key header %q: want application/json and none (each item has its own)", reqs[0].contentType, reqs[0].key)
	}
	for i, r := range results {
		if r.Outcome != Delivered || r.Status != 200 || r.Attempts != 1 || r.Reason != "" {
			t.Fatalf("item %d: %+v, want delivered at once", i, r)
		}
	}
	if w := waits.list(); len(w) != 0 {
		t.Fatalf("waited %v", w)
	}
}

func TestSendBatchItemsEachTheirOwnWay(t *testing.T) {
	// k0 is a duplicate (409: delivered), k1 is refused for good, k2 is
	// asked for again once with retry_after 0.3 s, k3 twice, k4 always (it
	// fails after MaxAttempts).
	e := newBatchEndpoint(t, answerEach(func(n int, key string) int {
		switch key {
		case "k0":
			return 409
		case "k1":
			return 400
		case "k2":
			return map[bool]int{true: 503, false: 201}[n == 1]
		case "k3":
			return map[bool]int{true: 429, false: 200}[n <= 2]
		}
		return 503
	}))
	s, waits := newTestSender(t, testConfig)
	items := batchItems(5)
	results := make([]Result, len(items))
	s.SendBatch(context.Background(), e.url(), items, nil, results)

	want := []struct {
		out      Outcome
		status   int
		attempts int
		reason   string
	}{
		{Delivered, 409, 1, ""},
		{Failed, 400, 1, "status 400 Bad Request: no such device"},
		{Delivered, 201, 2, ""},
		{Delivered, 200, 3, ""},
		{Failed, 503, 5, "gave up after 5 attempts: status 503 Service Unavailable"},
	}
	for i, w := range want {
		r := results[i]
		if r.Outcome != w.out || r.Status != w.status || r.Attempts != w.attempts || !strings.Contains(r.Reason, w.reason) || (w.reason == "" && r.Reason != "") {
			t.Errorf("item %d: %+v, want %v status %d after %d attempts, reason %q", i, r, w.out, w.status, w.attempts, w.reason)
		}
	}
	var got [][]string
	for _, r := range e.requests() {
		got = append(got, keysOf(t, r.body))
	}
	wantReqs := [][]string{{"k0", "k1", "k2", "k3", "k4"}, {"k2", "k3", "k4"}, {"k3", "k4"}, {"k4"}, {"k4"}}
	if fmt.Sprint(got) != fmt.Sprint(wantReqs) {
		t.Fatalf("requests carried %v, want %v: only the items asked for again go again", got, wantReqs)
	}
	// Each wait is the items' retry_after (0.3 s), above BackoffMin.
	if w := waits.list(); !slices.Equal(w, []time.Duration{300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}) {
		t.Fatalf("waits %v, want 4 × 300ms", w)
	}
}

func TestSendBatchWholeAnswers(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(int, http.ResponseWriter, *http.Request)
		want     Outcome
		status   int
		attempts int
		waits    []time.Duration
		reason   string
	}{
		{name: "empty 2xx: every item taken", answer: status(204), want: Delivered, status: 204, attempts: 1},
		{name: "whole 409: the endpoint had them", answer: status(409), want: Delivered, status: 409, attempts: 1},
		{name: "whole 503 with Retry-After, then taken", answer: script(reply(503, "", "Retry-After", "2"), reply(200, "")),
			want: Delivered, status: 200, attempts: 2, waits: []time.Duration{2 * time.Second}},
		{name: "whole 400: every item failed, quoting the endpoint", answer: script(reply(400, "batch too large")),
			want: Failed, status: 400, attempts: 1, reason: "status 400 Bad Request: batch too large"},
		{name: "results for other keys: sent again, then failed", answer: script(reply(200, `{"results":[{"idempotency_key":"x","status":200},{"idempotency_key":"y","status":200}]}`)),
			want: Failed, status: 200, attempts: 5, waits: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond},
			reason: `gave up after 5 attempts: delivery: batch answer: result 0 is for key "x", want "k0"`},
		{name: "too few results", answer: script(reply(200, `{"results":[]}`), reply(200, "")),
			want: Delivered, status: 200, attempts: 2, waits: []time.Duration{200 * time.Millisecond}},
		{name: "not JSON", answer: script(reply(200, `ok`), reply(200, "")),
			want: Delivered, status: 200, attempts: 2, waits: []time.Duration{200 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, tc.answer)
			s, waits := newTestSender(t, testConfig)
			items := batchItems(2)
			results := make([]Result, len(items))
			s.SendBatch(context.Background(), e.url(), items, nil, results)
			for i, r := range results {
				if r.Outcome != tc.want || r.Status != tc.status || r.Attempts != tc.attempts {
					t.Fatalf("item %d: %+v, want %v status %d after %d attempts", i, r, tc.want, tc.status, tc.attempts)
				}
				if !strings.Contains(r.Reason, tc.reason) || (tc.reason == "" && r.Reason != "") {
					t.Fatalf("item %d reason %q, want %q", i, r.Reason, tc.reason)
				}
			}
			if w := waits.list(); !slices.Equal(w, tc.waits) {
				t.Fatalf("waits %v, want %v", w, tc.waits)
			}
		})
	}
}

func TestSendBatchSplitsLargeBatches(t *testing.T) {
	e := newEndpoint(t, status(200))
	s, _ := newTestSender(t, testConfig)
	// Three items of 400 KiB: two fit under MaxBatchBytes, the third goes
	// on its own.
	items := make([]Item, 3)
	for i := range items {
		key := fmt.Sprintf("k%d", i)
		items[i] = Item{Key: key, Body: fmt.Appendf(nil, `{"idempotency_key":%q,"pad":"%s"}`, key, strings.Repeat("x", 400<<10))}
	}
	results := make([]Result, len(items))
	s.SendBatch(context.Background(), e.url(), items, nil, results)
	reqs := e.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if got := fmt.Sprint(keysOf(t, reqs[0].body), keysOf(t, reqs[1].body)); got != "[k0 k1] [k2]" {
		t.Fatalf("requests carried %s", got)
	}
	for _, r := range reqs {
		if len(r.body) > MaxBatchBytes {
			t.Fatalf("a request of %d bytes, over %d", len(r.body), MaxBatchBytes)
		}
	}
	for i, r := range results {
		if r.Outcome != Delivered {
			t.Fatalf("item %d: %+v", i, r)
		}
	}
}

func TestSendBatchDropsItemsNoLongerLive(t *testing.T) {
	e := newEndpoint(t, status(503))
	s, _ := newTestSender(t, testConfig)
	items := batchItems(3)
	results := make([]Result, len(items))
	round := 0
	live := func(i int) bool {
		if i == 0 {
			round++
		}
		// After the first request item 1's work ends (its slot was handed
		// back); the others go on.
		return i != 1 || round == 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	s.sleepFor = func(time.Duration) time.Duration {
		if calls++; calls == 2 {
			cancel() // the run stops during the second wait
		}
		return 0
	}
	s.SendBatch(ctx, e.url(), items, live, results)
	if r := results[1]; r.Outcome != Aborted || r.Attempts != 1 || !strings.Contains(r.Reason, "its work ended") {
		t.Fatalf("item 1: %+v, want aborted after one attempt", r)
	}
	for _, i := range []int{0, 2} {
		if r := results[i]; r.Outcome != Aborted || r.Attempts != 2 {
			t.Fatalf("item %d: %+v, want aborted after two attempts", i, r)
		}
	}
	if n := len(e.requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestSendBatchFencedSendsNothing(t *testing.T) {
	e := newEndpoint(t, status(200))
	cfg := testConfig
	cfg.Fence = func() error { return errors.New("lease deadline passed") }
	s, _ := newTestSender(t, cfg)
	items := batchItems(3)
	results := make([]Result, len(items))
	s.SendBatch(context.Background(), e.url(), items, nil, results)
	if n := len(e.requests()); n != 0 {
		t.Fatalf("%d requests went out past the fence", n)
	}
	for i, r := range results {
		if r.Outcome != Aborted || r.Attempts != 0 {
			t.Fatalf("item %d: %+v, want aborted, not attempted", i, r)
		}
	}
}

func TestSendBatchSignsTheWholeBody(t *testing.T) {
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	var sigErr error
	e := newEndpoint(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
	})
	cfg := testConfig
	cfg.SigningKeys = keys
	s, _ := newTestSender(t, cfg)
	items := batchItems(3)
	results := make([]Result, len(items))
	var header string
	e.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header = r.Header.Get(signature.Header)
		body, _ := io.ReadAll(r.Body)
		sigErr = signature.Verify(keys, header, body, testClock, time.Minute)
		if r.Header.Get(BatchHeader) != "3" {
			sigErr = fmt.Errorf("%s: %q, want 3", BatchHeader, r.Header.Get(BatchHeader))
		}
		w.WriteHeader(204)
	})
	s.SendBatch(context.Background(), e.url(), items, nil, results)
	if header == "" || sigErr != nil {
		t.Fatalf("signature %q: %v", header, sigErr)
	}
}

// TestSendBatchToTheReferenceSink sends batches to Herald's own sink over
// HTTP, with keys it holds back once and keys it refuses: every key ends
// delivered or failed exactly as the sink decided, none twice.
func TestSendBatchToTheReferenceSink(t *testing.T) {
	sk, err := sink.New(sink.Config{Strict: true, Retry: sink.RetryKeys{OneIn: 3, Times: 2}, Refuse400: 0.1, RetryAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sk)
	defer srv.Close()
	s, _ := newTestSender(t, testConfig)
	const n = 250
	items := make([]Item, n)
	for i := range items {
		key := fmt.Sprintf("hk1-%032x", i)
		items[i] = Item{Key: key, Body: fmt.Appendf(nil, `{"broadcast_id":"bt","subscriber_id":"u%d","idempotency_key":%q,"locale":"en","message":{"body":"hi"}}`, i, key)}
	}
	results := make([]Result, n)
	var refused int
	for lo := 0; lo < n; lo += 100 {
		hi := min(lo+100, n)
		s.SendBatch(context.Background(), srv.URL+"/push", items[lo:hi], nil, results[lo:hi])
	}
	for i, r := range results {
		want := Delivered
		if sink.Refuses(items[i].Key, 0.1) {
			want, refused = Failed, refused+1
		}
		if r.Outcome != want {
			t.Fatalf("item %d: %+v, want %v", i, r, want)
		}
	}
	st := sk.Stats()
	if st.Delivered != int64(n-refused) || st.Duplicates != 0 || st.Refused != int64(refused) || st.Batches < 3 {
		t.Fatalf("sink saw %+v; want %d delivered once each, %d refused", st, n-refused, refused)
	}
}
