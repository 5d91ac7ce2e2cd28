package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/herald-dev/herald/sharding"
)

// A released claim gives its slot back as last checkpointed: the claim
// ends, the member (still the one the assignment names) claims the slot
// again and resumes from the last checkpoint, and the broadcast completes
// with nothing lost. Only what the first claim sent after its last
// checkpoint is sent twice.
func TestReleasedSlotResumesFromLastCheckpoint(t *testing.T) {
	c := newCluster(t)
	const n, every = 8400, 100 // about 1050 records a slot: the last checkpoint falls before the end
	s, l := newStream(n), newLedger(n)
	var released atomic.Bool
	m := c.start("w0", memberOpts{}, driverConfig{stream: s, ledger: l, every: every,
		release: func(*Claim) bool { return released.CompareAndSwap(false, true) }})
	eventually(t, 10*time.Second, "ready", m.coord.Ready)
	c.register("rel")
	c.waitState("rel", StateDone, 20*time.Second)

	// One member holds every slot; the first to reach the end of the
	// stream is released instead of finished, and claimed again.
	claims := m.driver.received()
	if len(claims) != sharding.SlotsPerMember+1 {
		t.Fatalf("%d claims, want %d and the released one's successor", len(claims), sharding.SlotsPerMember)
	}
	var first, second *Claim
	m.driver.mu.Lock()
	for _, cl := range claims {
		if m.driver.ends[cl] == "release" {
			first = cl
		}
	}
	m.driver.mu.Unlock()
	if first == nil {
		t.Fatal("no claim ended with a release")
	}
	for _, cl := range claims {
		if cl.Slot() == first.Slot() && cl != first {
			second = cl
		}
	}
	if cause := context.Cause(first.Context()); !errors.Is(cause, errClaimEnded) {
		t.Errorf("released claim's context ended with %v, want %v", cause, errClaimEnded)
	}
	if second == nil || second.token <= first.token {
		t.Fatalf("slot %d not claimed again after the release (token %d): %v", first.Slot(), first.token, second)
	}
	first.mu.Lock()
	checkpoint, err := first.rec.cursor()
	first.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := second.Progress().Cursor; got != checkpoint || got.Seq == 0 || got.Seq == n {
		t.Errorf("second claim resumes at %v, want the first one's last checkpoint %v (inside the stream)", got, checkpoint)
	}
	if err := first.Release(context.Background()); !errors.Is(err, ErrNotOwner) {
		t.Errorf("second release: %v, want ErrNotOwner", err)
	}
	lost, dup := l.check()
	if len(lost) > 0 {
		t.Errorf("lost %d records", len(lost))
	}
	if len(dup) == 0 || len(dup) > every {
		t.Errorf("%d records sent twice, want the few since the last checkpoint (at most %d)", len(dup), every)
	}
	t.Logf("released at the end of the stream; resumed at %v; %d sent twice", checkpoint, len(dup))
}

func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{ErrNotOwner, false},
		{fmt.Errorf("coordinator: finish b/u: %w", ErrNotOwner), false},
		{ErrCursorBackwards, false},
		{errTest, false},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{fmt.Errorf("coordinator: finish b/u: %w", rpctypes.ErrLeaderChanged), true},
		{rpctypes.ErrNoLeader, true},
		{rpctypes.ErrTimeout, true},
		{rpctypes.ErrNoSpace, true},
		{rpctypes.ErrRequestTooLarge, false},
		{rpctypes.ErrPermissionDenied, false},
		{status.Error(codes.Unavailable, "connection refused"), true},
		{fmt.Errorf("wrapped: %w", status.Error(codes.Unavailable, "connection refused")), true},
		{status.Error(codes.Canceled, "grpc: the client connection is closing"), false},
	} {
		if got := IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
