package delivery

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests of answers that are not HTTP statuses: timeouts, dead ports,
// rejected certificates, and the caller's context ending.

func TestSendRetriesTimeouts(t *testing.T) {
	e := newEndpoint(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; the client's timeout ends it
	})
	cfg := testConfig
	cfg.Timeout, cfg.MaxAttempts = 50*time.Millisecond, 3
	s, waits := newTestSender(t, cfg)

	r := s.Send(context.Background(), e.url(), testKey, []byte(testBody))

	if r.Outcome != Failed || r.Attempts != 3 || r.Status != 0 {
		t.Fatalf("got %+v, want failed after 3 attempts with no status", r)
	}
	if !strings.Contains(r.Reason, "gave up after 3 attempts: timeout") {
		t.Errorf("reason %q does not name the timeout", r.Reason)
	}
	if n := len(waits.list()); n != 2 {
		t.Errorf("%d waits, want 2", n)
	}
}

func TestSendRetriesRefusedConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/push"
	l.Close()
	s, waits := newTestSender(t, testConfig)

	r := s.Send(context.Background(), dead, testKey, []byte(testBody))

	if r.Outcome != Failed || r.Attempts != testConfig.MaxAttempts || r.Status != 0 {
		t.Fatalf("got %+v, want failed after %d attempts", r, testConfig.MaxAttempts)
	}
	if !strings.Contains(r.Reason, "connection refused") || strings.Contains(r.Reason, "/push") {
		t.Errorf("reason %q should name the refusal and not the URL", r.Reason)
	}
	if n := len(waits.list()); n != testConfig.MaxAttempts-1 {
		t.Errorf("%d waits, want %d", n, testConfig.MaxAttempts-1)
	}
}

func TestSendFailsUntrustedCertificateAtOnce(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	s, _ := newTestSender(t, testConfig)

	r := s.Send(context.Background(), srv.URL, testKey, []byte(testBody))

	if r.Outcome != Failed || r.Attempts != 1 || !strings.Contains(r.Reason, "certificate") {
		t.Errorf("got %+v, want failed at once naming the certificate", r)
	}
}

func TestSendAborts(t *testing.T) {
	tests := []struct {
		name string
		// answer is the endpoint; arrived is closed when its first request
		// arrives.
		answer func(arrived func()) func(int, http.ResponseWriter, *http.Request)
		// ctx gives the context to send with; cancel is called once the
		// first request has arrived.
		ctx          func() (ctx context.Context, cancel func())
		wantAttempts int
		wantReason   string
	}{
		{
			name:   "context already ended",
			answer: func(func()) func(int, http.ResponseWriter, *http.Request) { return status(200) },
			ctx: func() (context.Context, func()) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantAttempts: 0, wantReason: "not sent: context canceled",
		},
		{
			name: "context ends during the request",
			answer: func(arrived func()) func(int, http.ResponseWriter, *http.Request) {
				return func(_ int, _ http.ResponseWriter, r *http.Request) {
					arrived()
					<-r.Context().Done()
				}
			},
			ctx:          func() (context.Context, func()) { return context.WithCancel(context.Background()) },
			wantAttempts: 1, wantReason: "context ended: context canceled",
		},
		{
			name: "context ends while waiting for Retry-After",
			answer: func(arrived func()) func(int, http.ResponseWriter, *http.Request) {
				return func(_ int, w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Retry-After", "30")
					w.WriteHeader(http.StatusServiceUnavailable)
					arrived()
				}
			},
			ctx:          func() (context.Context, func()) { return context.WithCancel(context.Background()) },
			wantAttempts: 1, wantReason: "context ended while waiting to retry: context canceled",
		},
		{
			name: "Retry-After beyond the context deadline",
			answer: func(func()) func(int, http.ResponseWriter, *http.Request) {
				return script(reply(429, "", "Retry-After", "30"))
			},
			ctx: func() (context.Context, func()) {
				return context.WithTimeout(context.Background(), 10*time.Second)
			},
			wantAttempts: 1, wantReason: "next attempt due in 30s, after the context deadline",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := make(chan struct{})
			var once sync.Once
			e := newEndpoint(t, tt.answer(func() { once.Do(func() { close(arrived) }) }))
			// The real clock and real sleeps: the point is that Send does
			// not sit out a 30 s wait.
			s, err := New(testConfig, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := tt.ctx()
			defer cancel()
			var canceller sync.WaitGroup
			canceller.Go(func() {
				select {
				case <-arrived:
					time.Sleep(20 * time.Millisecond) // let Send reach its wait
					cancel()
				case <-ctx.Done():
				}
			})

			start := time.Now()
			r := s.Send(ctx, e.url(), testKey, []byte(testBody))

			if r.Outcome != Aborted || r.Attempts != tt.wantAttempts || !strings.Contains(r.Reason, tt.wantReason) {
				t.Errorf("got %+v, want aborted after %d attempts because %q", r, tt.wantAttempts, tt.wantReason)
			}
			if len(e.requests()) != tt.wantAttempts {
				t.Errorf("endpoint saw %d requests, want %d", len(e.requests()), tt.wantAttempts)
			}
			// Far below the 30 s the endpoint asked for: this checks that
			// the wait was cut short, not how fast Send is.
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Send took %v to abort", took)
			}
			cancel()
			canceller.Wait()
		})
	}
}
