package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// Run joins the fleet and does this member's share of coordination until
// ctx ends: it keeps the view current, starts and completes broadcasts,
// claims the slots the assignment gives it (a dead member's among them)
// and hands back those it gives to others. When
// ctx ends it leaves gracefully: it asks the worker to hand back every
// claim, waits up to LeaveTimeout, and revokes its lease. It returns nil
// then; it fails only if called twice.
func (c *Coordinator) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	stop := make(chan struct{})
	actx, stopArchiver := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.queue.run(stop, c.claims)
	}()
	go func() {
		defer wg.Done()
		c.archiver.run(actx)
	}()

	l := c.loop(ctx)

	// Nothing more reaches the worker once leaving starts; what it never
	// saw is released directly. A leaving member archives nothing more.
	close(stop)
	stopArchiver()
	wg.Wait()
	c.leave(l, c.queue.drain())
	close(c.claims)
	return nil
}

// watch is the member's watches: of the broadcasts and members, of its own
// notes, and, while it leads a broadcast, of the slots (nil otherwise).
type watch struct {
	common, notes, slots clientv3.WatchChan
	cancel               context.CancelFunc
}

// loop is Run's main loop. It returns the current lease, if any, when ctx
// ends. It reconciles only when something changed: a watch event, a claim
// that ended, a start time reached, or a retry after a failed etcd
// operation. An idle member does nothing but keep its lease.
func (c *Coordinator) loop(ctx context.Context) *lease {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		l        *lease
		w        *watch
		resynced time.Time
		last     time.Time // of the last reconcile
		dirty    bool      // something changed since it
	)
	defer func() {
		if w != nil {
			w.cancel()
		}
	}()
	for {
		if l == nil {
			var err error
			if l, err = c.join(ctx); err != nil {
				return nil
			}
		}
		if w == nil {
			// At most one full read per interval: a watch that keeps
			// failing must not turn into a loop of reads.
			if wait := time.Until(resynced.Add(c.cfg.ReconcileInterval)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return l
				case <-l.ctx.Done():
					t.Stop()
					c.fence(l)
					l = nil
					continue
				case <-t.C:
				}
			}
			resynced = time.Now()
			var err error
			if w, err = c.resync(l); err != nil {
				c.log.Warn("sync view", "err", err)
				continue
			}
			clear(c.acted)
			dirty = true
		}
		var next time.Time
		if dirty {
			next = last.Add(c.cfg.ReconcileInterval)
		}
		for _, t := range []time.Time{c.retryAt, c.wakeAt} {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		var tick <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return l
		case <-l.ctx.Done():
			w.cancel()
			w = nil
			c.fence(l)
			l = nil
			continue
		case resp, ok := <-w.common:
			dirty = true
			if !c.applyWatch(resp, ok) || !c.drainWatch(w) {
				w.cancel()
				w = nil
				continue
			}
		case resp, ok := <-w.notes:
			dirty = true
			if !c.applyWatch(resp, ok) || !c.drainWatch(w) {
				w.cancel()
				w = nil
				continue
			}
		case resp, ok := <-w.slots:
			dirty = true
			if !c.applyWatch(resp, ok) || !c.drainWatch(w) {
				w.cancel()
				w = nil
				continue
			}
		case <-c.wake:
			dirty = true
		case <-tick:
		}
		timer.Stop()
		now := time.Now()
		if !c.retryAt.IsZero() && !now.Before(c.retryAt) {
			c.retryAt = time.Time{}
			clear(c.acted)
			dirty = true
		}
		if !c.wakeAt.IsZero() && !now.Before(c.wakeAt) {
			dirty = true
		}
		if dirty && now.Sub(last) >= c.cfg.ReconcileInterval {
			dirty, last = false, now
			c.reconcile(l)
			if c.wantSlots != c.view.slotsWatched {
				// It became a broadcast's leader, or stopped being one:
				// read again, with the slots or without.
				w.cancel()
				w = nil
			}
		}
	}
}

// drainWatch takes whatever else the watches already have before acting,
// so a burst of events costs one reconcile. It reports false when a watch
// broke.
func (c *Coordinator) drainWatch(w *watch) bool {
	for {
		var (
			resp clientv3.WatchResponse
			ok   bool
		)
		select {
		case resp, ok = <-w.common:
		case resp, ok = <-w.notes:
		case resp, ok = <-w.slots:
		default:
			return true
		}
		if !c.applyWatch(resp, ok) {
			return false
		}
	}
}

// applyWatch folds one watch response into the view. It reports false when
// the watch is broken (closed, cancelled, compacted) and the view must be
// read afresh.
func (c *Coordinator) applyWatch(resp clientv3.WatchResponse, ok bool) bool {
	if !ok || resp.Canceled || resp.Err() != nil {
		c.synced.Store(false)
		c.log.Info("watch ended; reading the view again", "err", resp.Err())
		return false
	}
	c.m.watchEvents.Add(float64(len(resp.Events)))
	for _, ev := range resp.Events {
		id, err := c.view.apply(ev.Kv, ev.Type == clientv3.EventTypeDelete)
		if err != nil {
			c.log.Warn("ignoring undecodable key", "err", err)
		}
		if id != "" {
			c.noteState(id)
		}
	}
	return true
}

// resync reads, at one revision, the broadcasts and members, this
// member's notes and, if it leads a broadcast, the slots, into a fresh
// view, and watches them all from the revision after the read. The
// summaries of archived broadcasts and the slots' progress are neither
// read nor watched.
func (c *Coordinator) resync(l *lease) (*watch, error) {
	c.synced.Store(false)
	ctx, cancel := c.opCtx(l)
	start, end := c.keys.viewStart(), c.keys.viewEnd()
	notes := c.keys.notes(c.cfg.MemberID)
	ops := []clientv3.Op{clientv3.OpGet(start, clientv3.WithRange(end)), clientv3.OpGet(notes, clientv3.WithPrefix())}
	slots := c.wantSlots
	if slots {
		ops = append(ops, clientv3.OpGet(c.keys.allSlots(), clientv3.WithPrefix()))
	}
	resp, err := c.cli.Txn(ctx).Then(ops...).Commit()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("coordinator: read %s: %w", start, err)
	}
	rev := resp.Header.Revision
	var kvs []*mvccpb.KeyValue
	for _, r := range resp.Responses {
		kvs = append(kvs, r.GetResponseRange().Kvs...)
	}
	c.m.resyncKeys.Set(float64(len(kvs)))
	v := newView(c.keys, rev, c.cfg.MemberID)
	v.slotsWatched = slots
	// States first: only the state says how many slots a broadcast has.
	for pass := range 2 {
		for _, kv := range kvs {
			if kind, _, _, _ := c.keys.parse(string(kv.Key)); (kind == keyState || kind == keyMember) != (pass == 0) {
				continue
			}
			if _, err := v.apply(kv, false); err != nil {
				c.log.Warn("ignoring undecodable key", "err", err)
			}
		}
	}
	v.rev = rev
	c.view = v
	c.mu.Lock()
	known := make([]string, 0, len(c.states)+len(v.broadcasts))
	for id := range c.states {
		known = append(known, id)
	}
	c.mu.Unlock()
	for id := range v.broadcasts {
		known = append(known, id)
	}
	for _, id := range known {
		c.noteState(id)
	}
	// The member's id in the watches' metadata gives them a gRPC stream of
	// their own even when members share a client (as in tests): etcd
	// queues a stream's events in one buffer, and one member's backlog
	// must not hold up another's.
	wctx, wcancel := context.WithCancel(metadata.AppendToOutgoingContext(
		clientv3.WithRequireLeader(context.Background()), "herald-member", c.cfg.MemberID))
	w := &watch{cancel: wcancel,
		common: c.cli.Watch(wctx, start, clientv3.WithRange(end), clientv3.WithRev(rev+1)),
		notes:  c.cli.Watch(wctx, notes, clientv3.WithPrefix(), clientv3.WithRev(rev+1)),
	}
	if slots {
		w.slots = c.cli.Watch(wctx, c.keys.allSlots(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	}
	c.synced.Store(true)
	return w, nil
}
