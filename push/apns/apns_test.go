package apns_test

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/herald-dev/herald/push"
	"github.com/herald-dev/herald/push/apns"
	"github.com/herald-dev/herald/push/apns/apnstest"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	topic = "com.example.app"
	tokA  = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tokB  = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func setup(t *testing.T, mod func(*apns.Config)) (*apnstest.Server, *apns.Sender) {
	t.Helper()
	key, err := apnstest.NewKey("KEY1234567", "TEAM123456")
	if err != nil {
		t.Fatal(err)
	}
	srv := apnstest.NewServer(key, topic)
	t.Cleanup(srv.Close)
	cfg := apns.Config{URL: srv.URL, Key: key.P8, KeyID: key.ID, TeamID: key.TeamID, Topic: topic,
		Client: srv.Client(), Policy: push.Policy{BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := apns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return srv, s
}

func message(sub, token string) *push.Message {
	return &push.Message{BroadcastID: "spring", SubscriberID: sub, Key: templates.Key("spring", sub), Locale: "en",
		Fields: []templates.Field{{Name: "body", Value: "50% off"}, {Name: "title", Value: "Hi " + sub}, {Name: "url", Value: "https://x/y"}},
		Token:  token}
}

func TestPushDelivers(t *testing.T) {
	srv, s := setup(t, func(c *apns.Config) { c.CollapseFromKey, c.Expiration, c.Priority = true, time.Hour, 5 })
	m := message("alice", tokA)
	res := s.Push(context.Background(), m)
	if res.Outcome != delivery.Delivered || res.Attempts != 1 || res.Status != 200 {
		t.Fatalf("result %+v", res)
	}
	got := srv.Accepted()
	if len(got) != 1 {
		t.Fatalf("accepted %d", len(got))
	}
	n := got[0]
	want := `{"aps":{"alert":{"title":"Hi alice","body":"50% off"}},"data":{"url":"https://x/y"},"herald":{"broadcast_id":"spring","subscriber_id":"alice","idempotency_key":"` + m.Key + `","locale":"en"}}`
	if string(n.Payload) != want {
		t.Fatalf("payload\n%s\nwant\n%s", n.Payload, want)
	}
	id := push.KeyUUID(m.Key)
	exp, _ := strconv.ParseInt(n.Header.Get("apns-expiration"), 10, 64)
	for h, v := range map[string]string{"apns-id": id, "apns-collapse-id": id, "apns-topic": topic, "apns-push-type": "alert", "apns-priority": "5"} {
		if n.Header.Get(h) != v {
			t.Errorf("%s %q, want %q", h, n.Header.Get(h), v)
		}
	}
	if d := time.Until(time.Unix(exp, 0)); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Errorf("apns-expiration %v from now", d)
	}
	// A re-send carries the same apns-id.
	s.Push(context.Background(), m)
	if st := srv.Stats(); st.Accepted != 2 || st.Distinct != 1 || st.Protocols["HTTP/2.0"] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPushAnswers(t *testing.T) {
	tests := []struct {
		name     string
		replies  []apnstest.Reply // in order, then accepted
		dead     *apnstest.Reply
		want     delivery.Outcome
		attempts int
		gone     string
		minWait  time.Duration
	}{
		{name: "unregistered", dead: &apnstest.Unregistered, want: delivery.Failed, attempts: 1, gone: "Unregistered"},
		{name: "bad device token", dead: &apnstest.BadDeviceToken, want: delivery.Failed, attempts: 1, gone: "BadDeviceToken"},
		{name: "too many requests", replies: []apnstest.Reply{apnstest.TooManyRequests, apnstest.TooManyRequests}, want: delivery.Delivered, attempts: 3},
		{name: "unavailable, retry-after honoured", replies: []apnstest.Reply{apnstest.ServiceUnavailable}, want: delivery.Delivered, attempts: 2, minWait: time.Second},
		{name: "payload refused", replies: []apnstest.Reply{{Status: 413, Reason: "PayloadTooLarge"}}, want: delivery.Failed, attempts: 1},
		{name: "gives up", replies: []apnstest.Reply{{Status: 500, Reason: "InternalServerError"}, {Status: 500}, {Status: 500}, {Status: 500}, {Status: 500}, {Status: 500}},
			want: delivery.Failed, attempts: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, s := setup(t, nil)
			var n atomic.Int32
			srv.Reply = func(apnstest.Notification) *apnstest.Reply {
				i := int(n.Add(1)) - 1
				if i < len(tt.replies) {
					return &tt.replies[i]
				}
				return nil
			}
			if tt.dead != nil {
				srv.Kill(tokB, *tt.dead)
			}
			start := time.Now()
			res := s.Push(context.Background(), message("bob", tokB))
			if res.Outcome != tt.want || res.Attempts != tt.attempts || res.GoneReason != tt.gone || res.Gone != (tt.gone != "") {
				t.Fatalf("result %+v; want %v in %d attempts, gone %q", res, tt.want, tt.attempts, tt.gone)
			}
			if d := time.Since(start); d < tt.minWait {
				t.Fatalf("delivered after %v, before the Retry-After of %v", d, tt.minWait)
			}
		})
	}
}

// A token signed with another key is refused as Apple refuses it, and no
// retry can fix that.
func TestPushWrongKey(t *testing.T) {
	other, err := apnstest.NewKey("KEY1234567", "TEAM123456")
	if err != nil {
		t.Fatal(err)
	}
	srv, s := setup(t, func(c *apns.Config) { c.Key = other.P8 })
	res := s.Push(context.Background(), message("alice", tokA))
	if res.Outcome != delivery.Failed || res.Status != http.StatusForbidden || res.Attempts != 1 {
		t.Fatalf("result %+v", res)
	}
	if st := srv.Stats(); st.Refused["InvalidProviderToken"] != 1 || st.Accepted != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewRefuses(t *testing.T) {
	key, _ := apnstest.NewKey("K", "T")
	for name, cfg := range map[string]apns.Config{
		"no key":   {KeyID: "K", TeamID: "T", Topic: topic, Key: []byte("not a key")},
		"no topic": {KeyID: "K", TeamID: "T", Key: key.P8},
		"bad url":  {URL: "ftp://x", KeyID: "K", TeamID: "T", Topic: topic, Key: key.P8},
	} {
		if _, err := apns.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
