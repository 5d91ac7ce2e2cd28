package main

import (
	"fmt"
	"iter"

	"github.com/herald-dev/herald/internal/demo"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/audience"
)

// delivery is one rendered message of a baseline.
type delivery struct {
	key  string
	body []byte
}

// renderAll yields the deliveries of broadcast id as a worker would build
// them: every eligible subscriber, rendered with the broadcast's template,
// encoded as the JSON body an endpoint receives, with its idempotency key
// (docs/CONTRACTS.md, "A delivery"). Records that fail to render are
// skipped and counted in *failed.
func renderAll(id string, subscribers, seed int64, failed *int64) (iter.Seq[delivery], func() error, error) {
	// The same broadcast as Herald's runs, so every sender posts the same
	// messages.
	_, set, err := spec.Parse(demo.SpecJSON(id, subscribers, seed, "http://127.0.0.1:1/", 1), spec.Limits{})
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
