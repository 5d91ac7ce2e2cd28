package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"

	"github.com/herald-dev/herald/push/apns/apnstest"
	"github.com/herald-dev/herald/push/fcm/fcmtest"
	"github.com/herald-dev/herald/push/webpush"
	"github.com/herald-dev/herald/push/webpush/webpushtest"
	"github.com/herald-dev/herald/sink"
)

// Channels `herald demo --channel` takes: the webhook (the reference
// sink) or a fake push provider.
const (
	ChannelWebhook = "webhook"
	ChannelAPNs    = "apns"
	ChannelFCM     = "fcm"
	ChannelWebPush = "webpush"
)

// target is where the demo's broadcast goes: what the spec says of the
// audience and the endpoint, what the workers need to reach it, and how
// many distinct deliveries (and duplicates) it received.
type target struct {
	url        string         // shown to the user
	audience   map[string]any // nil: the synthetic audience
	endpoint   map[string]any // nil: the webhook at url
	workerArgs []string
	// eligible is the subscribers that must be reached, -1 to count the
	// synthetic audience's.
	eligible int64
	received func(id string) (delivered, duplicates int64)
	close    func()
}

// newTarget starts the channel's receiving end on loopback; files the
// workers read (audience, secrets, the fake's certificate) go in dir.
func newTarget(ctx context.Context, cfg Config, dir string) (*target, error) {
	switch cfg.Channel {
	case "", ChannelWebhook:
		return webhookTarget(ctx, cfg)
	case ChannelAPNs, ChannelFCM, ChannelWebPush:
		return pushTarget(cfg, dir)
	}
	return nil, fmt.Errorf("demo: channel %q: want webhook, apns, fcm or webpush", cfg.Channel)
}

func webhookTarget(ctx context.Context, cfg Config) (*target, error) {
	snk, err := sink.New(sink.Config{Logger: cfg.Log, Latency: cfg.EndpointLatency})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: endpoint listener: %w", err)
	}
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	var sinkDone sync.WaitGroup
	sinkDone.Add(1)
	go func() {
		defer sinkDone.Done()
		_ = snk.Run(sinkCtx, ln)
	}()
	return &target{
		url:        "http://" + ln.Addr().String() + "/push",
		workerArgs: []string{"--allow-endpoint", "http://127.0.0.1:*"},
		eligible:   -1,
		received: func(id string) (int64, int64) {
			got := snk.Stats().Broadcasts[id]
			return got.Delivered, got.Duplicates
		},
		close: func() { stopSink(); sinkDone.Wait() },
	}, nil
}

// pushTarget starts the channel's fake provider and writes what the
// worker processes need: the secret its endpoint names, the fake's
// certificate, and an audience of cfg.Subscribers devices.
func pushTarget(cfg Config, dir string) (*target, error) {
	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	t := &target{eligible: cfg.Subscribers, audience: map[string]any{"source": "file", "path": filepath.Join(dir, "audience.jsonl")}}
	var srv *httptest.Server
	var line func(i int64) (string, error)
	switch cfg.Channel {
	case ChannelAPNs:
		key, err := apnstest.NewKey("DEMOKEY123", "DEMOTEAM12")
		if err != nil {
			return nil, err
		}
		fake := apnstest.NewServer(key, "dev.herald.demo")
		fake.KeepAccepted(false)
		srv = fake.Server
		if err := os.WriteFile(filepath.Join(secrets, "apns-key"), key.P8, 0o600); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		t.endpoint = map[string]any{"kind": "apns", "url": fake.URL, "apns": map[string]any{
			"key_secret": "apns-key", "key_id": key.ID, "team_id": key.TeamID, "topic": "dev.herald.demo", "collapse_from_key": true}}
		t.received = func(string) (int64, int64) {
			st := fake.Stats()
			return int64(st.Distinct), int64(st.Accepted - st.Distinct)
		}
		line = func(i int64) (string, error) { return tokenLine(i, fmt.Sprintf("%064x", i+1)), nil }
	case ChannelFCM:
		acct, err := fcmtest.NewAccount("herald-demo")
		if err != nil {
			return nil, err
		}
		fake := fcmtest.NewServer(acct)
		fake.KeepAccepted(false)
		srv = fake.Server
		if err := os.WriteFile(filepath.Join(secrets, "fcm-sa"), fake.Credentials(), 0o600); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		t.endpoint = map[string]any{"kind": "fcm", "url": fake.URL, "fcm": map[string]any{"credentials_secret": "fcm-sa", "collapse_from_key": true}}
		t.received = func(string) (int64, int64) {
			st := fake.Stats()
			return int64(st.Distinct), int64(st.Accepted - st.Distinct)
		}
		line = func(i int64) (string, error) { return tokenLine(i, fmt.Sprintf("fcm-token-%d", i)), nil }
	case ChannelWebPush:
		v, err := webpush.NewVAPID()
		if err != nil {
			return nil, err
		}
		fake, err := webpushtest.NewServer(v.PublicKey)
		if err != nil {
			return nil, err
		}
		fake.KeepAccepted(false)
		srv = fake.Server
		raw, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(secrets, "vapid"), raw, 0o600); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		t.endpoint = map[string]any{"kind": "webpush", "webpush": map[string]any{
			"vapid_secret": "vapid", "subject": "mailto:demo@herald.dev", "ttl_s": 600, "topic_from_key": true}}
		t.received = func(string) (int64, int64) {
			st := fake.Stats()
			return int64(st.Distinct), int64(st.Accepted - st.Distinct)
		}
		line = func(i int64) (string, error) {
			sub, err := fake.Subscribe(fmt.Sprintf("s%d", i))
			if err != nil {
				return "", err
			}
			b, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("s%d", i), "name": demoName(i), "code": demoCode(i), "subscription": sub})
			return string(b), nil
		}
	}
	t.url, t.close = srv.URL, srv.Close
	ca := filepath.Join(dir, "push-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		srv.Close()
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := writeLines(t.audience["path"].(string), cfg.Subscribers, line); err != nil {
		srv.Close()
		return nil, err
	}
	t.workerArgs = []string{"--allow-endpoint", "https://127.0.0.1:*", "--secrets-dir", secrets, "--push-ca-file", ca}
	return t, nil
}

func writeLines(path string, n int64, line func(i int64) (string, error)) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("demo: audience: %w", err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		l, err := line(i)
		if err != nil {
			f.Close()
			return fmt.Errorf("demo: audience: %w", err)
		}
		w.WriteString(l)
		w.WriteByte('\n')
	}
	return errors.Join(w.Flush(), f.Close())
}

var demoNames = []string{"Ann", "Björn", "Zoë", "José", "Chloé", "Łukasz", "Søren", "Ingrid"}

func demoName(i int64) string { return demoNames[i%int64(len(demoNames))] }
func demoCode(i int64) string { return fmt.Sprintf("X%05d", i%100000) }

func tokenLine(i int64, token string) string {
	b, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("s%d", i), "name": demoName(i), "code": demoCode(i), "token": token})
	return string(b)
}

// channelSpecJSON is the demo's broadcast to a push channel: the devices
// in t's audience, greeted by name.
func channelSpecJSON(id string, t *target, maxInFlight int) []byte {
	ep := map[string]any{"max_in_flight": maxInFlight, "timeout_ms": 5000, "max_attempts": 6}
	for k, v := range t.endpoint {
		ep[k] = v
	}
	raw, _ := json.Marshal(map[string]any{
		"id":       id,
		"audience": t.audience,
		"template": map[string]any{"default_locale": "en", "locales": map[string]any{
			"en": map[string]string{"title": "Hi {{.name}}", "body": "Your code: {{.code}}"},
		}},
		"endpoint": ep,
	})
	return raw
}
