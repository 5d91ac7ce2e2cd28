package coordinator

import "sync"

// claimQueue hands claims to the worker in the order they were taken. Run
// pushes without ever blocking; one goroutine, owned by Run, delivers them
// on the unbuffered Claims channel as fast as the worker reads.
type claimQueue struct {
	mu     sync.Mutex
	items  []*Claim
	signal chan struct{} // capacity 1: "the queue changed"
}

func newClaimQueue() *claimQueue { return &claimQueue{signal: make(chan struct{}, 1)} }

func (q *claimQueue) push(cl *Claim) {
	q.mu.Lock()
	q.items = append(q.items, cl)
	q.mu.Unlock()
	q.poke()
}

// poke wakes the delivering goroutine to look at the queue again.
func (q *claimQueue) poke() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// first returns the oldest claim still worth delivering, dropping claims
// that ended before the worker saw them.
func (q *claimQueue) first() *Claim {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) > 0 && q.items[0].Context().Err() != nil {
		q.items = q.items[1:]
	}
	if len(q.items) == 0 {
		return nil
	}
	return q.items[0]
}

func (q *claimQueue) remove(cl *Claim) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) > 0 && q.items[0] == cl {
		q.items = q.items[1:]
	}
}

// run delivers claims on out until stop is closed.
func (q *claimQueue) run(stop <-chan struct{}, out chan<- *Claim) {
	for {
		cl := q.first()
		if cl == nil {
			select {
			case <-q.signal:
				continue
			case <-stop:
				return
			}
		}
		select {
		case out <- cl:
			q.remove(cl)
		case <-q.signal:
			// Something changed (the claim may have ended); look again.
		case <-stop:
			return
		}
	}
}

// drain empties the queue and returns what was never delivered. Call it
// only after run has returned.
func (q *claimQueue) drain() []*Claim {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	return out
}
