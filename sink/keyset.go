package sink

import (
	"sync"

	"github.com/cespare/xxhash/v2"
)

// keyHash stands for an idempotency key. At 128 bits a collision among
// even billions of keys is too unlikely to matter, and it costs 16 bytes
// whatever the key's length.
type keyHash [2]uint64

// secondSeed makes the second half independent of the first.
const secondSeed = 0x9e3779b97f4a7c15

func hashKey(key string) keyHash {
	var d xxhash.Digest
	d.ResetWithSeed(secondSeed)
	_, _ = d.WriteString(key) // never fails
	return keyHash{xxhash.Sum64String(key), d.Sum64()}
}

// keyShards spreads the set over enough locks that concurrent requests
// rarely wait on each other.
const keyShards = 256

// keySet is a set of key hashes safe for concurrent use.
type keySet struct {
	shards [keyShards]keyShard
}

type keyShard struct {
	mu   sync.Mutex
	keys map[keyHash]struct{}
	_    [48]byte // keeps neighbouring shards' locks off one cache line
}

// add inserts h and reports whether it was absent.
func (s *keySet) add(h keyHash) bool {
	sh := &s.shards[h[1]%keyShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.keys[h]; ok {
		return false
	}
	if sh.keys == nil {
		sh.keys = make(map[keyHash]struct{})
	}
	sh.keys[h] = struct{}{}
	return true
}

// len counts the keys; it locks each shard in turn, so it is exact only
// when no add runs at the same time.
func (s *keySet) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.keys)
		sh.mu.Unlock()
	}
	return n
}
