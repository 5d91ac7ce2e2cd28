package webpush_test

import (
	"context"
	"errors"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/herald-dev/herald/push"
	"github.com/herald-dev/herald/push/webpush"
	"github.com/herald-dev/herald/push/webpush/webpushtest"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func setup(t *testing.T, mod func(*webpush.Config)) (*webpushtest.Server, *webpush.Sender) {
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
	cfg := webpush.Config{VAPID: v, Subject: "mailto:ops@example.com", TTL: time.Hour, Client: srv.Client(),
		Policy: push.Policy{BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := webpush.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return srv, s
}

func message(t *testing.T, srv *webpushtest.Server, sub string) *push.Message {
	t.Helper()
	ws, err := srv.Subscribe(sub)
	if err != nil {
		t.Fatal(err)
	}
	m := &push.Message{BroadcastID: "spring", SubscriberID: sub, Key: templates.Key("spring", sub), Locale: "en",
		Fields: []templates.Field{{Name: "body", Value: "50% off"}, {Name: "title", Value: "Hi " + sub}}}
	m.Subscription.Endpoint, m.Subscription.Keys.P256dh, m.Subscription.Keys.Auth = ws.Endpoint, ws.Keys.P256dh, ws.Keys.Auth
	return m
}

func TestPushDelivers(t *testing.T) {
	srv, s := setup(t, func(c *webpush.Config) { c.TopicFromKey, c.Urgency = true, "high" })
	m := message(t, srv, "alice")
	if res := s.Push(context.Background(), m); res.Outcome != delivery.Delivered || res.Status != 201 {
		t.Fatalf("result %+v", res)
	}
	got := srv.Accepted()
	if len(got) != 1 {
		t.Fatalf("accepted %d", len(got))
	}
	want := `{"broadcast_id":"spring","subscriber_id":"alice","idempotency_key":"` + m.Key + `","locale":"en","message":{"body":"50% off","title":"Hi alice"}}`
	if string(got[0].Plaintext) != want {
		t.Fatalf("decrypted\n%s\nwant\n%s", got[0].Plaintext, want)
	}
	h := got[0].Header
	if h.Get("TTL") != "3600" || h.Get("Urgency") != "high" || h.Get("Topic") != webpush.Topic(m.Key) || len(h.Get("Topic")) != 22 {
		t.Fatalf("headers %v", h)
	}
}

func TestPushAnswers(t *testing.T) {
	tests := []struct {
		name     string
		replies  []webpushtest.Reply
		dead     *webpushtest.Reply
		want     delivery.Outcome
		attempts int
		gone     string
		minWait  time.Duration
	}{
		{name: "gone", dead: &webpushtest.Gone, want: delivery.Failed, attempts: 1, gone: "410 Gone"},
		{name: "not found", dead: &webpushtest.NotFound, want: delivery.Failed, attempts: 1, gone: "404 Not Found"},
		{name: "too many, retry-after honoured", replies: []webpushtest.Reply{webpushtest.TooMany}, want: delivery.Delivered, attempts: 2, minWait: time.Second},
		{name: "unavailable", replies: []webpushtest.Reply{{Status: 502}, {Status: 500}}, want: delivery.Delivered, attempts: 3},
		{name: "too large", replies: []webpushtest.Reply{{Status: 413}}, want: delivery.Failed, attempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, s := setup(t, nil)
			var n atomic.Int32
			srv.Reply = func(webpushtest.Push) *webpushtest.Reply {
				i := int(n.Add(1)) - 1
				if i < len(tt.replies) {
					return &tt.replies[i]
				}
				return nil
			}
			m := message(t, srv, "bob")
			if tt.dead != nil {
				srv.Kill("bob", *tt.dead)
			}
			start := time.Now()
			res := s.Push(context.Background(), m)
			if res.Outcome != tt.want || res.Attempts != tt.attempts || res.GoneReason != tt.gone || res.Gone != (tt.gone != "") {
				t.Fatalf("result %+v; want %v in %d attempts, gone %q", res, tt.want, tt.attempts, tt.gone)
			}
			if d := time.Since(start); d < tt.minWait {
				t.Fatalf("done after %v, before the Retry-After of %v", d, tt.minWait)
			}
		})
	}
}

// Pushes signed with another VAPID key are refused by the push service;
// a subscription whose push service is off the allowlist gets nothing.
func TestPushRefusals(t *testing.T) {
	other, _ := webpush.NewVAPID()
	srv, s := setup(t, func(c *webpush.Config) { c.VAPID = other })
	if res := s.Push(context.Background(), message(t, srv, "alice")); res.Outcome != delivery.Failed || res.Status != 403 {
		t.Fatalf("wrong VAPID key: %+v", res)
	}
	srv2, s2 := setup(t, func(c *webpush.Config) {
		c.Policy.Allow = func(*url.URL) error { return errors.New("origin not allowed") }
	})
	if res := s2.Push(context.Background(), message(t, srv2, "alice")); res.Outcome != delivery.Failed || res.Attempts != 0 || len(srv2.Accepted()) != 0 {
		t.Fatalf("not allowed: %+v", res)
	}
	m := message(t, srv2, "carol")
	m.Subscription.Keys.P256dh = "AAAA"
	if res := s.Push(context.Background(), m); res.Outcome != delivery.Failed || res.Attempts != 0 {
		t.Fatalf("bad keys: %+v", res)
	}
}

func TestParseVAPID(t *testing.T) {
	v, _ := webpush.NewVAPID()
	good := `{"public_key":"` + v.PublicKey + `","private_key":"` + v.PrivateKey + `"}`
	if _, err := webpush.ParseVAPID([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{`, `{"public_key":"x","private_key":"` + v.PrivateKey + `"}`, `{"public_key":"` + v.PublicKey + `"}`} {
		if _, err := webpush.ParseVAPID([]byte(bad)); err == nil {
			t.Errorf("ParseVAPID(%s) accepted it", bad)
		}
	}
}
