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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/push"
	"github.com/herald-dev/herald/push/apns/apnstest"
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
	st := e.waitDone(id, 30*time.Second)
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s (%s), want done", st.State, st.Reason)
	}
	want := coordinator.Counters{Scanned: 5, Delivered: 2, Failed: 3, InvalidTokens: 2}
	if st.Counters != want {
		t.Errorf("counters %+v, want %+v", st.Counters, want)
	}
	conserved(t, st)

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

// TestAPNsKillMidBroadcast abandons a worker mid-broadcast to APNs:
// nothing is lost, every re-send carries the apns-id it had the first
// time, and the dead tokens all reach herald.invalid-tokens.
func TestAPNsKillMidBroadcast(t *testing.T) {
	e := newEnv(t, sink.Config{})
	srv, key := apnsFake(t)
	srv.KeepAccepted(false)
	const count, deadEvery = 20_000, 1000
	lines := make([]string, count)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"id":"s%d","name":"N%d","code":"C%d","token":%q}`, i, i, i, deviceToken(i))
		if i%deadEvery == 0 {
			srv.Kill(deviceToken(i), apnstest.Unregistered)
		}
	}
	path := writeAudience(t, lines)
	// Slow the fake a little so the kill lands mid-broadcast.
	srv.Reply = func(apnstest.Notification) *apnstest.Reply { time.Sleep(200 * time.Microsecond); return nil }
	ws := []*testWorker{
		apnsWorker(e, "w1", srv, key, true),
		apnsWorker(e, "w2", srv, key, false),
		apnsWorker(e, "w3", srv, key, false),
	}
	id := e.trigger(apnsTrigger("apns-kill", path, srv.URL, key))
	waitFor(t, 60*time.Second, "a third of the broadcast", func() bool { return srv.Stats().Distinct >= count/3 })
	ws[1].kill(t)
	st := e.waitDone(id, 90*time.Second)
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s (%s), want done", st.State, st.Reason)
	}
	conserved(t, st)
	stats := srv.Stats()
	dead := int64(count / deadEvery)
	if lost := st.Counters.Scanned - int64(stats.Distinct) - st.Counters.Failed; st.Counters.Scanned != count || lost != 0 {
		t.Errorf("lost %d (scanned %d, distinct accepted %d, failed %d)", lost, st.Counters.Scanned, stats.Distinct, st.Counters.Failed)
	}
	if st.Counters.Failed != dead || st.Counters.InvalidTokens != dead {
		t.Errorf("counters %+v, want %d failed, all invalid tokens", st.Counters, dead)
	}
	toks := invalidTokens(t, e, int(dead))
	for i := 0; i < count; i += deadEvery {
		if len(toks[fmt.Sprintf("s%d", i)]) == 0 {
			t.Errorf("s%d's dead token not on %s", i, devstack.InvalidTokensTopic)
		}
	}
	t.Logf("killed w2: accepted %d, distinct %d (re-sent under the same apns-id %d), invalid tokens %d", stats.Accepted, stats.Distinct, stats.Accepted-stats.Distinct, len(toks))
}
