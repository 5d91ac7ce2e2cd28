// Package sleep waits for a while unless a context ends first: the one
// cancellable sleep every package of Herald's uses.
package sleep

import (
	"context"
	"time"
)

// For waits d, or until ctx ends, and reports whether it waited all of d.
// A d of zero or less does not wait: it reports whether ctx is still live.
func For(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
