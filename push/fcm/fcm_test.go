package fcm_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/herald-dev/herald/push"
	"github.com/herald-dev/herald/push/fcm"
	"github.com/herald-dev/herald/push/fcm/fcmtest"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func setup(t *testing.T, mod func(*fcm.Config)) (*fcmtest.Server, *fcm.Sender) {
	t.Helper()
	acct, err := fcmtest.NewAccount("herald-demo")
	if err != nil {
		t.Fatal(err)
	}
	srv := fcmtest.NewServer(acct)
	t.Cleanup(srv.Close)
	cfg := fcm.Config{URL: srv.URL, Credentials: srv.Credentials(), Client: srv.Client(),
		Policy: push.Policy{BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := fcm.New(cfg)
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
	srv, s := setup(t, func(c *fcm.Config) { c.CollapseFromKey = true })
	for _, sub := range []string{"alice", "bob"} {
		if res := s.Push(context.Background(), message(sub, "tok-"+sub)); res.Outcome != delivery.Delivered || res.Attempts != 1 {
			t.Fatalf("result %+v", res)
		}
	}
	got := srv.Accepted()
	if len(got) != 2 {
		t.Fatalf("accepted %d", len(got))
	}
	k := templates.Key("spring", "alice")
	id := push.KeyUUID(k)
	want := `{"token":"tok-alice","notification":{"title":"Hi alice","body":"50% off"},"data":{"herald_broadcast_id":"spring","herald_idempotency_key":"` + k +
		`","herald_locale":"en","herald_subscriber_id":"alice","url":"https://x/y"},"android":{"collapse_key":"` + id + `"},"apns":{"headers":{"apns-collapse-id":"` + id + `"}}}`
	if string(got[0].Raw) != want {
		t.Fatalf("message\n%s\nwant\n%s", got[0].Raw, want)
	}
	// One access token serves every message.
	if st := srv.Stats(); st.Grants != 1 {
		t.Fatalf("stats %+v, want one access token", st)
	}
}

func TestPushAnswers(t *testing.T) {
	tests := []struct {
		name     string
		replies  []fcmtest.Reply
		dead     *fcmtest.Reply
		want     delivery.Outcome
		attempts int
		gone     string
		minWait  time.Duration
		held     bool
	}{
		{name: "unregistered", dead: &fcmtest.Unregistered, want: delivery.Failed, attempts: 1, gone: "UNREGISTERED"},
		{name: "invalid token", dead: &fcmtest.InvalidToken, want: delivery.Failed, attempts: 1, gone: "INVALID_ARGUMENT"},
		{name: "invalid argument, not the token", replies: []fcmtest.Reply{{Status: 400, RPCStatus: "INVALID_ARGUMENT", ErrorCode: "INVALID_ARGUMENT", Message: "Invalid value at 'message.data'"}},
			want: delivery.Failed, attempts: 1},
		{name: "unavailable, retry-after honoured", replies: []fcmtest.Reply{fcmtest.Unavailable}, want: delivery.Delivered, attempts: 2, minWait: time.Second},
		{name: "internal", replies: []fcmtest.Reply{fcmtest.InternalFailed, fcmtest.InternalFailed}, want: delivery.Delivered, attempts: 3},
		{name: "quota holds the broadcast", replies: []fcmtest.Reply{fcmtest.QuotaExceeded}, want: delivery.Delivered, attempts: 2, minWait: time.Second, held: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, s := setup(t, nil)
			var n atomic.Int32
			srv.Reply = func(fcmtest.Message) *fcmtest.Reply {
				i := int(n.Add(1)) - 1
				if i < len(tt.replies) {
					return &tt.replies[i]
				}
				return nil
			}
			if tt.dead != nil {
				srv.Kill("tok-bob", *tt.dead)
			}
			start := time.Now()
			done := make(chan push.Result)
			go func() { done <- s.Push(context.Background(), message("bob", "tok-bob")) }()
			if tt.held {
				// While held, the Sender reports it waits on its endpoint.
				deadline := time.Now().Add(time.Second)
				for s.WaitingSince().IsZero() && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if s.WaitingSince().IsZero() {
					t.Error("quota answer did not hold the Sender")
				}
			}
			res := <-done
			if res.Outcome != tt.want || res.Attempts != tt.attempts || res.GoneReason != tt.gone || res.Gone != (tt.gone != "") {
				t.Fatalf("result %+v; want %v in %d attempts, gone %q", res, tt.want, tt.attempts, tt.gone)
			}
			if d := time.Since(start); d < tt.minWait {
				t.Fatalf("done after %v, before the Retry-After of %v", d, tt.minWait)
			}
		})
	}
}

// A key the token endpoint does not know is refused there, and the
// delivery fails at once.
func TestPushRefusedAccount(t *testing.T) {
	other, err := fcmtest.NewAccount("herald-demo")
	if err != nil {
		t.Fatal(err)
	}
	srv, s := setup(t, nil)
	s2, err := fcm.New(fcm.Config{URL: srv.URL, Credentials: other.JSON(srv.TokenURL()), Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	res := s2.Push(context.Background(), message("alice", "tok-alice"))
	if res.Outcome != delivery.Failed || res.Attempts != 1 || res.Status != 400 {
		t.Fatalf("result %+v", res)
	}
	_ = s
}

func TestNewRefuses(t *testing.T) {
	acct, _ := fcmtest.NewAccount("p")
	for name, cfg := range map[string]fcm.Config{
		"not json":     {Credentials: []byte("{")},
		"not a sa":     {Credentials: []byte(`{"type":"authorized_user"}`)},
		"bad url":      {URL: "ftp://x", Credentials: acct.JSON("https://oauth2.googleapis.com/token")},
		"empty secret": {},
	} {
		if _, err := fcm.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
