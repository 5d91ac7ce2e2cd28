package worker

import (
	"sync"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sharding"
)

// outcome is how one owned record of a unit ended.
type outcome uint8

const (
	pending outcome = iota
	delivered
	failed
	unreachable
	invalid
	expired
)

// slot is one owned record in flight, in stream order.
type slot struct {
	at   sharding.Cursor // the record's own position: resuming here re-reads it
	out  outcome
	line int64  // for invalid samples
	why  string // reason, for invalid samples
}

// progress tracks the owned records of one unit between reading and
// finishing. Records finish out of order (sends take different times), but
// the checkpointed cursor only moves past a contiguous prefix of finished
// records and the counters only count that prefix, so a successor resuming
// at the cursor neither skips an unfinished record nor counts one twice.
//
// It is a ring of slots with room for limit records: the reader waits when
// it is full, which bounds both memory and the re-send window after a crash.
type progress struct {
	mu       sync.Mutex
	slots    []slot
	head     int // oldest unfinished-or-unpopped slot
	n        int // slots in use
	next     sharding.Cursor
	counters coordinator.Counters
	samples  []coordinator.InvalidSample
	moved    uint64        // records popped since the last snapshot, for the checkpoint policy
	every    uint64        // moved at which due is signalled; 0: never
	room     chan struct{} // signalled when a slot frees up
	drained  chan struct{} // signalled when the last slot in use finishes
	due      chan struct{} // signalled when moved reaches every: a checkpoint is due
}

// maxInvalidSamples is how many invalid lines a unit remembers for the status.
const maxInvalidSamples = 5

func newProgress(start coordinator.Progress, limit int, every uint64) *progress {
	p := &progress{
		slots:    make([]slot, limit),
		every:    every,
		due:      make(chan struct{}, 1),
		next:     start.Cursor,
		counters: start.Counters,
		samples:  append([]coordinator.InvalidSample(nil), start.InvalidSamples...),
		room:     make(chan struct{}, 1),
		drained:  make(chan struct{}, 1),
	}
	return p
}

// add records an owned record read at cursor at, whose successor position
// is next. It returns the slot index, or ok=false when the ring is full (the
// caller waits on room and tries again). An outcome other than pending marks
// it finished at once (unreachable, invalid, expired need no send).
func (p *progress) add(at, next sharding.Cursor, out outcome, line int64, why string) (idx int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == len(p.slots) {
		return 0, false
	}
	idx = (p.head + p.n) % len(p.slots)
	p.slots[idx] = slot{at: at, out: out, line: line, why: why}
	p.n++
	p.next = next
	p.popLocked()
	return idx, true
}

// skip moves the resume position past records the unit does not own.
// They need no slot: if nothing is in flight the cursor moves past them.
func (p *progress) skip(next sharding.Cursor) {
	p.mu.Lock()
	p.next = next
	p.mu.Unlock()
}

// finish marks slot idx done with out.
func (p *progress) finish(idx int, out outcome) {
	p.mu.Lock()
	p.slots[idx].out = out
	p.popLocked()
	p.mu.Unlock()
}

func (p *progress) popLocked() {
	freed := false
	for p.n > 0 {
		s := &p.slots[p.head]
		if s.out == pending {
			break
		}
		p.count(s)
		*s = slot{}
		p.head = (p.head + 1) % len(p.slots)
		p.n--
		if p.moved++; p.moved == p.every {
			signal(p.due)
		}
		freed = true
	}
	if freed {
		signal(p.room)
		if p.n == 0 {
			signal(p.drained)
		}
	}
}

func (p *progress) count(s *slot) {
	c := &p.counters
	c.Scanned++
	switch s.out {
	case delivered:
		c.Delivered++
	case failed:
		c.Failed++
	case unreachable:
		c.Unreachable++
	case invalid:
		c.Invalid++
		if len(p.samples) < maxInvalidSamples {
			p.samples = append(p.samples, coordinator.InvalidSample{Line: s.line, Reason: s.why})
		}
	case expired:
		c.Expired++
	}
}

// snapshot is the progress a checkpoint may record: the cursor of the
// oldest unfinished record (or the reader's position when none is in
// flight) and the counters of everything before it. moved is how many
// records finished since the previous snapshot.
func (p *progress) snapshot() (pr coordinator.Progress, moved uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr.Cursor = p.cursorLocked()
	pr.Counters = p.counters
	pr.InvalidSamples = append([]coordinator.InvalidSample(nil), p.samples...)
	moved, p.moved = p.moved, 0
	return pr, moved
}

// resumeAt is where reading must start again to miss nothing and repeat
// nothing finished: the oldest unfinished record, or the read position.
func (p *progress) resumeAt() sharding.Cursor {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cursorLocked()
}

func (p *progress) cursorLocked() sharding.Cursor {
	if p.n > 0 {
		return p.slots[p.head].at
	}
	return p.next
}

// finishedSince is how many records finished since the last snapshot.
func (p *progress) finishedSince() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.moved
}

// inFlight reports how many owned records are read but not yet finished.
func (p *progress) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// signal wakes a waiter on a one-slot channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
