package coordinator

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leave is the graceful exit (Run's context ended, i.e. SIGTERM): mark the
// member leaving so no one assigns it work, release what the worker never
// saw, ask the worker to hand back the rest, wait for that within
// LeaveTimeout, then revoke the lease. What is still held at the end is
// dropped; its slots fail over from their last checkpoints.
func (c *Coordinator) leave(l *lease, undelivered []*Claim) {
	c.leaving.Store(true)
	c.synced.Store(false)
	if l == nil {
		c.dropAll(errStopped)
		return
	}
	defer func() {
		c.dropAll(errStopped)
		c.lease.Store(nil)
		if err := l.release(c.cfg.LeaseTTL); err != nil {
			c.log.Warn("revoke lease", "err", err)
		}
		c.log.Info("left the fleet")
	}()
	if l.ctx.Err() != nil {
		return // the lease is gone already; nothing can be handed back
	}
	ctx, cancel := context.WithTimeout(l.ctx, c.cfg.LeaveTimeout)
	defer cancel()
	if err := c.markLeaving(ctx, l); err != nil {
		c.log.Warn("mark leaving", "err", err)
	}
	for _, cl := range undelivered {
		if cl.ended.Load() {
			continue
		}
		if err := cl.Handoff(ctx, cl.Progress()); err != nil {
			c.log.Warn("release undelivered claim", "broadcast", cl.broadcast, "slot", cl.slot, "err", err)
		}
	}
	held := c.heldClaims()
	c.log.Info("leaving: asking for every slot back", "slots", len(held))
	for _, cl := range held {
		cl.requestHandoff()
	}
	for {
		c.mu.Lock()
		n := len(c.held)
		c.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-c.wake:
		case <-ctx.Done():
			c.log.Warn("leaving: slots not handed back in time; they fail over from their last checkpoints",
				"slots", n, "waited", c.cfg.LeaveTimeout)
			return
		}
	}
}

// markLeaving rewrites the member record with leaving=true, if it is still
// this lease's.
func (c *Coordinator) markLeaving(ctx context.Context, l *lease) error {
	val, err := encode(c.memberRecord(true))
	if err != nil {
		return err
	}
	key := c.keys.member(c.cfg.MemberID)
	resp, err := c.txn(ctx, "leave", []clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(key), "=", l.id)},
		[]clientv3.Op{clientv3.OpPut(key, val, clientv3.WithLease(l.id))}, nil)
	if err != nil {
		return fmt.Errorf("coordinator: mark %s leaving: %w", c.cfg.MemberID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("coordinator: mark %s leaving: %w", c.cfg.MemberID, ErrNotOwner)
	}
	return nil
}
