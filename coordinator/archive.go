package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Finished broadcasts are archived: once one has been over for
// Config.ArchiveAfter, one member (the ring owner of its id among the live
// members) reads it in one snapshot, gives its summary to the Reporter,
// and in one txn puts the summary at P/archive/<id> and deletes everything
// under P/broadcasts/<id>/. Members read and watch only from
// P/broadcasts/ on, so a resync costs what is live, not every broadcast
// there ever was. One member (the first live one by id) sweeps summaries
// older than Config.Retention. docs/ETCD.md has the transactions.
//
// Run's goroutine decides what is due from its view; the archiver's own
// goroutine does the reading, reporting and writing, so a slow or
// unreachable Kafka never holds up a reconcile (claims, failover).

// archiveTimeout bounds one archive (read, report, write) or one page of a
// sweep.
const archiveTimeout = 10 * time.Second

// sweepBatch is how many expired summaries one txn deletes, each with its
// own compare: within etcd's default of 128 compares and 128 ops.
const sweepBatch = 100

// archiveWork is what Run's goroutine hands the archiver after a
// reconcile: the finished broadcasts this member is to archive now, and
// whether it is the member that sweeps expired summaries.
type archiveWork struct {
	jobs  []archiveJob
	sweep bool
}

// archiveJob is one finished broadcast to archive, as the view showed it.
type archiveJob struct {
	id       string
	stateRev int64 // the state's mod revision in the view: a later state is not what was decided on
	// force archives even though claims remain: they outlived the grace
	// given for their release, and archiving deletes them (their holders
	// are fenced by the claim key's deletion like any lost claim).
	force bool
}

// archiveDue reports whether this member archives finished broadcast b
// now: it is the ring owner of b's id, b has been over for ArchiveAfter,
// and no claim on it remains, or 2 TTLs more have passed. Run's goroutine
// only.
func (c *Coordinator) archiveDue(b *broadcastView, now time.Time) (archiveJob, bool) {
	if c.ring == nil || c.ring.Owner(xxhash.Sum64String(b.id)) != c.cfg.MemberID {
		return archiveJob{}, false
	}
	due := b.finishedAt.Add(c.cfg.ArchiveAfter)
	force := len(b.claims) > 0
	if force {
		// A cancelled broadcast's claims are released by their holders as
		// soon as they see the state; one whose release failed is left to
		// its holder's lease, or to this.
		due = due.Add(2 * c.cfg.LeaseTTL)
	}
	if now.Before(due) {
		return archiveJob{}, false
	}
	return archiveJob{id: b.id, stateRev: b.stateRev, force: force}, true
}

// archiver reports and archives finished broadcasts and sweeps expired
// summaries, on its own goroutine (run), started and stopped by Run.
type archiver struct {
	// Immutable after newArchiver.
	reg        *Registry
	kv         clientv3.KV
	keys       keys
	txn        func(ctx context.Context, op string, cmps []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error)
	reporter   Reporter // nil: no reports
	log        *slog.Logger
	m          *metrics
	retention  time.Duration
	sweepEvery time.Duration
	retryBase  time.Duration

	// work carries the latest work from Run's goroutine (offer) to the
	// archiver's; capacity 1, and newer work replaces what was not taken.
	work chan archiveWork

	// The archiver's goroutine only.
	settled  map[string]int64 // broadcasts archived, or found not to need it, by the state revision offered
	failures int              // consecutive failures; each pauses archiving, longer every time
	paused   time.Time        // no archiving before this
	swept    time.Time        // the last sweep
}

func newArchiver(c *Coordinator) *archiver {
	return &archiver{
		reg: c.reg, kv: c.cli.KV, keys: c.keys, txn: c.txn, reporter: c.cfg.Reporter,
		log: c.log, m: c.m, retention: c.cfg.Retention,
		sweepEvery: min(c.cfg.Retention/10, 10*time.Minute), retryBase: c.cfg.ReconcileInterval,
		work: make(chan archiveWork, 1), settled: map[string]int64{},
	}
}

// offer hands w to the archiver, replacing work it has not taken yet. It
// never blocks: Run's goroutine is the only sender.
func (a *archiver) offer(w archiveWork) {
	select {
	case <-a.work:
	default:
	}
	a.work <- w
}

// run archives what it is offered until ctx ends.
func (a *archiver) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-a.work:
			a.do(ctx, w)
		}
	}
}

func (a *archiver) do(ctx context.Context, w archiveWork) {
	now := time.Now()
	if w.sweep && now.Sub(a.swept) >= a.sweepEvery {
		a.swept = now
		if err := a.sweep(ctx, now); err != nil {
			a.log.Warn("sweep expired summaries", "err", err)
		}
	}
	offered := make(map[string]bool, len(w.jobs))
	for _, j := range w.jobs {
		offered[j.id] = true
	}
	for id := range a.settled {
		if !offered[id] {
			delete(a.settled, id) // gone from the view: forget it
		}
	}
	if now.Before(a.paused) {
		return
	}
	for _, j := range w.jobs {
		if ctx.Err() != nil {
			return
		}
		if rev, ok := a.settled[j.id]; ok && rev == j.stateRev {
			continue // archived already; the view has not caught up yet
		}
		settled, err := a.archive(ctx, j)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.failures++
			pause := min(a.retryBase<<min(a.failures-1, 10), time.Minute)
			a.paused = time.Now().Add(pause)
			a.log.Warn("archive finished broadcast; retrying later", "broadcast", j.id, "retry_in", pause, "err", err)
			return
		}
		a.failures = 0
		if settled {
			a.settled[j.id] = j.stateRev
		}
	}
}

// archive reports finished broadcast j and replaces its live keys with its
// summary. It returns settled=true when j needs nothing more (archived
// now, archived already, or changed since it was offered: a new offer will
// follow if it is still due), false to be tried again. An error is a
// failed read, report or write.
func (a *archiver) archive(ctx context.Context, j archiveJob) (settled bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, archiveTimeout)
	defer cancel()
	f, err := a.reg.readFinished(ctx, j.id)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrBadTransition):
		return true, nil
	case errors.Is(err, errUndecodable):
		// Not a passing failure: pausing for it would hold up every other
		// archive. It stays live, and is tried again once its state changes.
		a.log.Error("cannot archive finished broadcast", "broadcast", j.id, "err", err)
		return true, nil
	case err != nil:
		return false, err
	case f.stateRev != j.stateRev:
		return true, nil
	case f.claims > 0 && !j.force:
		return false, nil // the view was behind a claim; look again later
	}
	f.sum.ArchivedAt = time.Now().UTC()
	if a.reporter != nil {
		if err := a.reporter.Report(ctx, f.sum); err != nil {
			a.m.reportFailures.Inc()
			return false, fmt.Errorf("coordinator: report %s: %w", j.id, err)
		}
	}
	val, err := encode(f.sum)
	if err != nil {
		return false, err
	}
	// Nothing under the broadcast changed since the read: the summary is
	// what is deleted. (A claim deleted since only makes it truer.)
	resp, err := a.txn(ctx, "archive", []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(a.keys.broadcast(j.id)), "<", f.rev+1).WithPrefix(),
	}, clientv3.OpPut(a.keys.archive(j.id), val), clientv3.OpDelete(a.keys.broadcast(j.id), clientv3.WithPrefix()))
	if err != nil {
		return false, fmt.Errorf("coordinator: archive %s: %w", j.id, err)
	}
	if !resp.Succeeded {
		return true, nil
	}
	a.m.archived.Inc()
	a.log.Info("archived finished broadcast", "broadcast", j.id, "state", f.sum.State,
		"scanned", f.sum.Counters.Scanned, "delivered", f.sum.Counters.Delivered, "claims_deleted", f.claims)
	return true, nil
}

// sweep deletes the summaries of broadcasts that finished more than the
// retention before now, a page at a time. Each delete compares the
// summary's mod revision with the one read.
func (a *archiver) sweep(ctx context.Context, now time.Time) error {
	cutoff := now.Add(-a.retention)
	for from := a.keys.archives(); ; {
		pctx, cancel := context.WithTimeout(ctx, archiveTimeout)
		resp, err := a.kv.Get(pctx, from, clientv3.WithRange(a.keys.archivesEnd()), clientv3.WithLimit(listPage))
		if err != nil {
			cancel()
			return fmt.Errorf("coordinator: read summaries: %w", err)
		}
		var expired []*mvccpb.KeyValue
		for _, kv := range resp.Kvs {
			sum, err := decodeSummary(kv)
			if err != nil {
				a.log.Warn("keeping an undecodable summary", "err", err)
				continue
			}
			if sum.FinishedAt.Before(cutoff) {
				expired = append(expired, kv)
			}
		}
		err = a.deleteSummaries(pctx, expired)
		cancel()
		if err != nil {
			return err
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// deleteSummaries deletes kvs, sweepBatch to a txn; a batch whose compare
// fails (a summary was rewritten since it was read) is retried key by key.
func (a *archiver) deleteSummaries(ctx context.Context, kvs []*mvccpb.KeyValue) error {
	for len(kvs) > 0 {
		batch := kvs[:min(len(kvs), sweepBatch)]
		kvs = kvs[len(batch):]
		resp, err := a.txn(ctx, "sweep", deleteCmps(batch), deleteOps(batch)...)
		if err != nil {
			return fmt.Errorf("coordinator: delete summaries: %w", err)
		}
		if resp.Succeeded {
			a.m.summariesDeleted.Add(float64(len(batch)))
			continue
		}
		for _, kv := range batch {
			one := []*mvccpb.KeyValue{kv}
			resp, err := a.txn(ctx, "sweep", deleteCmps(one), deleteOps(one)...)
			if err != nil {
				return fmt.Errorf("coordinator: delete summary %s: %w", kv.Key, err)
			}
			if resp.Succeeded {
				a.m.summariesDeleted.Inc()
			}
		}
	}
	return nil
}

func deleteCmps(kvs []*mvccpb.KeyValue) []clientv3.Cmp {
	out := make([]clientv3.Cmp, len(kvs))
	for i, kv := range kvs {
		out[i] = clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)
	}
	return out
}

func deleteOps(kvs []*mvccpb.KeyValue) []clientv3.Op {
	out := make([]clientv3.Op, len(kvs))
	for i, kv := range kvs {
		out[i] = clientv3.OpDelete(string(kv.Key))
	}
	return out
}
