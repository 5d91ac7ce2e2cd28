package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Why a lease's context ended.
var (
	errDeadlinePassed = errors.New("coordinator: lease deadline passed without a renewal acknowledged")
	errSessionEnded   = errors.New("coordinator: lease session ended")
	errLeaseReleased  = errors.New("coordinator: lease released")
)

// lease is one membership epoch: an etcd lease kept alive by a
// concurrency.Session, and the local deadline after which this member must
// assume the lease may have expired on the server. Every claim's context
// derives from ctx, so passing the deadline stops all of them at once.
//
// The deadline is measured by probes of our own (KeepAliveOnce every TTL/4)
// from the moment each probe was sent, not from when an acknowledgement
// arrived: the server renewed the lease no earlier than the send, so
// sent + TTL - margin is never later than the server's expiry less the
// margin, however long the response took. The session's keepalives go on
// as usual; the probes only add renewals.
type lease struct {
	cli    *clientv3.Client
	sess   *concurrency.Session
	id     clientv3.LeaseID
	ttl    time.Duration
	margin time.Duration

	ctx    context.Context // ends at the deadline, when the session ends, or on release
	cancel context.CancelCauseFunc

	// base is when the lease was granted, with its monotonic clock
	// reading; deadline counts nanoseconds from it. Deadline rebuilds the
	// time from base, so comparisons with time.Now use the monotonic clock
	// and a step of the wall clock (NTP, an operator) cannot move the
	// fencing deadline.
	base     time.Time
	deadline atomic.Int64  // nanoseconds after base
	moved    chan struct{} // capacity 1: the deadline moved
	stop     chan struct{}
	wg       sync.WaitGroup
}

// grantLease grants a lease of ttl and starts keeping it alive. ctx and
// timeout bound the grant itself: an unreachable etcd must not stall the
// caller. The lease then lives on its own until released or lost.
func grantLease(ctx context.Context, cli *clientv3.Client, ttl, margin, timeout time.Duration) (*lease, error) {
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sent := time.Now()
	resp, err := cli.Grant(gctx, int64(ttl/time.Second))
	if err != nil {
		return nil, fmt.Errorf("coordinator: grant lease: %w", err)
	}
	l := &lease{cli: cli, id: resp.ID, ttl: ttl, margin: margin, base: sent,
		moved: make(chan struct{}, 1), stop: make(chan struct{})}
	l.setDeadline(sent.Add(l.granted(resp.TTL)))
	// The session's context is ours, not the caller's, so that a graceful
	// leave can keep the lease alive after Run's context has ended.
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	sess, err := concurrency.NewSession(cli, concurrency.WithLease(resp.ID), concurrency.WithContext(l.ctx))
	if err != nil {
		l.cancel(err)
		l.revoke(timeout)
		return nil, fmt.Errorf("coordinator: lease session: %w", err)
	}
	l.sess = sess
	// A grant answered late (etcd was unreachable and the request waited,
	// or the reply was slow) buys a deadline counted from when it was
	// sent, which may be nearly over already: renew once now, from a fresh
	// send time, rather than lose the new lease at once.
	if time.Until(l.Deadline()) < ttl/2 {
		l.renew()
	}
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		l.probe()
	}()
	go func() {
		defer l.wg.Done()
		l.watchDeadline()
	}()
	return l, nil
}

// granted is the lease time one renewal buys, less the margin.
func (l *lease) granted(ttlSeconds int64) time.Duration {
	ttl := l.ttl
	if s := time.Duration(ttlSeconds) * time.Second; s > 0 && s < ttl {
		ttl = s
	}
	return ttl - l.margin
}

// Deadline is when this member must stop work unless a renewal is
// acknowledged first.
func (l *lease) Deadline() time.Time { return l.base.Add(time.Duration(l.deadline.Load())) }

// setDeadline records d, which must carry a monotonic clock reading (a
// time.Now plus a duration), as nanoseconds after base.
func (l *lease) setDeadline(d time.Time) { l.deadline.Store(int64(d.Sub(l.base))) }

// probe renews the lease every TTL/4, or sooner while the deadline is
// near, and moves the deadline from each acknowledged probe's send time.
func (l *lease) probe() {
	timer := time.NewTimer(l.nextProbe())
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		}
		if !l.renew() {
			return
		}
		timer.Reset(l.nextProbe())
	}
}

// nextProbe is how long to wait before the next renewal: a quarter of the
// TTL, or half of what is left before the deadline if that is sooner, so
// that there are always two chances to renew before it passes.
func (l *lease) nextProbe() time.Duration {
	return max(min(l.ttl/4, time.Until(l.Deadline())/2), 20*time.Millisecond)
}

// renew sends one keepalive and, if it is acknowledged, moves the deadline
// to its send time plus the TTL granted, less the margin. It reports false
// once the lease is gone for good.
func (l *lease) renew() bool {
	ctx, cancel := context.WithTimeout(l.ctx, l.ttl/4)
	sent := time.Now()
	resp, err := l.cli.KeepAliveOnce(ctx, l.id)
	cancel()
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		l.cancel(errSessionEnded)
		return false
	case err != nil:
		return true // unreachable for now; the deadline will tell
	}
	l.setDeadline(sent.Add(l.granted(resp.TTL)))
	select {
	case l.moved <- struct{}{}:
	default:
	}
	return true
}

// watchDeadline ends the lease's context when the deadline passes or the
// session ends.
func (l *lease) watchDeadline() {
	timer := time.NewTimer(time.Until(l.Deadline()))
	defer timer.Stop()
	for {
		select {
		case <-l.moved:
			timer.Reset(time.Until(l.Deadline()))
		case <-timer.C:
			if left := time.Until(l.Deadline()); left > 0 {
				timer.Reset(left)
				continue
			}
			l.cancel(errDeadlinePassed)
			return
		case <-l.sess.Done():
			l.cancel(errSessionEnded)
			return
		case <-l.stop:
			return
		}
	}
}

// release stops keeping the lease alive, ends its context, and revokes it
// within timeout; a revoke that fails leaves the lease to expire.
func (l *lease) release(timeout time.Duration) error {
	l.cancel(errLeaseReleased)
	close(l.stop)
	l.wg.Wait()
	if l.sess != nil {
		l.sess.Orphan()
	}
	return l.revoke(timeout)
}

func (l *lease) revoke(timeout time.Duration) error {
	if err := l.cli.Ctx().Err(); err != nil {
		// A closed client would only retry until the timeout.
		return fmt.Errorf("coordinator: revoke lease %x: client closed: %w", int64(l.id), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := l.cli.Revoke(ctx, l.id); err != nil {
		return fmt.Errorf("coordinator: revoke lease %x: %w", int64(l.id), err)
	}
	return nil
}
