package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/signature"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/templates"
)

// mapSecrets is a worker's secrets in a test.
type mapSecrets map[string]string

func (m mapSecrets) Secret(name string) ([]byte, error) {
	v, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("secret %s: %w", name, fs.ErrNotExist)
	}
	return []byte(v), nil
}

var _ Secrets = mapSecrets(nil)

// countingServer is an endpoint outside the test workers' allowlist: it
// listens on loopback but is addressed as localhost, a name the list does
// not hold. It counts what reaches it.
func countingServer(t *testing.T) (url string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(srv.Close)
	return strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/push", hits
}

// TestEndpointOutsideAllowlistRejected: a trigger naming an endpoint the
// workers may not send to is rejected at intake with the reason, and the
// endpoint never hears from the fleet.
func TestEndpointOutsideAllowlistRejected(t *testing.T) {
	e := newEnv(t, sink.Config{})
	w := e.startWorker("w1", workerOpts{intake: true})
	outside, hits := countingServer(t)
	e.trigger(synthetic("outside", outside, 50))
	e.trigger(synthetic("inside", e.endpoint(), 50)) // behind it on the topic

	if st := e.waitDone("inside", 30*time.Second); st.State != coordinator.StateDone {
		t.Fatalf("inside: %s", st.State)
	}
	st := e.status("outside")
	if st.State != coordinator.StateRejected || !strings.Contains(st.Reason, "endpoint.url") ||
		!strings.Contains(st.Reason, "not in the workers' endpoint allowlist") {
		t.Errorf("outside: state %s, reason %q; want rejected for its endpoint", st.State, st.Reason)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the unlisted endpoint got %d requests", n)
	}
	if got := labelled(t, w, "herald_endpoint_not_allowed_total", "where", "intake"); got != 1 {
		t.Errorf("not-allowed at intake counted %v, want 1", got)
	}
}

// TestSenderRefusesWhatIntakeDidNotCheck: a spec registered in etcd
// without passing intake (by someone with etcd access, or a worker with
// another list) still sends nothing outside the list: every subscriber is
// failed with the reason, the broadcast ends, and the counter shows it.
func TestSenderRefusesWhatIntakeDidNotCheck(t *testing.T) {
	e := newEnv(t, sink.Config{})
	w := e.startWorker("w1", workerOpts{})
	outside, hits := countingServer(t)
	raw, _ := json.Marshal(synthetic("bypass", outside, 30))
	s, _, err := spec.Parse(raw, spec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Register(context.Background(), coordinator.Broadcast{ID: s.ID, Spec: s.Canonical()}); err != nil {
		t.Fatal(err)
	}
	st := e.waitDone("bypass", 30*time.Second)
	if st.State != coordinator.StateDone || st.Counters.Delivered != 0 || st.Counters.Failed != eligible(t, st) {
		t.Errorf("state %s, counters %+v: want every eligible subscriber failed", st.State, st.Counters)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the unlisted endpoint got %d requests", n)
	}
	if got := labelled(t, w, "herald_endpoint_not_allowed_total", "where", "sender"); got != float64(st.Counters.Failed) {
		t.Errorf("not-allowed at the sender counted %v, want %d", got, st.Counters.Failed)
	}
	dl := readDeadLetters(t, e, 1)
	if reason := fmt.Sprint(dl[0]["reason"]); !strings.Contains(reason, "not sent") || !strings.Contains(reason, "allowlist") {
		t.Errorf("dead letter reason %q", reason)
	}
}

// TestSignedAndAuthorizedDeliveries: during a key rotation the workers sign
// with both keys; an endpoint still on the old key and one already on the
// new key both verify every delivery, and each carries the Authorization
// the secret holds.
func TestSignedAndAuthorizedDeliveries(t *testing.T) {
	oldKey, newKey := "old-key-0123456789abcdef", "new-key-fedcba9876543210"
	e := newEnv(t, sink.Config{})
	var mu sync.Mutex
	var bad []string
	verified := map[string]int{}
	e.inspect = func(r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		h := r.Header.Get(signature.Header)
		mu.Lock()
		defer mu.Unlock()
		for name, key := range map[string]string{"old": oldKey, "new": newKey} {
			if err := signature.Verify([][]byte{[]byte(key)}, h, body, time.Now(), 0); err != nil {
				bad = append(bad, name+": "+err.Error())
			} else {
				verified[name]++
			}
		}
		if got := r.Header.Get("Authorization"); got != "Bearer push-token" {
			bad = append(bad, "authorization "+got)
		}
	}
	secrets := mapSecrets{"push-signing": newKey + "\n" + oldKey + "\n", "push-auth": "Bearer push-token\n"}
	e.startWorker("w1", workerOpts{intake: true, tune: func(c *Config) { c.Secrets = secrets }})
	spec := synthetic("signed", e.endpoint(), 200)
	spec["endpoint"].(map[string]any)["signing_secret"] = "push-signing"
	spec["endpoint"].(map[string]any)["auth_secret"] = "push-auth"
	e.trigger(spec)
	st := e.waitDone("signed", 30*time.Second)
	if st.State != coordinator.StateDone || st.Counters.Delivered != eligible(t, st) {
		t.Fatalf("state %s, counters %+v", st.State, st.Counters)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("%d problems, first: %s", len(bad), bad[0])
	}
	if verified["old"] != int(st.Counters.Delivered) || verified["new"] != int(st.Counters.Delivered) {
		t.Errorf("verified %v, want each key to verify all %d", verified, st.Counters.Delivered)
	}
	raw, err := e.reg.Spec(context.Background(), "signed")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), oldKey) || strings.Contains(string(raw), "push-token") {
		t.Errorf("a secret's value reached etcd: %s", raw)
	}
}

// TestSecretsRefusedAtIntake: a trigger naming a secret the workers lack,
// or one that holds no usable value, is rejected naming the field; the
// value itself never appears in the reason.
func TestSecretsRefusedAtIntake(t *testing.T) {
	e := newEnv(t, sink.Config{})
	secrets := mapSecrets{"short-key": "tooshort", "bad-auth": "Bearer a\r\nX-Injected: 1"}
	e.startWorker("w1", workerOpts{intake: true, tune: func(c *Config) { c.Secrets = secrets }})
	tests := []struct{ id, field, secret, reason string }{
		{"missing-signing", "signing_secret", "nope", "no secret named"},
		{"short-signing", "signing_secret", "short-key", "does not hold signing keys"},
		{"missing-auth", "auth_secret", "nope", "no secret named"},
		{"bad-auth", "auth_secret", "bad-auth", "not a usable Authorization value"},
	}
	for _, tt := range tests {
		spec := synthetic(tt.id, e.endpoint(), 10)
		spec["endpoint"].(map[string]any)[tt.field] = tt.secret
		e.trigger(spec)
	}
	e.trigger(synthetic("last", e.endpoint(), 10))
	e.waitDone("last", 30*time.Second)
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			st := e.status(tt.id)
			if st.State != coordinator.StateRejected || !strings.Contains(st.Reason, "endpoint."+tt.field) ||
				!strings.Contains(st.Reason, tt.reason) {
				t.Errorf("state %s, reason %q", st.State, st.Reason)
			}
			if strings.Contains(st.Reason, "tooshort") || strings.Contains(st.Reason, "Injected") {
				t.Errorf("reason %q quotes the secret", st.Reason)
			}
		})
	}
	if got := e.sink.Stats().Broadcasts; len(got) != 1 {
		t.Errorf("deliveries for %d broadcasts, want only the last one's", len(got))
	}
}

// TestInputLimitsCounted: each limit on what enters a worker refuses with
// a clear reason and is counted by name.
func TestInputLimitsCounted(t *testing.T) {
	e := newEnv(t, sink.Config{})
	w := e.startWorker("w1", workerOpts{intake: true, tune: func(c *Config) {
		c.SpecLimits = spec.Limits{MaxBytes: 4096, Template: templates.Limits{MaxLocales: 2, MaxFields: 2, MaxFieldBytes: 64}}
		c.Delivery.MaxResponseBytes = 1024
	}})
	// Too large: the id is still read, so the refusal is recorded under it.
	huge := synthetic("huge", e.endpoint(), 10)
	huge["template"].(map[string]any)["locales"].(map[string]any)["en"] = map[string]string{"title": strings.Repeat("x", 5000)}
	hugeRaw, _ := json.Marshal(huge)
	locales := synthetic("locales", e.endpoint(), 10)
	locales["template"].(map[string]any)["locales"] = map[string]any{
		"en": map[string]string{"t": "a"}, "fr": map[string]string{"t": "b"}, "de": map[string]string{"t": "c"}}
	localesRaw, _ := json.Marshal(locales)
	fields := synthetic("fields", e.endpoint(), 10)
	fields["template"].(map[string]any)["locales"] = map[string]any{"en": map[string]string{"a": "1", "b": "2", "c": "3"}}
	fieldsRaw, _ := json.Marshal(fields)
	// Renders past 64 bytes for every subscriber.
	rendered := synthetic("rendered", e.endpoint(), 20)
	rendered["template"].(map[string]any)["locales"] = map[string]any{"en": map[string]string{"t": strings.Repeat("x", 70) + "{{.id}}"}}
	renderedRaw, _ := json.Marshal(rendered)
	produceRaw(t, e, string(hugeRaw), string(localesRaw), string(fieldsRaw), string(renderedRaw))

	for id, reason := range map[string]string{
		"huge":    "more than the limit of 4096",
		"locales": "template.locales: too many locales",
		"fields":  "template.locales.en: 3 fields, more than the limit of 2",
	} {
		waitFor(t, 20*time.Second, id+" rejected", func() bool {
			st, err := e.reg.Status(context.Background(), id)
			return err == nil && st.State == coordinator.StateRejected
		})
		if st := e.status(id); !strings.Contains(st.Reason, reason) {
			t.Errorf("%s: reason %q, want it to contain %q", id, st.Reason, reason)
		}
	}
	st := e.waitDone("rendered", 30*time.Second)
	if st.Counters.Failed != eligible(t, st) || st.Counters.Failed == 0 {
		t.Errorf("rendered: counters %+v, want every eligible subscriber failed", st.Counters)
	}

	// An endpoint that answers with a long body: still delivered, counted.
	e.mu.Lock()
	e.answer = func(_ string, w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(strings.Repeat("z", 4096)))
		return true
	}
	e.mu.Unlock()
	e.trigger(synthetic("chatty", e.endpoint(), 5))
	chatty := e.waitDone("chatty", 30*time.Second)

	want := map[string]float64{
		spec.LimitTriggerBytes: 1,
		spec.LimitLocales:      1,
		spec.LimitFields:       1,
		LimitRenderedField:     float64(st.Counters.Failed),
		"response_body_bytes":  float64(chatty.Counters.Delivered),
	}
	for limit, n := range want {
		if got := labelled(t, w, "herald_input_limit_hits_total", "limit", limit); got != n {
			t.Errorf("limit %s counted %v, want %v", limit, got, n)
		}
	}
}

// TestAudienceOutsideDirRejected: with an audience directory, a trigger
// cannot make the workers read another file (their secrets, say).
func TestAudienceOutsideDirRejected(t *testing.T) {
	e := newEnv(t, sink.Config{})
	dir := t.TempDir()
	inside := filepath.Join(dir, "followers.jsonl")
	if err := os.WriteFile(inside, []byte(`{"id":"u1","name":"Ann","code":"A1"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "push-auth")
	if err := os.WriteFile(outside, []byte(`{"id":"Bearer hunter2"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.startWorker("w1", workerOpts{intake: true, tune: func(c *Config) { c.AudienceDir = dir }})
	for id, path := range map[string]string{"outside": outside, "escape": dir + "/../" + filepath.Base(filepath.Dir(outside)) + "/push-auth", "inside": inside} {
		spec := synthetic(id, e.endpoint(), 1)
		spec["audience"] = map[string]any{"source": "file", "path": path}
		e.trigger(spec)
	}
	if st := e.waitDone("inside", 30*time.Second); st.State != coordinator.StateDone || st.Counters.Delivered != 1 {
		t.Fatalf("inside: %s %+v", st.State, st.Counters)
	}
	for _, id := range []string{"outside", "escape"} {
		waitFor(t, 10*time.Second, id+" rejected", func() bool {
			st, err := e.reg.Status(context.Background(), id)
			return err == nil && st.State == coordinator.StateRejected
		})
		if st := e.status(id); !strings.Contains(st.Reason, "audience.path") {
			t.Errorf("%s: reason %q", id, st.Reason)
		}
	}
	if n := len(e.sink.Stats().Broadcasts); n != 1 {
		t.Errorf("deliveries for %d broadcasts, want 1", n)
	}
}

// TestTriggerLargerThanAFetch: a trigger larger than the consumer's fetch
// size neither stalls intake nor gets through: the broker still hands it
// over whole, the spec limit rejects it, and the trigger behind it runs.
func TestTriggerLargerThanAFetch(t *testing.T) {
	e := newEnv(t, sink.Config{})
	w := e.startWorker("w1", workerOpts{intake: true, tune: func(c *Config) {
		c.FetchMaxBytes = 16 << 10
		c.SpecLimits.MaxBytes = 8 << 10
	}})
	big := synthetic("big", e.endpoint(), 10)
	big["template"].(map[string]any)["locales"].(map[string]any)["en"] = map[string]string{"title": strings.Repeat("x", 100<<10)}
	bigRaw, _ := json.Marshal(big)
	goodRaw, _ := json.Marshal(synthetic("after-big", e.endpoint(), 10))
	produceRaw(t, e, string(bigRaw), string(goodRaw))
	if st := e.waitDone("after-big", 30*time.Second); st.State != coordinator.StateDone {
		t.Fatalf("after-big: %s", st.State)
	}
	if st := e.status("big"); st.State != coordinator.StateRejected || !strings.Contains(st.Reason, "more than the limit of 8192") {
		t.Errorf("big: %s %q", st.State, st.Reason)
	}
	if got := labelled(t, w, "herald_input_limit_hits_total", "limit", spec.LimitTriggerBytes); got != 1 {
		t.Errorf("trigger_bytes counted %v, want 1", got)
	}
}
