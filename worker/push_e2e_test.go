package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/push"
	"github.com/herald-dev/herald/push/apns/apnstest"
	"github.com/herald-dev/herald/push/fcm/fcmtest"
	"github.com/herald-dev/herald/push/webpush"
	"github.com/herald-dev/herald/push/webpush/webpushtest"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/templates"
)

// loopbackTLS allows the test endpoints and the fake providers, which
// speak TLS on loopback.
var loopbackTLS = func() *allowlist.List {
	a, err := allowlist.Parse([]string{"http://127.0.0.1:*", "https://127.0.0.1:*"})
	if err != nil {
		panic(err)
	}
	return a
}()

// trusting is a TLS configuration that trusts the fakes' certificates.
func trusting(srvs ...*httptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	for _, s := range srvs {
		pool.AddCert(s.Certificate())
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// writeAudience writes lines as a file audience and returns its path.
func writeAudience(t *testing.T, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audience.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// deviceToken is subscriber i's APNs token: 64 hex digits.
func deviceToken(i int) string { return fmt.Sprintf("%064x", i+1) }

// readTopic reads up to n messages of topic from every partition.
func readTopic(t *testing.T, e *env, topic string, n int) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for p := 0; p < 4 && len(out) < n; p++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.stack.KafkaBrokers(), Topic: topic,
			Partition: p, MaxWait: 100 * time.Millisecond, ReadLagInterval: -1})
		for len(out) < n {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			m, err := r.ReadMessage(ctx)
			cancel()
			if err != nil {
				break
			}
			out = append(out, m)
		}
		r.Close()
	}
	return out
}

type invalidToken struct {
	Broadcast string `json:"broadcast"`
	Provider  string `json:"provider"`
	Token     string `json:"token"`
	Reason    string `json:"reason"`
}

// invalidTokens reads the invalid-token topic: by subscriber (the key),
// the records found, each decoded.
func invalidTokens(t *testing.T, e *env, atLeast int) map[string][]invalidToken {
	t.Helper()
	out := map[string][]invalidToken{}
	for _, m := range readTopic(t, e, devstack.InvalidTokensTopic, 1<<20) {
		var v invalidToken
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("invalid token record is not JSON: %s", m.Value)
		}
		out[string(m.Key)] = append(out[string(m.Key)], v)
	}
	if len(out) < atLeast {
		t.Fatalf("%d subscribers on %s, want %d", len(out), devstack.InvalidTokensTopic, atLeast)
	}
	return out
}

func apnsTrigger(id, path, url string, key apnstest.Key) map[string]any {
	return map[string]any{
		"id":       id,
		"audience": map[string]any{"source": "file", "path": path},
		"template": map[string]any{"default_locale": "en", "locales": map[string]any{
			"en": map[string]string{"title": "Hi {{.name}}", "body": "Code {{.code}}", "url": "https://example.com/{{.code}}"},
		}},
		"endpoint": map[string]any{"kind": "apns", "url": url, "max_in_flight": 16, "timeout_ms": 2000,
			"apns": map[string]any{"key_secret": "apns-key", "key_id": key.ID, "team_id": key.TeamID,
				"topic": "com.example.app", "collapse_from_key": true}},
	}
}

func apnsFake(t *testing.T) (*apnstest.Server, apnstest.Key) {
	t.Helper()
	key, err := apnstest.NewKey("KEY1234567", "TEAM123456")
	if err != nil {
		t.Fatal(err)
	}
	srv := apnstest.NewServer(key, "com.example.app")
	t.Cleanup(srv.Close)
	return srv, key
}

func apnsWorker(e *env, id string, srv *apnstest.Server, key apnstest.Key, intake bool) *testWorker {
	return e.startWorker(id, workerOpts{intake: intake, tune: func(c *Config) {
		c.Secrets = mapSecrets{"apns-key": string(key.P8)}
		c.PushTLS = trusting(srv.Server)
		c.Allow = loopbackTLS
	}})
}

// TestAPNsEndToEnd sends a small file audience through Kafka, etcd and the
// fake APNs: exact payloads and headers for the live tokens, the dead ones
// on herald.invalid-tokens and counted apart, and every failure a dead
// letter.
func TestAPNsEndToEnd(t *testing.T) {
	e := newEnv(t, sink.Config{})
	srv, key := apnsFake(t)
	srv.Kill(deviceToken(2), apnstest.Unregistered)
	srv.Kill(deviceToken(3), apnstest.BadDeviceToken)
	path := writeAudience(t, []string{
		fmt.Sprintf(`{"id":"u0","name":"Zoë","code":"A1","token":%q}`, deviceToken(0)),
		fmt.Sprintf(`{"id":"u1","name":"Bob","code":"B2","token":%q}`, deviceToken(1)),
		fmt.Sprintf(`{"id":"u2","name":"Cy","code":"C3","token":%q}`, deviceToken(2)),
		fmt.Sprintf(`{"id":"u3","name":"Di","code":"D4","token":%q}`, deviceToken(3)),
		`{"id":"u4","name":"Ed","code":"E5"}`,
	})
	w := apnsWorker(e, "w1", srv, key, true)
	id := e.trigger(apnsTrigger("apns-e2e", path, srv.URL, key))
	doneWith(t, e, id, coordinator.Counters{Scanned: 5, Delivered: 2, Failed: 3, InvalidTokens: 2})

	got := map[string]apnstest.Notification{}
	for _, n := range srv.Accepted() {
		got[n.Token] = n
	}
	for i, name := range map[int]string{0: "Zoë", 1: "Bob"} {
		sub := fmt.Sprintf("u%d", i)
		code := map[int]string{0: "A1", 1: "B2"}[i]
		k := templates.Key(id, sub)
		n, ok := got[deviceToken(i)]
		if !ok {
			t.Errorf("no notification for %s", sub)
			continue
		}
		wantPayload := fmt.Sprintf(`{"aps":{"alert":{"title":"Hi %s","body":"Code %s"}},"data":{"url":"https://example.com/%s"},"herald":{"broadcast_id":"apns-e2e","subscriber_id":"%s","idempotency_key":"%s","locale":"en"}}`,
			name, code, code, sub, k)
		if string(n.Payload) != wantPayload {
			t.Errorf("payload for %s\n got %s\nwant %s", sub, n.Payload, wantPayload)
		}
		if n.Header.Get("apns-id") != push.KeyUUID(k) || n.Header.Get("apns-collapse-id") != push.KeyUUID(k) ||
			n.Header.Get("apns-topic") != "com.example.app" || n.Header.Get("apns-priority") != "10" || n.Header.Get("apns-push-type") != "alert" {
			t.Errorf("headers for %s: %v", sub, n.Header)
		}
	}
	if st := srv.Stats(); st.Protocols["HTTP/2.0"] != st.Accepted+st.Refused["Unregistered"]+st.Refused["BadDeviceToken"] {
		t.Errorf("requests not all over HTTP/2: %+v", st)
	}

	toks := invalidTokens(t, e, 2)
	wantToks := map[string]invalidToken{
		"u2": {Broadcast: id, Provider: "apns", Token: deviceToken(2), Reason: "Unregistered"},
		"u3": {Broadcast: id, Provider: "apns", Token: deviceToken(3), Reason: "BadDeviceToken"},
	}
	if len(toks) != len(wantToks) {
		t.Errorf("invalid tokens %v, want %v", toks, wantToks)
	}
	for sub, wt := range wantToks {
		if len(toks[sub]) == 0 || toks[sub][0] != wt {
			t.Errorf("invalid token of %s: %v, want %v", sub, toks[sub], wt)
		}
	}
	letters := readDeadLetters(t, e, 3)
	reasons := map[string]string{}
	for _, d := range letters {
		reasons[fmt.Sprint(d["subscriber_id"])] = fmt.Sprint(d["reason"])
	}
	for sub, part := range map[string]string{"u2": "apns: status 410 Gone: Unregistered", "u3": "BadDeviceToken", "u4": `no "token" attribute`} {
		if !strings.Contains(reasons[sub], part) {
			t.Errorf("dead letter of %s: %q, want it to contain %q", sub, reasons[sub], part)
		}
	}
	if n := testutil.ToFloat64(w.w.metrics.invalidTokens); n != 2 {
		t.Errorf("herald_invalid_tokens_total %v, want 2", n)
	}
}

func fcmFake(t *testing.T) *fcmtest.Server {
	t.Helper()
	acct, err := fcmtest.NewAccount("herald-demo")
	if err != nil {
		t.Fatal(err)
	}
	srv := fcmtest.NewServer(acct)
	t.Cleanup(srv.Close)
	return srv
}

func fcmTune(srv *fcmtest.Server) func(*Config) {
	return func(c *Config) {
		c.Secrets = mapSecrets{"fcm-sa": string(srv.Credentials())}
		c.PushTLS, c.Allow = trusting(srv.Server), loopbackTLS
	}
}

func fcmTrigger(id, path, url string) map[string]any {
	return map[string]any{
		"id":       id,
		"audience": map[string]any{"source": "file", "path": path},
		"template": map[string]any{"default_locale": "en", "locales": map[string]any{
			"en": map[string]string{"title": "Hi {{.name}}", "body": "Code {{.code}}", "url": "https://example.com/{{.code}}"},
		}},
		"endpoint": map[string]any{"kind": "fcm", "url": url, "max_in_flight": 16, "timeout_ms": 2000,
			"token_field": "token", "fcm": map[string]any{"credentials_secret": "fcm-sa", "collapse_from_key": true}},
	}
}

// TestFCMEndToEnd sends a small file audience through Kafka, etcd and the
// fake FCM and token endpoint: exact messages for the live tokens, the
// dead ones on herald.invalid-tokens, and a quota answer that holds the
// broadcast until its Retry-After without failing anything.
func TestFCMEndToEnd(t *testing.T) {
	e := newEnv(t, sink.Config{})
	srv := fcmFake(t)
	srv.Kill("tok-u2", fcmtest.Unregistered)
	srv.Kill("tok-u3", fcmtest.InvalidToken)
	var quota atomic.Bool
	srv.Reply = func(m fcmtest.Message) *fcmtest.Reply {
		if m.Token == "tok-u1" && quota.CompareAndSwap(false, true) {
			return &fcmtest.QuotaExceeded
		}
		return nil
	}
	path := writeAudience(t, []string{
		`{"id":"u0","name":"Zoë","code":"A1","token":"tok-u0"}`,
		`{"id":"u1","name":"Bob","code":"B2","token":"tok-u1"}`,
		`{"id":"u2","name":"Cy","code":"C3","token":"tok-u2"}`,
		`{"id":"u3","name":"Di","code":"D4","token":"tok-u3"}`,
		`{"id":"u4","name":"Ed","code":"E5","token":""}`,
	})
	e.startWorker("w1", workerOpts{intake: true, tune: fcmTune(srv)})
	id := e.trigger(fcmTrigger("fcm-e2e", path, srv.URL))
	doneWith(t, e, id, coordinator.Counters{Scanned: 5, Delivered: 2, Failed: 3, InvalidTokens: 2})
	got := map[string]string{}
	for _, m := range srv.Accepted() {
		got[m.Token] = string(m.Raw)
	}
	for sub, nc := range map[string][2]string{"u0": {"Zoë", "A1"}, "u1": {"Bob", "B2"}} {
		k := templates.Key(id, sub)
		u := push.KeyUUID(k)
		want := fmt.Sprintf(`{"token":"tok-%s","notification":{"title":"Hi %s","body":"Code %s"},"data":{"herald_broadcast_id":"fcm-e2e","herald_idempotency_key":"%s","herald_locale":"en","herald_subscriber_id":"%s","url":"https://example.com/%s"},"android":{"collapse_key":"%s"},"apns":{"headers":{"apns-collapse-id":"%s"}}}`,
			sub, nc[0], nc[1], k, sub, nc[1], u, u)
		if got["tok-"+sub] != want {
			t.Errorf("message for %s\n got %s\nwant %s", sub, got["tok-"+sub], want)
		}
	}
	if st := srv.Stats(); st.Refused["QUOTA_EXCEEDED"] != 1 || st.Grants != 1 {
		t.Errorf("fake saw %+v: want one quota answer and one access token", st)
	}
	toks := invalidTokens(t, e, 2)
	for sub, wt := range map[string]invalidToken{
		"u2": {Broadcast: id, Provider: "fcm", Token: "tok-u2", Reason: "UNREGISTERED"},
		"u3": {Broadcast: id, Provider: "fcm", Token: "tok-u3", Reason: "INVALID_ARGUMENT"},
	} {
		if len(toks[sub]) == 0 || toks[sub][0] != wt {
			t.Errorf("invalid token of %s: %v, want %v", sub, toks[sub], wt)
		}
	}
	if len(toks) != 2 {
		t.Errorf("invalid tokens %v, want u2 and u3 only", toks)
	}
}

// TestFCMTokenEndpointMustBeAllowed: a key whose token endpoint is off the
// allowlist is refused at intake, naming the secret's field.
func TestFCMTokenEndpointMustBeAllowed(t *testing.T) {
	e := newEnv(t, sink.Config{})
	srv := fcmFake(t)
	acct, _ := fcmtest.NewAccount("herald-demo")
	e.startWorker("w1", workerOpts{intake: true, tune: func(c *Config) {
		fcmTune(srv)(c)
		c.Secrets = mapSecrets{"fcm-sa": string(acct.JSON("https://oauth2.googleapis.com/token"))}
	}})
	id := e.trigger(fcmTrigger("fcm-token-uri", writeAudience(t, []string{`{"id":"u0","token":"t"}`}), srv.URL))
	st := e.waitDone(id, 20*time.Second)
	if st.State != coordinator.StateRejected || !strings.Contains(st.Reason, "endpoint.fcm.credentials_secret") || !strings.Contains(st.Reason, "token endpoint") {
		t.Fatalf("state %s (%s), want rejected for the token endpoint", st.State, st.Reason)
	}
}

func webpushFake(t *testing.T) (*webpushtest.Server, webpush.VAPID) {
	t.Helper()
	v, err := webpush.NewVAPID()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := webpushtest.NewServer(v.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, v
}

func webpushTune(srv *webpushtest.Server, v webpush.VAPID) func(*Config) {
	secret, _ := json.Marshal(v)
	return func(c *Config) {
		c.Secrets = mapSecrets{"vapid": string(secret)}
		c.PushTLS, c.Allow = trusting(srv.Server), loopbackTLS
	}
}

func webpushTrigger(id, path string) map[string]any {
	return map[string]any{
		"id":       id,
		"audience": map[string]any{"source": "file", "path": path},
		"template": map[string]any{"default_locale": "en", "locales": map[string]any{
			"en": map[string]string{"title": "Hi {{.name}}", "body": "Code {{.code}}"},
		}},
		"endpoint": map[string]any{"kind": "webpush", "max_in_flight": 16, "timeout_ms": 2000,
			"webpush": map[string]any{"vapid_secret": "vapid", "subject": "mailto:ops@example.com", "ttl_s": 600,
				"urgency": "high", "topic_from_key": true}},
	}
}

// subscriptionLine is an audience line whose subscription the fake push
// service made; as an object, or (asString) as the JSON string some
// databases keep.
func subscriptionLine(t *testing.T, srv *webpushtest.Server, sub, name, code string, asString bool) string {
	t.Helper()
	ws, err := srv.Subscribe(sub)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(ws)
	var v any = json.RawMessage(raw)
	if asString {
		v = string(raw)
	}
	line, _ := json.Marshal(map[string]any{"id": sub, "name": name, "code": code, "subscription": v})
	return string(line)
}

// TestWebPushEndToEnd sends a small file audience through Kafka, etcd and
// the fake push service, which decrypts every payload with the
// subscription's private key: exact plaintexts and headers, gone
// subscriptions on herald.invalid-tokens, and a subscription on a push
// service off the allowlist failed without being contacted.
func TestWebPushEndToEnd(t *testing.T) {
	e := newEnv(t, sink.Config{})
	srv, v := webpushFake(t)
	lines := []string{
		subscriptionLine(t, srv, "u0", "Zoë", "A1", false),
		subscriptionLine(t, srv, "u1", "Bob", "B2", true),
		subscriptionLine(t, srv, "u2", "Cy", "C3", false),
		subscriptionLine(t, srv, "u3", "Di", "D4", false),
		`{"id":"u4","name":"Ed","code":"E5","subscription":{"endpoint":"https://push.elsewhere.example/x","keys":{"p256dh":"BAAA","auth":"AAAA"}}}`,
	}
	srv.Kill("u2", webpushtest.Gone)
	srv.Kill("u3", webpushtest.NotFound)
	e.startWorker("w1", workerOpts{intake: true, tune: webpushTune(srv, v)})
	id := e.trigger(webpushTrigger("webpush-e2e", writeAudience(t, lines)))
	doneWith(t, e, id, coordinator.Counters{Scanned: 5, Delivered: 2, Failed: 3, InvalidTokens: 2})
	got := map[string]webpushtest.Push{}
	for _, p := range srv.Accepted() {
		got[p.ID] = p
	}
	for sub, nc := range map[string][2]string{"u0": {"Zoë", "A1"}, "u1": {"Bob", "B2"}} {
		k := templates.Key(id, sub)
		want := fmt.Sprintf(`{"broadcast_id":"webpush-e2e","subscriber_id":"%s","idempotency_key":"%s","locale":"en","message":{"body":"Code %s","title":"Hi %s"}}`,
			sub, k, nc[1], nc[0])
		p := got[sub]
		if string(p.Plaintext) != want {
			t.Errorf("plaintext for %s\n got %s\nwant %s", sub, p.Plaintext, want)
		}
		if p.Header.Get("TTL") != "600" || p.Header.Get("Urgency") != "high" || p.Header.Get("Topic") != webpush.Topic(k) {
			t.Errorf("headers for %s: %v", sub, p.Header)
		}
	}
	toks := invalidTokens(t, e, 2)
	for sub, reason := range map[string]string{"u2": "410 Gone", "u3": "404 Not Found"} {
		wt := invalidToken{Broadcast: id, Provider: "webpush", Token: srv.URL + "/push/" + sub, Reason: reason}
		if len(toks[sub]) == 0 || toks[sub][0] != wt {
			t.Errorf("invalid token of %s: %v, want %v", sub, toks[sub], wt)
		}
	}
	if len(toks) != 2 {
		t.Errorf("invalid tokens %v, want u2 and u3 only", toks)
	}
	letters := readDeadLetters(t, e, 3)
	for _, d := range letters {
		if d["subscriber_id"] == "u4" && !strings.Contains(fmt.Sprint(d["reason"]), "not sent") {
			t.Errorf("u4's dead letter %v: want it not sent", d)
		}
	}
}

// doneWith waits for broadcast id to finish and checks it ended done with
// exactly want counted, every scanned record counted once.
func doneWith(t *testing.T, e *env, id string, want coordinator.Counters) coordinator.Status {
	t.Helper()
	st := e.waitDone(id, 30*time.Second)
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s (%s), want done", st.State, st.Reason)
	}
	if st.Counters != want {
		t.Errorf("counters %+v, want %+v", st.Counters, want)
	}
	conserved(t, st)
	return st
}
