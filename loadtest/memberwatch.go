package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/coordinator"
)

// memberWatch follows Herald's prefix from a revision: it counts every
// event, the lease losses of members (a member record deleted, or created
// again without its deletion seen) and their new leases (a member record
// created with a new create revision).
type memberWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	revs    []int64          // every event's revision, in order
	last    map[string]int64 // member -> create revision of its record, 0 deleted
	lost    map[string]int
	created map[string]int
}

// newMemberWatch watches from the revision after rev, knowing the member
// records as they were at rev.
func newMemberWatch(ctx context.Context, cli *clientv3.Client, rev int64) (*memberWatch, error) {
	resp, err := cli.Get(ctx, memberKey(""), clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return nil, fmt.Errorf("loadtest: members: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &memberWatch{cancel: cancel, done: make(chan struct{}), last: map[string]int64{}, lost: map[string]int{}, created: map[string]int{}}
	for _, kv := range resp.Kvs {
		w.last[strings.TrimPrefix(string(kv.Key), memberKey(""))] = kv.CreateRevision
	}
	prefix := coordinator.DefaultPrefix + "/"
	go func() { // owned by w: stop cancels and waits
		defer close(w.done)
		// The embedded etcd compacts history older than a minute; a
		// watch that keeps up is never behind that far.
		for resp := range cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			w.add(resp.Events)
		}
	}()
	return w, nil
}

func (w *memberWatch) add(evs []*clientv3.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range evs {
		w.revs = append(w.revs, ev.Kv.ModRevision)
	}
	members := memberKey("")
	for _, ev := range evs {
		id, ok := strings.CutPrefix(string(ev.Kv.Key), members)
		if !ok {
			continue
		}
		prev := w.last[id]
		switch {
		case ev.Type == clientv3.EventTypeDelete:
			w.lost[id]++
			w.last[id] = 0
		case ev.Kv.CreateRevision != prev:
			if prev != 0 {
				w.lost[id]++ // re-created, its deletion not seen
			}
			w.created[id]++
			w.last[id] = ev.Kv.CreateRevision
		}
	}
}

func (w *memberWatch) stop() {
	w.cancel()
	<-w.done
}

// lostByMember is the lease losses seen so far, by member.
func (w *memberWatch) lostByMember() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.lost)
}

// counts returns, for member id, the leases it lost and the new ones it
// took since the watch began.
func (w *memberWatch) counts(id string) (lost, created int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost[id], w.created[id]
}

// eventsSince counts the events seen after revision from, up to and
// including to.
func (w *memberWatch) eventsSince(from, to int64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, _ := slices.BinarySearch(w.revs, from+1)
	j, _ := slices.BinarySearch(w.revs, to+1)
	return j - i
}
