package coordinator

import (
	"maps"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// EndpointStatus is what the fleet reports of a broadcast's endpoint: the
// workers whose sends are paused because the endpoint is failing (their
// delivery circuit breaker is open), and since when.
type EndpointStatus struct {
	// Waiting is true while at least one worker waits on the endpoint.
	Waiting bool `json:"waiting"`
	// Since is when the first of those workers started waiting.
	Since time.Time `json:"since,omitzero"`
	// Workers are the members waiting, by id.
	Workers []string `json:"workers,omitempty"`
}

// NoteEndpoint records whether this member's sends of broadcast id wait on
// its endpoint: since is when they started to, the zero time when they do
// not (any more). It is safe from any goroutine and cheap to call often:
// Run publishes a change in the member record at its next reconcile, so
// `herald status` shows the broadcast as waiting on its endpoint.
func (c *Coordinator) NoteEndpoint(id string, since time.Time) {
	c.mu.Lock()
	old, had := c.waiting[id]
	switch {
	case since.IsZero() && had:
		delete(c.waiting, id)
	case !since.IsZero() && (!had || !old.Equal(since)):
		c.waiting[id] = since.UTC().Truncate(time.Second)
	default:
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// waitingNow copies what NoteEndpoint last recorded.
func (c *Coordinator) waitingNow() map[string]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.waiting)
}

// publishEndpoints rewrites this member's record when the broadcasts it
// waits on changed since the last write. Run's goroutine only. A failed
// write is tried again at the next reconcile.
func (c *Coordinator) publishEndpoints(l *lease) {
	now := c.waitingNow()
	if maps.EqualFunc(now, c.published, time.Time.Equal) {
		return
	}
	rec := c.memberRecord(false)
	rec.Waiting = now
	val, err := encode(rec)
	if err != nil {
		c.log.Error("encode member record", "err", err)
		return
	}
	key := c.keys.member(c.cfg.MemberID)
	ctx, cancel := c.opCtx(l)
	defer cancel()
	resp, err := c.txn(ctx, "endpoint", []clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(key), "=", l.id)},
		clientv3.OpPut(key, val, clientv3.WithLease(l.id)))
	if err != nil || !resp.Succeeded {
		c.log.Debug("publish endpoint state", "err", err)
		return
	}
	c.published = now
}

// endpointStatus reads, from the member records in kvs, which members wait
// on broadcast id's endpoint.
func endpointStatus(members []memberRecord, id string) *EndpointStatus {
	var es *EndpointStatus
	for _, m := range members {
		since, ok := m.Waiting[id]
		if !ok {
			continue
		}
		if es == nil {
			es = &EndpointStatus{Waiting: true, Since: since}
		}
		if since.Before(es.Since) {
			es.Since = since
		}
		es.Workers = append(es.Workers, m.ID)
	}
	return es
}
