package worker

import (
	"context"
	"sync"
)

// sendSlots bounds the sends in flight on one worker across all its
// broadcasts (Config.MaxInFlight): without a bound across them, a hundred
// broadcasts of max_in_flight 1,000 at once would want a hundred thousand
// senders and connections.
//
// A broadcast's reader takes a send slot before it hands a record to the
// worker's senders, which give it back once the record is finished
// (sent, or its dead letter queued); so the slots bound the worker's
// sender goroutines and the connections they use. Each broadcast holds at
// most its own max_in_flight. Slots are shared fairly: a slot that comes free goes to the broadcast, among
// those waiting for one, that holds the fewest (the longest-waiting on a
// tie), so broadcasts that want more than an equal share converge on one,
// while one alone, or next to broadcasts that want less, takes what the
// others leave, up to its own max_in_flight. A free slot never waits while
// a broadcast below its max_in_flight does.
type sendSlots struct {
	mu      sync.Mutex
	free    int
	waiting int // senders waiting, over every share
	shares  map[*slotShare]struct{}
	turn    uint64 // counts grants, to order shares that hold alike
}

// slotShare is one broadcast's use of the worker's slots. Its reader
// calls acquire and its senders release; the broadcast run joins on start
// and leaves once none of its records is with a sender any more.
type slotShare struct {
	s       *sendSlots
	max     int             // the most it may hold; 0: no bound of its own
	held    int             // guarded by s.mu
	waiters []chan struct{} // guarded by s.mu; FIFO, each buffered 1
	granted uint64          // guarded by s.mu; turn of the last grant
}

func newSendSlots(n int) *sendSlots {
	return &sendSlots{free: n, shares: make(map[*slotShare]struct{})}
}

// join adds a broadcast to those sharing the slots; it holds at most max
// at once (0: as many as the worker has).
func (s *sendSlots) join(max int) *slotShare {
	sh := &slotShare{s: s, max: max}
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
	if s.free > 0 && sh.below() {
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

// below reports whether the share holds less than its own bound. The
// caller holds s.mu.
func (sh *slotShare) below() bool { return sh.max <= 0 || sh.held < sh.max }

// release gives a slot back, to the waiting broadcast that holds fewest
// (among those below their own bound).
func (sh *slotShare) release() {
	s := sh.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sh.held--
	var next *slotShare
	if s.waiting > 0 {
		for c := range s.shares {
			if len(c.waiters) == 0 || !c.below() {
				continue
			}
			if next == nil || c.held < next.held || c.held == next.held && c.granted < next.granted {
				next = c
			}
		}
	}
	if next == nil {
		s.free++
		return
	}
	s.turn++
	next.granted = s.turn
	next.held++
	ch := next.waiters[0]
	next.waiters = next.waiters[1:]
	s.waiting--
	ch <- struct{}{}
}
