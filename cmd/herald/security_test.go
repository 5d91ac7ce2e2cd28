package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/signature"
	"github.com/herald-dev/herald/sink"
)

// secureCluster is etcd and Kafka as production runs them: etcd over TLS
// asking for client certificates with auth on (Herald's user may touch only
// /herald/), Kafka over TLS with SCRAM-SHA-512.
type secureCluster struct {
	pki   *devstack.PKI
	etcd  *devstack.Etcd
	kafka *devstack.Kafka
}

func startSecureCluster(t *testing.T) *secureCluster {
	t.Helper()
	ctx := context.Background()
	pki, err := devstack.NewPKI(t.TempDir(), "herald")
	if err != nil {
		t.Fatal(err)
	}
	e, err := devstack.StartSecureEtcd(ctx, devstack.EtcdConfig{}, devstack.EtcdSecurity{
		PKI: pki, ClientCertAuth: true, RootPassword: "root-pw",
		Users: []devstack.EtcdUser{{Name: "herald", Password: "herald-etcd-pw", Prefix: "/herald/"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	serverTLS, err := pki.ServerTLS(false)
	if err != nil {
		t.Fatal(err)
	}
	k, err := devstack.StartSecureKafka(ctx, devstack.KafkaConfig{Topics: []string{devstack.BroadcastsTopic, devstack.DeadLettersTopic, devstack.ReportsTopic}},
		devstack.KafkaSecurity{TLS: serverTLS, Users: []devstack.KafkaUser{{Mechanism: "SCRAM-SHA-512", Name: "herald", Password: "herald-kafka-pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return &secureCluster{pki: pki, etcd: e, kafka: k}
}

// env is the environment of every herald command run against the cluster:
// all settings through the environment twins, as a container gets them.
func (sc *secureCluster) env() map[string]string {
	return map[string]string{
		"HERALD_ETCD":           sc.etcd.Endpoint(),
		"HERALD_ETCD_CA":        sc.pki.CA,
		"HERALD_ETCD_CERT":      sc.pki.ClientCert,
		"HERALD_ETCD_KEY":       sc.pki.ClientKey,
		"HERALD_ETCD_USER":      "herald",
		"HERALD_ETCD_PASSWORD":  "herald-etcd-pw",
		"HERALD_KAFKA":          strings.Join(sc.kafka.Brokers(), ","),
		"HERALD_KAFKA_CA":       sc.pki.CA,
		"HERALD_KAFKA_SASL":     "scram-sha-512",
		"HERALD_KAFKA_USER":     "herald",
		"HERALD_KAFKA_PASSWORD": "herald-kafka-pw",
	}
}

// running is a herald command started in the background.
type running struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	exited         chan int
}

func start(env map[string]string, args ...string) *running {
	r := &running{stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan int, 1)}
	a := &cli{commands: commands(), stdout: r.stdout, stderr: r.stderr, getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.exited <- a.run(ctx, args) }()
	return r
}

// stop interrupts the command and returns its exit status.
func (r *running) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.exited:
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("command did not stop:\n%s", r.stderr.String())
		return -1
	}
}

func with(env map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(env)+len(kv)/2)
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func without(env map[string]string, keys ...string) map[string]string {
	out := with(env)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// TestSecureFleetEndToEnd runs herald sink (verifying signatures), herald
// worker, herald trigger and herald status against the secured cluster,
// configured only through the environment, and checks the broadcast is
// delivered signed and authorized, while forged requests, unlisted
// endpoints and wrong credentials are refused.
func TestSecureFleetEndToEnd(t *testing.T) {
	sc := startSecureCluster(t)
	dir := t.TempDir()
	oldKey, newKey := "old-signing-key-0123456789", "new-signing-key-9876543210"
	secrets := filepath.Join(dir, "secrets")
	if err := os.Mkdir(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	// The workers are mid-rotation: they sign with both keys; the endpoint
	// still knows only the old one.
	if err := os.WriteFile(filepath.Join(secrets, "push-signing"), []byte(newKey+"\n"+oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sinkKey := filepath.Join(dir, "sink-key")
	if err := os.WriteFile(sinkKey, []byte(oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	snk := start(nil, "sink", "--listen", "127.0.0.1:0", "--verify-secret-file", sinkKey)
	defer snk.stop(t)
	sinkURL := waitLine(t, snk, regexp.MustCompile(`sink listening on (http://\S+) `))

	env := with(sc.env(), "HERALD_ALLOW_ENDPOINT", "http://127.0.0.1:*",
		"HERALD_SECRETS_DIR", secrets, "HERALD_SECRET_PUSH_AUTH", "Bearer fleet-token")
	w := start(env, "worker", "--id", "w1", "--http-addr", "127.0.0.1:0", "--lease-ttl", "2s")
	defer func() {
		if code := w.stop(t); code != 0 {
			t.Errorf("worker exited %d:\n%s", code, w.stderr.String())
		}
	}()

	spec := map[string]any{
		"id":       "secure",
		"audience": map[string]any{"source": "synthetic", "count": 300, "seed": 3},
		"template": map[string]any{"default_locale": "en", "locales": map[string]any{"en": map[string]string{"title": "Hi {{.name}}"}}},
		"endpoint": map[string]any{"url": sinkURL + "/push", "signing_secret": "push-signing", "auth_secret": "push-auth"},
	}
	specFile := filepath.Join(dir, "spec.json")
	raw, _ := json.Marshal(spec)
	if err := os.WriteFile(specFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	// trigger with an allowlist that leaves the endpoint out: refused
	// locally, nothing produced.
	if code, _, stderr := runCLI(with(env, "HERALD_ALLOW_ENDPOINT", "https://*.elsewhere.example.com"), commands(), "trigger", specFile); code != 1 || !strings.Contains(stderr, "not allowed") {
		t.Fatalf("trigger with an allowlist that leaves the endpoint out: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCLI(env, commands(), "trigger", specFile); code != 0 {
		t.Fatalf("trigger: exit %d, %s", code, stderr)
	}

	var st struct {
		State    string           `json:"state"`
		Counters map[string]int64 `json:"counters"`
		Reason   string           `json:"reason"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for st.State != "done" {
		if time.Now().After(deadline) {
			t.Fatalf("broadcast not done: %+v\nworker log:\n%s", st, w.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
		code, out, stderr := runCLI(env, commands(), "status", "secure", "--json")
		if code != 0 {
			continue // not registered yet
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v: %s %s", err, out, stderr)
		}
		if st.State == "rejected" {
			t.Fatalf("rejected: %s", st.Reason)
		}
	}
	stats := sinkStats(t, sinkURL)
	eligible := st.Counters["scanned"] - st.Counters["unreachable"] - st.Counters["invalid"]
	if stats.Delivered != eligible || st.Counters["delivered"] != eligible || stats.Unauthorized != 0 {
		t.Errorf("sink %+v, status %+v: want all %d delivered, none refused", stats, st.Counters, eligible)
	}

	// A forged delivery: the endpoint refuses it.
	body := `{"broadcast_id":"secure","subscriber_id":"mallory","idempotency_key":"secure:mallory"}`
	forged, _ := signature.Sign([][]byte{[]byte("guessed-key-0123456789")}, time.Now(), []byte(body))
	req, _ := http.NewRequest(http.MethodPost, sinkURL+"/push", strings.NewReader(body))
	req.Header.Set("Idempotency-Key", "secure:mallory")
	req.Header.Set(signature.Header, forged)
	cl := httpClient(t)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || sinkStats(t, sinkURL).Unauthorized != 1 {
		t.Errorf("forged delivery: status %d, want 401 counted", resp.StatusCode)
	}

	// The worker's HTTP server refuses oversized headers and counts them.
	workerAddr := waitLine(t, &running{stdout: w.stderr, exited: w.exited}, regexp.MustCompile(`worker starting.*? http=(\S+)`))
	big, _ := http.NewRequest(http.MethodGet, "http://"+workerAddr+"/healthz", nil)
	big.Header.Set("X-Pad", strings.Repeat("p", 32<<10))
	if resp, err := cl.Do(big); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized headers to the worker: %v %v, want 431", resp, err)
	} else {
		resp.Body.Close()
	}
	metrics, err := cl.Get("http://" + workerAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !strings.Contains(string(text), `herald_input_limit_hits_total{limit="request_header_bytes"} 1`) {
		t.Errorf("metrics do not count the refused headers:\n%s", grepLines(string(text), "herald_input_limit_hits_total"))
	}

	// Wrong credentials: status cannot read, with a reason.
	for name, bad := range map[string]map[string]string{
		"wrong etcd password":          with(env, "HERALD_ETCD_PASSWORD", "guess"),
		"no etcd client cert":          without(env, "HERALD_ETCD_CERT", "HERALD_ETCD_KEY"),
		"etcd user outside its prefix": with(env, "HERALD_PREFIX", "/other"),
	} {
		code, _, stderr := runCLI(bad, commands(), "status", "--json")
		if code == 0 {
			t.Errorf("%s: status succeeded", name)
		}
		t.Logf("%s: exit %d: %s", name, code, strings.TrimSpace(stderr))
	}
	// And trigger cannot produce with a wrong Kafka password.
	if code, _, stderr := runCLI(with(env, "HERALD_KAFKA_PASSWORD", "guess"), commands(), "trigger", specFile); code == 0 {
		t.Errorf("trigger with a wrong Kafka password succeeded")
	} else {
		t.Logf("wrong Kafka password: exit %d: %s", code, strings.TrimSpace(stderr))
	}
}

func waitLine(t *testing.T, r *running, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(r.stdout.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-r.exited:
			t.Fatalf("exited %d:\n%s", code, r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line matching %s in:\n%s", re, r.stdout.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func sinkStats(t *testing.T, base string) sink.Stats {
	t.Helper()
	resp, err := httpClient(t).Get(base + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st sink.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// grepLines keeps the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
