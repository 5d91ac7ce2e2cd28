package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Why a lease's context ended.
var (
	errDeadlinePassed = errors.New("coordinator: lease deadline passed without keepalive acknowledgement")
	errSessionEnded   = errors.New("coordinator: lease session ended")
	errLeaseReleased  = errors.New("coordinator: lease released")
)

// lease is one membership epoch: an etcd lease kept alive by a
// concurrency.Session, and the local deadline after which this member must
// assume the lease may have expired on the server. Every claim's context
// derives from ctx, so passing the deadline stops all of them at once.
type lease struct {
	cli    *clientv3.Client
	sess   *concurrency.Session
	id     clientv3.LeaseID
	ttl    time.Duration
	margin time.Duration

	ctx    context.Context // ends at the deadline, when the session ends, or on release
	cancel context.CancelCauseFunc

	deadline atomic.Int64 // unix nanoseconds
	stop     chan struct{}
	wg       sync.WaitGroup
}

// grantLease grants a lease of ttl and starts keeping it alive. ctx and
// timeout bound the grant itself: an unreachable etcd must not stall the
// caller. The lease then lives on its own until released or lost.
func grantLease(ctx context.Context, cli *clientv3.Client, ttl, margin, timeout time.Duration) (*lease, error) {
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The server starts the lease no earlier than the request leaves, so
	// the time before sending is a safe base for the first deadline.
	sent := time.Now()
	resp, err := cli.Grant(gctx, int64(ttl/time.Second))
	if err != nil {
		return nil, fmt.Errorf("coordinator: grant lease: %w", err)
	}
	l := &lease{cli: cli, id: resp.ID, ttl: ttl, margin: margin, stop: make(chan struct{})}
	l.deadline.Store(sent.Add(l.granted(resp.TTL)).UnixNano())
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
	// A second keepalive channel on the same lease: the client fans every
	// acknowledgement out to all channels, and these are what the local
	// deadline is measured from.
	acks, err := cli.KeepAlive(l.ctx, resp.ID)
	if err != nil {
		l.release(timeout)
		return nil, fmt.Errorf("coordinator: watch lease acknowledgements: %w", err)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.watchDeadline(acks)
	}()
	return l, nil
}

// granted is the lease time one acknowledgement buys, less the margin.
func (l *lease) granted(ttlSeconds int64) time.Duration {
	ttl := l.ttl
	if s := time.Duration(ttlSeconds) * time.Second; s > 0 && s < ttl {
		ttl = s
	}
	return ttl - l.margin
}

// Deadline is when this member must stop work unless an acknowledgement
// arrives first.
func (l *lease) Deadline() time.Time { return time.Unix(0, l.deadline.Load()) }

// watchDeadline moves the deadline with each acknowledgement and ends the
// lease's context when the deadline passes or the session ends.
func (l *lease) watchDeadline(acks <-chan *clientv3.LeaseKeepAliveResponse) {
	timer := time.NewTimer(time.Until(l.Deadline()))
	defer timer.Stop()
	for {
		select {
		case resp, ok := <-acks:
			if !ok || resp.TTL <= 0 {
				l.cancel(errSessionEnded)
				return
			}
			// The acknowledgement's receive time is later than the server's
			// renewal; the margin absorbs that transit.
			l.deadline.Store(time.Now().Add(l.granted(resp.TTL)).UnixNano())
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
