package delivery

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	testKey  = "spring-sale-2026:u42:3f9a"
	testBody = `{"broadcast_id":"spring-sale-2026","subscriber_id":"u42","idempotency_key":"spring-sale-2026:u42:3f9a","locale":"en","message":{"title":"Hi Ann","body":"Your code: X7"}}`
)

// testConfig retries four times: backoff waits are 200, 400, 500, 500 ms
// with the largest jitter newTestSender draws.
var testConfig = Config{MaxInFlight: 4, MaxAttempts: 5, BackoffMin: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond}

func TestSendFollowsPolicy(t *testing.T) {
	ms := time.Millisecond
	backoffs := []time.Duration{200 * ms, 400 * ms, 500 * ms, 500 * ms}
	httpDate := func(d time.Duration) string { return testClock.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name         string
		answer       func(int, http.ResponseWriter, *http.Request)
		cfg          func(*Config)
		want         Outcome
		wantStatus   int
		wantAttempts int
		wantWaits    []time.Duration
		wantReason   string // a substring; empty means Reason must be empty
	}{
		{name: "200 delivered", answer: status(200), want: Delivered, wantStatus: 200, wantAttempts: 1},
		{name: "201 delivered", answer: status(201), want: Delivered, wantStatus: 201, wantAttempts: 1},
		{name: "204 delivered", answer: status(204), want: Delivered, wantStatus: 204, wantAttempts: 1},
		{name: "409 delivered: endpoint had it", answer: status(409), want: Delivered, wantStatus: 409, wantAttempts: 1},
		{name: "400 failed at once", answer: status(400), want: Failed, wantStatus: 400, wantAttempts: 1,
			wantReason: "status 400 Bad Request"},
		{name: "404 failed at once", answer: status(404), want: Failed, wantStatus: 404, wantAttempts: 1,
			wantReason: "status 404 Not Found"},
		{name: "422 failed at once, quoting the endpoint", answer: script(reply(422, "bad token\n\x00for u42")),
			want: Failed, wantStatus: 422, wantAttempts: 1, wantReason: "status 422 Unprocessable Entity: bad token for u42"},
		{name: "302 failed, not followed", answer: script(reply(302, "", "Location", "/elsewhere")),
			want: Failed, wantStatus: 302, wantAttempts: 1, wantReason: "status 302"},
		{name: "500 retried until MaxAttempts", answer: status(500), want: Failed, wantStatus: 500, wantAttempts: 5,
			wantWaits: backoffs, wantReason: "gave up after 5 attempts: status 500 Internal Server Error"},
		{name: "502 retried until MaxAttempts", answer: script(reply(502, "upstream down")), want: Failed, wantStatus: 502,
			wantAttempts: 5, wantWaits: backoffs, wantReason: "gave up after 5 attempts: status 502 Bad Gateway: upstream down"},
		{name: "500 then 200 delivered", answer: script(reply(500, ""), reply(500, ""), reply(200, "")),
			want: Delivered, wantStatus: 200, wantAttempts: 3, wantWaits: backoffs[:2]},
		{name: "one attempt allowed", answer: status(500), cfg: func(c *Config) { c.MaxAttempts = 1 },
			want: Failed, wantStatus: 500, wantAttempts: 1, wantReason: "gave up after 1 attempts"},
		{name: "429 Retry-After seconds honoured", answer: script(reply(429, "", "Retry-After", "2"), reply(200, "")),
			want: Delivered, wantStatus: 200, wantAttempts: 2, wantWaits: []time.Duration{2 * time.Second}},
		{name: "429 Retry-After date honoured", answer: script(reply(429, "", "Retry-After", httpDate(7*time.Second)), reply(200, "")),
			want: Delivered, wantStatus: 200, wantAttempts: 2, wantWaits: []time.Duration{7 * time.Second}},
		{name: "503 Retry-After seconds honoured", answer: script(reply(503, "", "Retry-After", "2"), reply(204, "")),
			want: Delivered, wantStatus: 204, wantAttempts: 2, wantWaits: []time.Duration{2 * time.Second}},
		{name: "503 Retry-After date honoured", answer: script(reply(503, "", "Retry-After", httpDate(3*time.Second)), reply(200, "")),
			want: Delivered, wantStatus: 200, wantAttempts: 2, wantWaits: []time.Duration{3 * time.Second}},
		{name: "Retry-After capped by MaxRetryAfter", answer: script(reply(429, "", "Retry-After", "3600"), reply(200, "")),
			cfg:  func(c *Config) { c.MaxRetryAfter = 30 * time.Second },
			want: Delivered, wantStatus: 200, wantAttempts: 2, wantWaits: []time.Duration{30 * time.Second}},
		{name: "Retry-After 0 waits BackoffMin", answer: script(reply(503, "", "Retry-After", "0"), reply(200, "")),
			want: Delivered, wantStatus: 200, wantAttempts: 2, wantWaits: []time.Duration{100 * ms}},
		{name: "Retry-After in the past waits BackoffMin", answer: script(reply(429, "", "Retry-After", httpDate(-time.Hour)), reply(200, "")),
			want: Delivered, wantStatus: 200, wantAttempts: 2, wantWaits: []time.Duration{100 * ms}},
		{name: "429 without Retry-After backs off", answer: status(429), want: Failed, wantStatus: 429, wantAttempts: 5,
			wantWaits: backoffs, wantReason: "gave up after 5 attempts: status 429 Too Many Requests"},
		{name: "503 with unreadable Retry-After backs off", answer: script(reply(503, "", "Retry-After", "soon")),
			want: Failed, wantStatus: 503, wantAttempts: 5, wantWaits: backoffs, wantReason: "status 503 Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			e := newEndpoint(t, tt.answer)
			s, waits := newTestSender(t, cfg)

			r := s.Send(context.Background(), e.url(), testKey, []byte(testBody))

			if r.Outcome != tt.want || r.Status != tt.wantStatus || r.Attempts != tt.wantAttempts {
				t.Errorf("got %v status %d after %d attempts (%q), want %v status %d after %d",
					r.Outcome, r.Status, r.Attempts, r.Reason, tt.want, tt.wantStatus, tt.wantAttempts)
			}
			if got := len(e.requests()); got != tt.wantAttempts {
				t.Errorf("endpoint saw %d requests, want %d", got, tt.wantAttempts)
			}
			if got := waits.list(); !slices.Equal(got, tt.wantWaits) {
				t.Errorf("planned waits %v, want %v", got, tt.wantWaits)
			}
			if tt.wantReason == "" && r.Reason != "" || !strings.Contains(r.Reason, tt.wantReason) {
				t.Errorf("reason %q, want it to contain %q", r.Reason, tt.wantReason)
			}
			if r.Latency <= 0 {
				t.Errorf("latency %v not recorded", r.Latency)
			}
		})
	}
}

func TestSendSameKeyAndBodyEveryAttempt(t *testing.T) {
	e := newEndpoint(t, script(reply(500, ""), reply(429, "", "Retry-After", "1"), reply(503, ""), reply(200, "")))
	s, _ := newTestSender(t, testConfig)

	r := s.Send(context.Background(), e.url(), testKey, []byte(testBody))

	if r.Outcome != Delivered || r.Attempts != 4 {
		t.Fatalf("got %+v, want delivered on the 4th attempt", r)
	}
	want := seen{method: http.MethodPost, contentType: "application/json", key: testKey, body: testBody}
	for i, got := range e.requests() {
		if got != want {
			t.Errorf("attempt %d sent %+v, want %+v", i+1, got, want)
		}
	}
}

func TestSendRefusesBadInputWithoutSending(t *testing.T) {
	e := newEndpoint(t, status(200))
	tests := []struct {
		name, url, key string
	}{
		{name: "empty key", url: e.url(), key: ""},
		{name: "key too long", url: e.url(), key: strings.Repeat("k", maxKeyLen+1)},
		{name: "key with newline", url: e.url(), key: "a\nb"},
		{name: "key not ASCII", url: e.url(), key: "clé"},
		{name: "url not http", url: "ftp://127.0.0.1/push", key: testKey},
		{name: "url unparsable", url: "http://[::1", key: testKey},
	}
	s, _ := newTestSender(t, testConfig)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.Send(context.Background(), tt.url, tt.key, []byte(testBody))
			if r.Outcome != Failed || r.Attempts != 0 || !strings.HasPrefix(r.Reason, "not sent: ") {
				t.Errorf("got %+v, want failed without an attempt", r)
			}
		})
	}
	if n := len(e.requests()); n != 0 {
		t.Errorf("endpoint saw %d requests, want none", n)
	}
	long := strings.Repeat("k", maxKeyLen)
	if r := s.Send(context.Background(), e.url(), long, nil); r.Outcome != Delivered {
		t.Errorf("a %d-character key: got %+v, want delivered", maxKeyLen, r)
	}
}

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		o    Outcome
		want string
	}{
		{Delivered, "delivered"}, {Failed, "failed"}, {Aborted, "aborted"}, {0, "outcome(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.o.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
