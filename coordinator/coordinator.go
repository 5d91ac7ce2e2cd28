package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// maxTxnOps is etcd's default limit on the operations of one transaction
// (--max-txn-ops). Every transaction here is built to stay within it.
const maxTxnOps = 128

var (
	errMemberTaken   = errors.New("coordinator: member id held by another lease")
	errStopped       = errors.New("coordinator: member stopped")
	errBroadcastOver = errors.New("coordinator: broadcast is over")
)

// Coordinator is one fleet member's view of the fleet and its share of the
// work. Run joins the fleet, keeps the view current and claims work; the
// worker takes the claims from Claims.
type Coordinator struct {
	cfg  Config
	cli  *clientv3.Client
	log  *slog.Logger
	m    *metrics
	keys keys
	reg  *Registry

	claims chan *Claim
	queue  *claimQueue
	wake   chan struct{} // capacity 1: a claim ended, look again soon

	running atomic.Bool
	leaving atomic.Bool
	synced  atomic.Bool
	live    atomic.Int64
	lease   atomic.Pointer[lease] // nil when not joined

	mu     sync.Mutex
	held   map[string]*Claim // by claim key
	states map[string]*stateSignal

	// Owned by Run's goroutine.
	view    *view
	ring    *sharding.Ring // of the live members, as last seen
	ringKey string         // the membership ring was built from
	started time.Time      // of the current membership epoch
}

// stateSignal is the cached state of one broadcast and a channel closed
// at its next change.
type stateSignal struct {
	state   State
	changed chan struct{}
}

// New returns a Coordinator for the member cfg describes, using cli for
// etcd. A nil log discards logs; a nil reg means no metrics are exported.
func New(cfg Config, cli *clientv3.Client, log *slog.Logger, reg prometheus.Registerer) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cli == nil {
		return nil, fmt.Errorf("%w: nil etcd client", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	if cfg.MemberID == "" {
		cfg.MemberID = generatedMemberID()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Coordinator{
		cfg:    cfg,
		cli:    cli,
		log:    log.With("member", cfg.MemberID),
		keys:   keys{prefix: cfg.Prefix},
		reg:    newRegistry(cli.KV, cfg.Prefix),
		claims: make(chan *Claim),
		queue:  newClaimQueue(),
		wake:   make(chan struct{}, 1),
		held:   map[string]*Claim{},
		states: map[string]*stateSignal{},
	}
	m, err := newMetrics(reg, c.Deadline)
	if err != nil {
		return nil, err
	}
	c.m = m
	return c, nil
}

// MemberID is this member's id, generated if the Config left it empty.
func (c *Coordinator) MemberID() string { return c.cfg.MemberID }

// Claims delivers the units this member claims, in the order claimed. Run
// never waits for the reader: claims queue up until read. The channel is
// closed when Run returns.
func (c *Coordinator) Claims() <-chan *Claim { return c.claims }

// Deadline is the local fencing deadline: the last keepalive
// acknowledgement plus the lease TTL, less the safety margin. Past it, the
// lease may have expired on the server and nothing may be sent. It is zero
// while the member is not joined.
func (c *Coordinator) Deadline() time.Time {
	if l := c.lease.Load(); l != nil {
		return l.Deadline()
	}
	return time.Time{}
}

// Ready reports whether the member is joined, its lease is within its
// deadline, its view of etcd is synced, and it is not leaving.
func (c *Coordinator) Ready() bool {
	l := c.lease.Load()
	return l != nil && l.ctx.Err() == nil && time.Now().Before(l.Deadline()) &&
		c.synced.Load() && !c.leaving.Load()
}

// LiveMembers is the number of live members that are not leaving, as of
// the last reconcile; a fleet-wide rate is divided by it.
func (c *Coordinator) LiveMembers() int { return int(c.live.Load()) }

// BroadcastState returns the cached state of broadcast id ("" if unknown)
// and a channel that is closed at its next change.
func (c *Coordinator) BroadcastState(id string) (State, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stateSignalLocked(id)
	return s.state, s.changed
}

// Registry returns the registry over this member's prefix.
func (c *Coordinator) Registry() *Registry { return c.reg }

func (c *Coordinator) stateSignalLocked(id string) *stateSignal {
	s, ok := c.states[id]
	if !ok {
		s = &stateSignal{changed: make(chan struct{})}
		c.states[id] = s
	}
	return s
}

// noteState publishes broadcast id's state from the view.
func (c *Coordinator) noteState(id string) {
	var st State
	if b, ok := c.view.broadcasts[id]; ok && b.hasState {
		st = b.state.State
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stateSignalLocked(id)
	if s.state != st {
		s.state = st
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

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
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.queue.run(stop, c.claims)
	}()

	l := c.loop(ctx)

	// Nothing more reaches the worker once leaving starts; what it never
	// saw is released directly.
	close(stop)
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
		l *lease
		w *watch
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
			var err error
			if w, err = c.resync(l); err != nil {
				c.log.Warn("sync view", "err", err)
				t := time.NewTimer(c.cfg.ReconcileInterval)
				select {
				case <-ctx.Done():
					t.Stop()
					return l
				case <-l.ctx.Done():
					c.fence(l)
					l = nil
				case <-t.C:
				}
				t.Stop()
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

// resync reads everything under the prefix into a fresh view and watches
// from the revision after the read.
func (c *Coordinator) resync(l *lease) (*watch, error) {
	c.synced.Store(false)
	ctx, cancel := c.opCtx(l)
	resp, err := c.cli.Get(ctx, c.keys.root(), clientv3.WithPrefix())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("coordinator: read %s: %w", c.keys.root(), err)
	}
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
	ch := c.cli.Watch(wctx, c.keys.root(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	c.synced.Store(true)
	return &watch{ch: ch, cancel: wcancel}, nil
}

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
	val, err := encode(c.memberRecord(false))
	if err != nil {
		l.release(time.Second)
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
		l.release(time.Second)
		return nil, fmt.Errorf("coordinator: join as %s: %w", c.cfg.MemberID, err)
	}
	return l, nil
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

// opCtx bounds one etcd operation of the current epoch: it ends at the
// lease's end, or after one TTL.
func (c *Coordinator) opCtx(l *lease) (context.Context, context.CancelFunc) {
	return context.WithTimeout(l.ctx, c.cfg.LeaseTTL)
}

// txn runs one transaction and records its latency under op.
func (c *Coordinator) txn(ctx context.Context, op string, cmps []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	start := time.Now()
	resp, err := c.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	c.m.txnSeconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
	return resp, err
}

// heldClaims returns the claims this member holds now.
func (c *Coordinator) heldClaims() []*Claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Claim, 0, len(c.held))
	for _, cl := range c.held {
		out = append(out, cl)
	}
	return out
}

func (c *Coordinator) holds(claimKey string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.held[claimKey]
	return ok
}

// forget removes an ended claim from the held set and wakes Run.
func (c *Coordinator) forget(cl *Claim) {
	c.mu.Lock()
	if c.held[cl.claimKey] == cl {
		delete(c.held, cl.claimKey)
		c.m.unitsHeld.Set(float64(len(c.held)))
	}
	c.mu.Unlock()
	c.queue.poke()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// dropAll ends every held claim with cause.
func (c *Coordinator) dropAll(cause error) {
	for _, cl := range c.heldClaims() {
		cl.lose(cause)
	}
}
