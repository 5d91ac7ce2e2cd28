package apns_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/push"
	"github.com/herald-dev/herald/push/apns"
	"github.com/herald-dev/herald/push/apns/apnstest"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

// benchInFlight is the sends in flight, a broadcast's default
// max_in_flight.
const benchInFlight = 64

// BenchmarkAPNsVsWebhook delivers b.N notifications to the fake APNs and
// b.N deliveries to a loopback webhook, from benchInFlight goroutines
// each, in alternating rounds so other load hits both alike, and reports
// both rates, their ratio, and the connections APNs needed.
//
// APNs is HTTP/2 over TLS with the provider token on every request, and
// the fake verifies each new token's ES256 signature and then, as Apple
// does, trusts it until it is too old, and checks every request's headers
// and payload. The webhook is the default path to an http://
// endpoint: HTTP/1.1 keep-alive connections, one per send in flight.
func BenchmarkAPNsVsWebhook(b *testing.B) {
	key, err := apnstest.NewKey("KEY1234567", "TEAM123456")
	if err != nil {
		b.Fatal(err)
	}
	srv := apnstest.NewServer(key, "com.example.app")
	defer srv.Close()
	srv.KeepAccepted(false)
	as, err := apns.New(apns.Config{URL: srv.URL, Key: key.P8, KeyID: key.ID, TeamID: key.TeamID, Topic: "com.example.app", Client: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	defer as.Close()

	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()
	ws, err := delivery.New(delivery.Config{MaxInFlight: benchInFlight}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()

	msg := func(i int) *push.Message {
		sub := fmt.Sprintf("s%d", i)
		return &push.Message{BroadcastID: "bench", SubscriberID: sub, Key: templates.Key("bench", sub), Locale: "en",
			Fields: []templates.Field{{Name: "body", Value: "Your code: 12345678"}, {Name: "title", Value: "Hi Zoë"}},
			Token:  fmt.Sprintf("%064x", i+1)}
	}
	apnsSend := func(i int) error {
		if r := as.Push(context.Background(), msg(i)); r.Outcome != delivery.Delivered {
			return fmt.Errorf("apns: %+v", r)
		}
		return nil
	}
	hookSend := func(i int) error {
		m := msg(i)
		body := templates.AppendBody(make([]byte, 0, 256), templates.Delivery{BroadcastID: m.BroadcastID, SubscriberID: m.SubscriberID,
			Key: m.Key, Locale: m.Locale, Message: &templates.Message{Locale: m.Locale, Fields: m.Fields}})
		if r := ws.Send(context.Background(), hook.URL, m.Key, body); r.Outcome != delivery.Delivered {
			return fmt.Errorf("webhook: %+v", r)
		}
		return nil
	}
	// Warm both: dialing and handshakes are not what is measured.
	spread(b, 4*benchInFlight, apnsSend)
	spread(b, 4*benchInFlight, hookSend)
	// A cold client's first sends race to dial before any connection has
	// said it speaks HTTP/2; net/http closes the spare ones once it knows.
	time.Sleep(50 * time.Millisecond)
	warm := srv.Stats()

	const rounds = 16
	per := max(b.N/rounds, 1)
	var ta, th time.Duration
	b.ResetTimer()
	for i := range rounds {
		if i%2 == 0 {
			ta += spread(b, per, apnsSend)
			th += spread(b, per, hookSend)
		} else {
			th += spread(b, per, hookSend)
			ta += spread(b, per, apnsSend)
		}
	}
	b.StopTimer()
	n := float64(per * rounds)
	ra, rh := n/ta.Seconds(), n/th.Seconds()
	b.ReportMetric(ra, "apns_msgs/s")
	b.ReportMetric(rh, "webhook_msgs/s")
	b.ReportMetric(ra/rh, "apns/webhook")
	b.ReportMetric(float64(warm.Open), "apns_conns_open")
	b.ReportMetric(float64(srv.Stats().Conns-warm.Conns), "apns_conns_during")
	if st := srv.Stats(); st.Protocols["HTTP/2.0"] != st.Accepted {
		b.Fatalf("APNs requests not all HTTP/2: %+v", st)
	}
}

// spread sends n messages from benchInFlight goroutines and returns how
// long that took.
func spread(b *testing.B, n int, send func(i int) error) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchInFlight)
	start := time.Now()
	for range benchInFlight {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if err := send(int(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return took
}
