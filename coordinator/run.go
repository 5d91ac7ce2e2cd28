package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Run joins the fleet and does this member's share of coordination until
// ctx ends: it keeps the view current, starts and completes broadcasts,
// claims its units, splits orphans and hands work over to joiners. When
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

// watch is the member's one watch on the prefix.
type watch struct {
	ch     clientv3.WatchChan
	cancel context.CancelFunc
}

// loop is Run's main loop. It returns the current lease, if any, when ctx
// ends.
func (c *Coordinator) loop(ctx context.Context) *lease {
	ticker := time.NewTicker(c.cfg.ReconcileInterval)
	defer ticker.Stop()
	var (
		l        *lease
		w        *watch
		resynced time.Time
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
		case resp, ok := <-w.ch:
			if !c.applyWatch(resp, ok) {
				w.cancel()
				w = nil
				continue
			}
			// Take whatever else is already there before acting, so a
			// burst of checkpoints costs one reconcile.
			for more := true; more && w != nil; {
				select {
				case resp, ok := <-w.ch:
					if !c.applyWatch(resp, ok) {
						w.cancel()
						w = nil
					}
				default:
					more = false
				}
			}
			if w == nil {
				continue
			}
		case <-ticker.C:
		case <-c.wake:
		}
		c.reconcile(l)
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

// resync reads the broadcasts and members into a fresh view and watches
// them from the revision after the read. The summaries of archived
// broadcasts sort before both and are neither read nor watched.
func (c *Coordinator) resync(l *lease) (*watch, error) {
	c.synced.Store(false)
	ctx, cancel := c.opCtx(l)
	resp, err := c.cli.Get(ctx, c.keys.viewStart(), clientv3.WithRange(c.keys.viewEnd()))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("coordinator: read %s: %w", c.keys.viewStart(), err)
	}
	c.m.resyncKeys.Set(float64(len(resp.Kvs)))
	v := newView(c.keys, resp.Header.Revision)
	for _, kv := range resp.Kvs {
		if _, err := v.apply(kv, false); err != nil {
			c.log.Warn("ignoring undecodable key", "err", err)
		}
	}
	v.rev = resp.Header.Revision
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
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	ch := c.cli.Watch(wctx, c.keys.viewStart(), clientv3.WithRange(c.keys.viewEnd()), clientv3.WithRev(resp.Header.Revision+1))
	c.synced.Store(true)
	return &watch{ch: ch, cancel: wcancel}, nil
}
