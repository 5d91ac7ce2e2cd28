package sink

import (
	"fmt"
	"sync"
)

// RetryKeys makes the sink refuse a fixed share of subscribers for a while:
// one key in OneIn, picked by the key's hash, is answered 503 with
// Retry-After to its first Times deliveries and accepted after. The pick
// depends on the key alone, so every run, every sender and every retry of
// a key gets the same answer; a load test uses it to keep a few records
// retrying at any moment of a broadcast, which random 5xx answers cannot
// promise for a given key.
type RetryKeys struct {
	// OneIn picks one key in OneIn. Zero means none.
	OneIn uint64
	// Times is how many deliveries of a picked key are refused before one
	// is accepted. Zero means 1.
	Times int
}

func (r RetryKeys) validate() error {
	if r.Times < 0 {
		return fmt.Errorf("%w: negative retry times %d", ErrConfig, r.Times)
	}
	return nil
}

// picks reports whether the key hashed to h is one that retries.
func (r RetryKeys) picks(h keyHash) bool {
	return r.OneIn > 0 && h[0]%r.OneIn == 0
}

// refusals counts the refusals of each picked key in one counting period.
// Only picked keys get here, so one lock serves.
type refusals struct {
	mu sync.Mutex
	n  map[keyHash]int
}

// refuse counts one more delivery of h and reports whether it is among the
// first times, which are refused.
func (f *refusals) refuse(h keyHash, times int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = make(map[keyHash]int)
	}
	if f.n[h] >= times {
		return false
	}
	f.n[h]++
	return true
}
