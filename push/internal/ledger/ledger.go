// Package ledger keeps what a fake push provider saw, for the fakes in
// apnstest, fcmtest and webpushtest: the tokens a test declared dead and
// the reply they get, the messages accepted (or, for a benchmark's
// millions, only their count), how often each idempotency key was
// accepted, and the refusals by reason.
package ledger

import (
	"maps"
	"sync"
)

// Ledger records a fake's deliveries of messages M, refused with replies
// R. The zero value is ready; it is safe for concurrent use.
type Ledger[M, R any] struct {
	mu       sync.Mutex
	dead     map[string]R
	accepted []M
	discard  bool
	count    int            // accepted and not kept
	keys     map[string]int // idempotency key to times accepted
	refused  map[string]int
}

// Kill makes every later message to token fail with r.
func (l *Ledger[M, R]) Kill(token string, r R) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead == nil {
		l.dead = map[string]R{}
	}
	l.dead[token] = r
}

// Dead returns the reply a killed token gets, and whether it was killed.
func (l *Ledger[M, R]) Dead(token string) (R, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.dead[token]
	return r, ok
}

// KeepAccepted, when false, counts accepted messages without keeping
// them.
func (l *Ledger[M, R]) KeepAccepted(keep bool) {
	l.mu.Lock()
	l.discard = !keep
	l.mu.Unlock()
}

// Accept records m, accepted under the idempotency key.
func (l *Ledger[M, R]) Accept(m M, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.discard {
		l.count++
	} else {
		l.accepted = append(l.accepted, m)
	}
	if l.keys == nil {
		l.keys = map[string]int{}
	}
	l.keys[key]++
}

// Refuse counts a message refused for reason.
func (l *Ledger[M, R]) Refuse(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refused == nil {
		l.refused = map[string]int{}
	}
	l.refused[reason]++
}

// Accepted returns the messages accepted and kept so far, in order.
func (l *Ledger[M, R]) Accepted() []M {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]M(nil), l.accepted...)
}

// Counts returns how many messages were accepted, how many distinct keys
// among them, and the refusals by reason (a copy).
func (l *Ledger[M, R]) Counts() (accepted, distinct int, refused map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	refused = maps.Clone(l.refused)
	if refused == nil {
		refused = map[string]int{}
	}
	return len(l.accepted) + l.count, len(l.keys), refused
}
