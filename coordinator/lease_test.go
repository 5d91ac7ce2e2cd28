package coordinator

import (
	"context"
	"testing"
	"time"
)

// The fencing deadline must be compared on the monotonic clock: rebuilt
// from wall-clock nanoseconds, a step of the wall clock backwards would
// extend it past the server's expiry. A time.Time that carries a monotonic
// reading differs from itself stripped of it (Round(0)).
func TestLeaseDeadlineIsMonotonic(t *testing.T) {
	c := newCluster(t)
	cli := c.admin
	l, err := grantLease(context.Background(), cli, 2*time.Second, 200*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.release(time.Second)
	d := l.Deadline()
	if d == d.Round(0) {
		t.Fatalf("deadline %v has no monotonic clock reading", d)
	}
	if left := time.Until(d); left <= 0 || left > 2*time.Second {
		t.Fatalf("deadline %v from now, want within the 2 s TTL", left)
	}
	// A renewal moves it forward, still on the monotonic clock.
	eventually(t, 3*time.Second, "a renewal to move the deadline", func() bool {
		return l.Deadline().After(d)
	})
	if d2 := l.Deadline(); d2 == d2.Round(0) {
		t.Fatalf("renewed deadline %v has no monotonic clock reading", d2)
	}
}
