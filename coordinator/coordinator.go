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
//
// Run's goroutine (the one that called Run) makes every decision and is
// the only writer of the member's state. Other goroutines (the worker,
// through the accessors and a Claim's methods, and a metrics scrape) only
// read that state, through atomics or under mu. Two writes come from
// elsewhere, both under mu: a claim that ends removes itself from held on
// whichever goroutine ended it, and BroadcastState adds an empty entry to
// states for a broadcast not seen yet. The fields are grouped by who owns
// them; doc.go lists the goroutines and the lock order.
type Coordinator struct {
	// Immutable after New; read from any goroutine.
	cfg       Config
	cli       *clientv3.Client
	log       *slog.Logger
	m         *metrics
	keys      keys
	reg       *Registry
	claimDeps claimDeps     // what every Claim this member takes is given
	claims    chan *Claim   // sent on by the queue's goroutine; closed by Run when it returns
	queue     *claimQueue   // pushed to by Run's goroutine; guarded by its own lock
	archiver  *archiver     // offered work by Run's goroutine; the rest is its own goroutine's
	wake      chan struct{} // capacity 1: a claim ended (forget), look again soon; only Run's goroutine receives

	// Written only by Run's goroutine; read from any goroutine.
	running atomic.Bool           // set by the first call of Run, never cleared
	leaving atomic.Bool           // set by leave, once ctx ended; read by Ready and Claim.Handoff
	synced  atomic.Bool           // the view is a complete copy kept current by a watch; read by Ready
	live    atomic.Int64          // live members not leaving, as of the last reconcile; read by LiveMembers
	lease   atomic.Pointer[lease] // nil when not joined; read by Deadline (also the metrics gauge) and Ready
	// shares is this member's rate share by broadcast (noteShares, at each
	// reconcile); read by RateShare.
	shares atomic.Pointer[map[string]float64]

	// mu guards held, states and waiting. Never held while taking another lock or
	// talking to etcd (see the lock order in doc.go).
	mu sync.Mutex
	// held is every claim this member holds, by claim key. Entries are
	// added only by Run's goroutine (claimUnit) and removed by forget, on
	// whichever goroutine ended the claim: the worker's (Finish, Handoff,
	// Release, a refused Checkpoint) or Run's (a lost, fenced or released claim).
	held map[string]*Claim
	// states is the cached state of each broadcast asked about or seen.
	// An entry is added by whoever asks first (BroadcastState from any
	// goroutine, noteState on Run's); its state changes, and its channel
	// is closed, only on Run's goroutine (noteState).
	states map[string]*stateSignal
	// waiting is, by broadcast, since when this member's sends wait on
	// its endpoint (NoteEndpoint, from the worker's goroutines).
	waiting map[string]time.Time

	// Run's goroutine only, with no lock: nothing else may touch these.
	view    *view          // nil until the first resync
	ring    *sharding.Ring // of the live members, as last seen
	ringKey string         // the membership ring was built from
	started time.Time      // of the current membership epoch
	// published is the waiting map last written in the member record
	// (nil after a join, whose record has none).
	published map[string]time.Time
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
		cfg:     cfg,
		cli:     cli,
		log:     log.With("member", cfg.MemberID),
		keys:    keys{prefix: cfg.Prefix},
		reg:     newRegistry(cli.KV, cfg.Prefix),
		claims:  make(chan *Claim),
		queue:   newClaimQueue(),
		wake:    make(chan struct{}, 1),
		held:    map[string]*Claim{},
		states:  map[string]*stateSignal{},
		waiting: map[string]time.Time{},
	}
	m, err := newMetrics(reg, c.Deadline)
	if err != nil {
		return nil, err
	}
	c.m = m
	c.archiver = newArchiver(c)
	c.claimDeps = claimDeps{
		member:  cfg.MemberID,
		keys:    c.keys,
		m:       m,
		txn:     c.txn,
		leaving: c.leaving.Load,
		forget:  c.forget,
	}
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
// the last reconcile.
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

// noteState publishes broadcast id's state from the view. Run's goroutine
// only: it reads the view. A broadcast gone from the view (archived, or
// deleted) loses its entry, so that states stays as small as the view;
// its channel is closed first, so anyone waiting looks again and finds it
// unknown.
func (c *Coordinator) noteState(id string) {
	b, inView := c.view.broadcasts[id]
	var st State
	if inView && b.hasState {
		st = b.state.State
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !inView {
		if s, ok := c.states[id]; ok {
			close(s.changed)
			delete(c.states, id)
		}
		return
	}
	s := c.stateSignalLocked(id)
	if s.state != st {
		s.state = st
		close(s.changed)
		s.changed = make(chan struct{})
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

// forget removes an ended claim from the held set and wakes Run. It runs
// on whichever goroutine ended the claim, possibly holding cl.mu.
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
