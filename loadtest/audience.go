package main

import (
	"encoding/json"
	"fmt"
	"iter"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker"
	"github.com/herald-dev/herald/worker/audience"
)

// specJSON is every run's broadcast, Herald's and the baselines' alike:
// synthetic subscribers, the reachable ones only, greeted in their own
// language, so that all senders render and post the same messages.
func specJSON(id string, subscribers, seed int64, endpoint string, maxInFlight int) []byte {
	spec := map[string]any{
		"id":             id,
		"audience":       map[string]any{"source": "synthetic", "count": subscribers, "seed": seed},
		"only_reachable": true,
		"template": map[string]any{
			"default_locale": "en",
			"locales": map[string]any{
				"en": map[string]string{"title": "Hi {{.name}}", "body": "Your code: {{.code}} ({{.plan}} plan)"},
				"zh": map[string]string{"title": "{{.name}}，你好", "body": "优惠码：{{.code}}"},
				"es": map[string]string{"title": "Hola {{.name}}", "body": "Tu código: {{.code}}"},
				"fr": map[string]string{"title": "Bonjour {{.name}}", "body": "Votre code : {{.code}}"},
			},
		},
		"endpoint": map[string]any{"url": endpoint, "max_in_flight": maxInFlight, "timeout_ms": 5000, "max_attempts": 6},
	}
	raw, _ := json.Marshal(spec) // maps of strings and numbers always marshal
	return raw
}

// countEligible counts, without asking any worker, the subscribers a
// broadcast must reach: the valid and reachable ones. "lost" is measured
// against this count, so it does not trust Herald's own.
func countEligible(subscribers, seed int64) (int64, error) {
	s, err := audience.Open(audience.Spec{Source: audience.SourceSynthetic, Count: subscribers, Seed: seed},
		sharding.Cursor{}, audience.Limits{})
	if err != nil {
		return 0, fmt.Errorf("loadtest: count eligible: %w", err)
	}
	defer s.Close()
	var n int64
	for s.Next() {
		if s.Record().Invalid == "" && s.Record().Reachable() {
			n++
		}
	}
	return n, s.Err()
}

// delivery is one rendered message of a baseline.
type delivery struct {
	key  string
	body []byte
}

// renderAll yields the deliveries of broadcast id as a worker would build
// them: every eligible subscriber, rendered with the broadcast's template,
// encoded as SPEC section 4's body with its idempotency key. Records that
// fail to render are skipped and counted in *failed.
func renderAll(id string, subscribers, seed int64, failed *int64) (iter.Seq[delivery], func() error, error) {
	_, set, err := worker.ParseSpec(specJSON(id, subscribers, seed, "http://127.0.0.1:1/", 1), worker.SpecLimits{})
	if err != nil {
		return nil, nil, fmt.Errorf("loadtest: baseline spec: %w", err)
	}
	s, err := audience.Open(audience.Spec{Source: audience.SourceSynthetic, Count: subscribers, Seed: seed},
		sharding.Cursor{}, audience.Limits{})
	if err != nil {
		return nil, nil, fmt.Errorf("loadtest: baseline audience: %w", err)
	}
	var msg templates.Message
	seq := func(yield func(delivery) bool) {
		defer s.Close()
		for s.Next() {
			r := s.Record()
			if r.Invalid != "" {
				continue
			}
			data := make(templates.Record, 8)
			if err := r.Decode(data); err != nil || !audience.Reachable(data) {
				continue
			}
			sid := string(r.ID)
			if err := set.Render(data, audience.Locale(data), &msg); err != nil {
				*failed++
				continue
			}
			key := templates.Key(id, sid)
			body := templates.AppendBody(make([]byte, 0, 256), templates.Delivery{
				BroadcastID: id, SubscriberID: sid, Key: key, Locale: msg.Locale, Message: &msg,
			})
			if !yield(delivery{key: key, body: body}) {
				return
			}
		}
	}
	return seq, s.Err, nil
}
