package worker

import (
	"context"
	"sync"
)

// sendSlots bounds the sends in flight on one worker across all its
// broadcasts (Config.MaxInFlight): each broadcast's pool has its endpoint's
// max_in_flight senders and its own connection pool, so without a bound
// across them a hundred broadcasts at once could open a hundred thousand
// connections.
//
// A sender takes a slot just before Send and gives it back after. Slots
// are shared fairly: a slot that comes free goes to the broadcast, among
// those waiting for one, that holds the fewest (the longest-waiting on a
// tie), so broadcasts that want more than an equal share converge on one,
// while one alone, or next to broadcasts that want less, takes what the
// others leave, up to its own max_in_flight. A free slot never waits while
// a sender does.
type sendSlots struct {
	mu      sync.Mutex
	free    int
	waiting int // senders waiting, over every share
	shares  map[*slotShare]struct{}
	turn    uint64 // counts grants, to order shares that hold alike
}

// slotShare is one broadcast's use of the worker's slots. Its senders
// call acquire and release; the broadcast run joins on start and leaves
// once its pool has stopped.
type slotShare struct {
	s       *sendSlots
	held    int             // guarded by s.mu
	waiters []chan struct{} // guarded by s.mu; FIFO, each buffered 1
	granted uint64          // guarded by s.mu; turn of the last grant
}

func newSendSlots(n int) *sendSlots {
	return &sendSlots{free: n, shares: make(map[*slotShare]struct{})}
}

// join adds a broadcast to those sharing the slots.
func (s *sendSlots) join() *slotShare {
	sh := &slotShare{s: s}
	s.mu.Lock()
	s.shares[sh] = struct{}{}
	s.mu.Unlock()
	return sh
}

// leave removes a share whose senders have all returned.
func (sh *slotShare) leave() {
	sh.s.mu.Lock()
	delete(sh.s.shares, sh)
	sh.s.mu.Unlock()
}

// acquire takes a slot, waiting for one until ctx ends.
func (sh *slotShare) acquire(ctx context.Context) error {
	s := sh.s
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		sh.held++
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{}, 1)
	sh.waiters = append(sh.waiters, ch)
	s.waiting++
	s.mu.Unlock()
	select {
	case <-ch:
		return nil // the giver counted it as held
	case <-ctx.Done():
	}
	s.mu.Lock()
	for i, w := range sh.waiters {
		if w == ch {
			sh.waiters = append(sh.waiters[:i], sh.waiters[i+1:]...)
			s.waiting--
			s.mu.Unlock()
			return ctx.Err()
		}
	}
	// Granted while ctx ended: pass the slot on.
	s.mu.Unlock()
	sh.release()
	return ctx.Err()
}

// release gives a slot back, to the waiting broadcast that holds fewest.
func (sh *slotShare) release() {
	s := sh.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sh.held--
	if s.waiting == 0 {
		s.free++
		return
	}
	var next *slotShare
	for c := range s.shares {
		if len(c.waiters) == 0 {
			continue
		}
		if next == nil || c.held < next.held || c.held == next.held && c.granted < next.granted {
			next = c
		}
	}
	s.turn++
	next.granted = s.turn
	next.held++
	ch := next.waiters[0]
	next.waiters = next.waiters[1:]
	s.waiting--
	ch <- struct{}{}
}
