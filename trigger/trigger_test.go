package trigger

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/spec"
)

// TestProduceChecksTheAllowlistFirst: with a list, a trigger whose
// endpoint it refuses is a *spec.Error before any broker is contacted (the
// broker here does not exist).
func TestProduceChecksTheAllowlistFirst(t *testing.T) {
	empty, _ := allowlist.Parse(nil)
	only, _ := allowlist.Parse([]string{"https://push.example.com"})
	raw := []byte(`{"id":"x","audience":{"source":"synthetic","count":1},"template":{"default_locale":"en","locales":{"en":{"t":"hi"}}},"endpoint":{"url":"http://10.0.0.1/admin"}}`)
	tests := []struct {
		name string
		list *allowlist.List
		want string
	}{
		{"empty", empty, `spec "x": endpoint.url: not allowed: http://10.0.0.1: the workers allow no endpoint at all (configure --allow-endpoint)`},
		{"another host", only, `spec "x": endpoint.url: not allowed: http://10.0.0.1 is not in the workers' endpoint allowlist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Produce(context.Background(), Config{Brokers: []string{"127.0.0.1:1"}, Allow: tt.list}, raw)
			var se *spec.Error
			if !errors.As(err, &se) || se.Field != "endpoint.url" || !strings.Contains(se.Msg, "not allowed") {
				t.Fatalf("Produce = %v, want a refusal of endpoint.url", err)
			}
			if err.Error() != tt.want {
				t.Fatalf("Produce error %q, want %q", err, tt.want)
			}
		})
	}
}

// TestProduceWebPushHasNoURLToCheck: a webpush spec has no endpoint URL
// (each subscription names its push service), so the local allowlist
// check passes it on to the broker, which here does not exist.
func TestProduceWebPushHasNoURLToCheck(t *testing.T) {
	only, _ := allowlist.Parse([]string{"https://push.example.com"})
	raw := []byte(`{"id":"x","audience":{"source":"synthetic","count":1},"template":{"default_locale":"en","locales":{"en":{"t":"hi"}}},"endpoint":{"kind":"webpush","webpush":{"vapid_secret":"v","subject":"mailto:a@b.c"}}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := Produce(ctx, Config{Brokers: []string{"127.0.0.1:1"}, Allow: only}, raw)
	var se *spec.Error
	if err == nil || errors.As(err, &se) {
		t.Fatalf("Produce = %v, want a broker error, not a refusal", err)
	}
}
