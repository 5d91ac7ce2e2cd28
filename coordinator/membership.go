package coordinator

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// join starts a membership epoch: a new lease and the member record bound
// to it. It retries until it succeeds or ctx ends.
func (c *Coordinator) join(ctx context.Context) (*lease, error) {
	delay := 100 * time.Millisecond
	for {
		l, err := c.tryJoin(ctx)
		if err == nil {
			c.lease.Store(l)
			c.log.Info("joined", "lease", fmt.Sprintf("%x", int64(l.id)), "ttl", c.cfg.LeaseTTL)
			return l, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.log.Warn("join", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// tryJoin grants a lease and creates the member record under it. The
// record must not exist: a record left by this member's previous lease (or
// by another process with the same id) is waited out, so one member id
// always means one lease.
func (c *Coordinator) tryJoin(ctx context.Context) (*lease, error) {
	l, err := grantLease(ctx, c.cli, c.cfg.LeaseTTL, c.cfg.SafetyMargin, c.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	c.started = time.Now().UTC()
	c.published = nil
	val, err := encode(c.memberRecord(false))
	if err != nil {
		c.releaseUnjoined(l)
		return nil, err
	}
	key := c.keys.member(c.cfg.MemberID)
	tctx, cancel := c.opCtx(l)
	defer cancel()
	resp, err := c.txn(tctx, "join", []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		clientv3.OpPut(key, val, clientv3.WithLease(l.id)))
	if err == nil && !resp.Succeeded {
		err = errMemberTaken
	}
	if err != nil {
		c.releaseUnjoined(l)
		return nil, fmt.Errorf("coordinator: join as %s: %w", c.cfg.MemberID, err)
	}
	return l, nil
}

// releaseUnjoined gives back the lease of a join that failed. A revoke that
// fails leaves the lease, and a member record a lost reply may hide, to
// expire: no claim is ever bound to it.
func (c *Coordinator) releaseUnjoined(l *lease) {
	if err := l.release(time.Second); err != nil {
		c.log.Debug("revoke lease of a failed join", "err", err)
	}
}

func (c *Coordinator) memberRecord(leaving bool) memberRecord {
	return memberRecord{
		ID: c.cfg.MemberID, Address: c.cfg.Address, Capacity: c.cfg.Capacity,
		Version: c.cfg.Version, Started: c.started, Leaving: leaving,
	}
}

// fence ends a membership epoch whose lease may be gone: every claim's
// context already ended with the lease's; the claims are dropped and the
// old lease is revoked if etcd can be reached.
func (c *Coordinator) fence(l *lease) {
	cause := context.Cause(l.ctx)
	c.lease.Store(nil)
	c.synced.Store(false)
	c.m.fences.Inc()
	c.dropAll(cause)
	c.log.Warn("lease lost: every claim dropped; joining again with a new lease", "cause", cause)
	if err := l.release(time.Second); err != nil {
		c.log.Debug("revoke old lease", "err", err)
	}
}
