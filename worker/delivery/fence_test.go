package delivery

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// TestFenceStopsTheNextAttempt: the first attempt goes out, then the
// worker's lease deadline passes during the backoff; the retry must not
// reach the endpoint, and the delivery is Aborted, not Failed, so the next
// owner sends it.
func TestFenceStopsTheNextAttempt(t *testing.T) {
	e := newEndpoint(t, status(500))
	var asked atomic.Int32
	cfg := testConfig
	cfg.Fence = func() error {
		if asked.Add(1) > 1 {
			return errors.New("lease deadline passed")
		}
		return nil
	}
	s, _ := newTestSender(t, cfg)

	r := s.Send(context.Background(), e.url(), testKey, []byte(testBody))

	if r.Outcome != Aborted || r.Attempts != 1 {
		t.Fatalf("got %+v, want Aborted after 1 attempt", r)
	}
	if !strings.Contains(r.Reason, "lease deadline passed") {
		t.Errorf("reason %q does not say why", r.Reason)
	}
	if n := len(e.requests()); n != 1 {
		t.Fatalf("endpoint saw %d requests, want 1: the fenced retry went out", n)
	}
}

func TestFenceClosedSendsNothing(t *testing.T) {
	e := newEndpoint(t, status(200))
	cfg := testConfig
	cfg.Fence = func() error { return errors.New("no lease") }
	s, _ := newTestSender(t, cfg)

	r := s.Send(context.Background(), e.url(), testKey, []byte(testBody))

	if r.Outcome != Aborted || r.Attempts != 0 || len(e.requests()) != 0 {
		t.Fatalf("got %+v and %d requests, want Aborted with nothing sent", r, len(e.requests()))
	}
}
