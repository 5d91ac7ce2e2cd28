package delivery

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/signature"
)

var (
	keyOld = []byte("old-signing-key-0123456789")
	keyNew = []byte("new-signing-key-9876543210")
)

// onlyHost allows URLs whose host:port is host, as the worker's allowlist
// would.
func onlyHost(host string) func(*url.URL) error {
	return func(u *url.URL) error {
		if u.Host == host {
			return nil
		}
		return errors.New(u.Host + " is not in the allowlist")
	}
}

func TestSendToUnlistedEndpointSendsNothing(t *testing.T) {
	listed := newEndpoint(t, status(200))
	unlisted := newEndpoint(t, status(200))
	cfg := testConfig
	cfg.Allow = onlyHost(strings.TrimPrefix(listed.srv.URL, "http://"))
	s, _ := newTestSender(t, cfg)

	r := s.Send(context.Background(), unlisted.url(), testKey, []byte(testBody))
	if r.Outcome != Failed || r.Attempts != 0 || r.Status != 0 {
		t.Errorf("got %+v, want failed with no attempt", r)
	}
	if !strings.HasPrefix(r.Reason, "not sent: ") || !strings.Contains(r.Reason, "not in the allowlist") {
		t.Errorf("reason %q does not say why nothing was sent", r.Reason)
	}
	if n := len(unlisted.requests()); n != 0 {
		t.Errorf("unlisted endpoint saw %d requests", n)
	}
	if r := s.Send(context.Background(), listed.url(), testKey, []byte(testBody)); r.Outcome != Delivered {
		t.Errorf("listed endpoint: %+v", r)
	}
}

// TestRedirectToUnlistedHostNotFollowed: an allowed endpoint that answers
// with a redirect elsewhere gets its answer taken as final; the other host
// never hears from the worker, whatever the redirect code.
func TestRedirectToUnlistedHostNotFollowed(t *testing.T) {
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			elsewhere := newEndpoint(t, status(200))
			listed := newEndpoint(t, script(reply(code, "", "Location", elsewhere.url())))
			cfg := testConfig
			cfg.Allow = onlyHost(strings.TrimPrefix(listed.srv.URL, "http://"))
			s, _ := newTestSender(t, cfg)

			r := s.Send(context.Background(), listed.url(), testKey, []byte(testBody))
			if r.Outcome != Failed || r.Status != code || r.Attempts != 1 {
				t.Errorf("got %+v, want failed on the %d", r, code)
			}
			if n := len(elsewhere.requests()); n != 0 {
				t.Errorf("redirect target saw %d requests", n)
			}
		})
	}
}

// signedEndpoint verifies each request's signature with keys against the
// clock now, answering 401 to a bad one like a careful endpoint, and records
// the headers it saw.
type signedEndpoint struct {
	*endpoint
	mu      sync.Mutex
	headers []http.Header
}

func newSignedEndpoint(t *testing.T, keys [][]byte, now func() time.Time, answer func(int, http.ResponseWriter, *http.Request)) *signedEndpoint {
	se := &signedEndpoint{}
	se.endpoint = newEndpoint(t, func(n int, w http.ResponseWriter, r *http.Request) {
		se.mu.Lock()
		se.headers = append(se.headers, r.Header.Clone())
		se.mu.Unlock()
		// The recorded body is the one endpoint read; read it again from
		// the record to verify exactly what arrived.
		body := se.endpoint.requests()[n-1].body
		if err := signature.Verify(keys, r.Header.Get(signature.Header), []byte(body), now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		answer(n, w, r)
	})
	return se
}

func (se *signedEndpoint) seenHeaders() []http.Header {
	se.mu.Lock()
	defer se.mu.Unlock()
	return append([]http.Header(nil), se.headers...)
}

func TestSignedDeliveries(t *testing.T) {
	clock := func() time.Time { return testClock }
	tests := []struct {
		name        string
		senderKeys  [][]byte
		endpointKey [][]byte
		want        Outcome
		wantV1      int
	}{
		{name: "one key", senderKeys: [][]byte{keyOld}, endpointKey: [][]byte{keyOld}, want: Delivered, wantV1: 1},
		{name: "rotation: endpoint still on the old key", senderKeys: [][]byte{keyNew, keyOld}, endpointKey: [][]byte{keyOld}, want: Delivered, wantV1: 2},
		{name: "rotation: endpoint already on the new key", senderKeys: [][]byte{keyNew, keyOld}, endpointKey: [][]byte{keyNew}, want: Delivered, wantV1: 2},
		{name: "wrong key: 401 fails at once", senderKeys: [][]byte{keyNew}, endpointKey: [][]byte{keyOld}, want: Failed, wantV1: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSignedEndpoint(t, tt.endpointKey, clock, status(200))
			cfg := testConfig
			cfg.SigningKeys = tt.senderKeys
			s, _ := newTestSender(t, cfg)

			r := s.Send(context.Background(), e.url(), testKey, []byte(testBody))
			if r.Outcome != tt.want || r.Attempts != 1 {
				t.Fatalf("got %+v, want %v after one attempt", r, tt.want)
			}
			h := e.seenHeaders()[0].Get(signature.Header)
			if got := strings.Count(h, "v1="); got != tt.wantV1 || !strings.HasPrefix(h, "t=1795428000,") {
				t.Errorf("header %q: want t of the test clock and %d v1 entries", h, tt.wantV1)
			}
			if tt.want == Failed && !strings.Contains(r.Reason, "401") {
				t.Errorf("reason %q does not name the 401", r.Reason)
			}
		})
	}
}

// TestEveryAttemptSignedAnew: a delivery retried across the endpoint's
// tolerance is still accepted, because each attempt carries its own time.
func TestEveryAttemptSignedAnew(t *testing.T) {
	var mu sync.Mutex
	now := testClock
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	e := newSignedEndpoint(t, [][]byte{keyOld}, clock, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			advance(4 * time.Minute) // two retries: 8 minutes after the first attempt
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	cfg := testConfig
	cfg.SigningKeys = [][]byte{keyOld}
	cfg.Authorization = "Bearer s3cr3t"
	s, _ := newTestSender(t, cfg)
	s.now = clock

	r := s.Send(context.Background(), e.url(), testKey, []byte(testBody))
	if r.Outcome != Delivered || r.Attempts != 3 {
		t.Fatalf("got %+v, want delivered on the third attempt", r)
	}
	seen := e.seenHeaders()
	stamps := map[string]bool{}
	for i, h := range seen {
		stamps[strings.SplitN(h.Get(signature.Header), ",", 2)[0]] = true
		if got := h.Get("Authorization"); got != "Bearer s3cr3t" {
			t.Errorf("attempt %d: Authorization %q", i+1, got)
		}
		if got := h.Values(signature.Header); len(got) != 1 {
			t.Errorf("attempt %d: %d signature headers", i+1, len(got))
		}
	}
	if len(stamps) != 3 {
		t.Errorf("signature times %v: want a different one per attempt", stamps)
	}
}

func TestUnsignedByDefault(t *testing.T) {
	e := newEndpoint(t, status(200))
	var got http.Header
	e.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() })
	s, _ := newTestSender(t, testConfig)
	if r := s.Send(context.Background(), e.url(), testKey, []byte(testBody)); r.Outcome != Delivered {
		t.Fatal(r)
	}
	if got.Get(signature.Header) != "" || got.Get("Authorization") != "" {
		t.Errorf("unexpected headers %v", got)
	}
}

func TestAuthorizationNeverInErrors(t *testing.T) {
	err := Config{Authorization: "Bearer hunter2\r\n"}.Validate()
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Validate = %v: want an error that does not quote the secret", err)
	}
}

// TestResponseLimits: an answer past a limit is counted through OnLimit;
// a body too long still lets the delivery count, headers too long fail the
// attempt.
func TestResponseLimits(t *testing.T) {
	tests := []struct {
		name   string
		answer func(int, http.ResponseWriter, *http.Request)
		limit  string // "" for none
		want   Outcome
	}{
		{name: "body at the limit", answer: script(reply(200, strings.Repeat("x", 1024))), want: Delivered},
		{name: "body over the limit", answer: script(reply(200, strings.Repeat("x", 1025))), limit: LimitResponseBody, want: Delivered},
		{name: "headers over the limit", answer: script(reply(200, "", "X-Big", strings.Repeat("h", 4096))), limit: LimitResponseHeaders, want: Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEndpoint(t, tt.answer)
			var mu sync.Mutex
			var hits []string
			cfg := testConfig
			cfg.MaxAttempts = 1
			cfg.MaxResponseBytes = 1024
			cfg.MaxResponseHeaderBytes = 2048
			cfg.OnLimit = func(l string) { mu.Lock(); hits = append(hits, l); mu.Unlock() }
			s, _ := newTestSender(t, cfg)

			r := s.Send(context.Background(), e.url(), testKey, []byte(testBody))
			if r.Outcome != tt.want {
				t.Errorf("got %+v, want %v", r, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.limit == "" && len(hits) != 0 || tt.limit != "" && (len(hits) != 1 || hits[0] != tt.limit) {
				t.Errorf("limits hit %v, want [%s]", hits, tt.limit)
			}
		})
	}
}
