package sleep

import (
	"context"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if !For(ctx, time.Millisecond) {
		t.Fatal("a live context's sleep reported cut short")
	}
	if !For(ctx, 0) || !For(ctx, -time.Second) {
		t.Fatal("no wait on a live context reported cut short")
	}
	cancel()
	start := time.Now()
	if For(ctx, time.Hour) {
		t.Fatal("an ended context's sleep reported complete")
	}
	if time.Since(start) > time.Minute {
		t.Fatal("waited on an ended context")
	}
	if For(ctx, 0) {
		t.Fatal("no wait on an ended context reported live")
	}
}
