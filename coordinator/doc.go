// Package coordinator keeps a Herald fleet in agreement through etcd: who is
// alive, which broadcasts exist and in what state, which member holds which
// unit of work, how far each unit has got, and who takes over when a member
// dies, joins or leaves.
//
// A member's liveness is one etcd lease, held by a concurrency.Session. Its
// member record and every claim it holds are bound to that lease, so when
// the member dies the claims vanish with it and the survivors, woken by the
// claim-key deletion, split its unfinished remainder among themselves. Every
// write that claims or advances work is a transaction that first proves
// ownership: a checkpoint compares the claim key's create revision with the
// one the claimer got (the fencing token), so a member that lost its lease
// can never overwrite its successor's progress. Locally, a member stops work
// once its last keepalive acknowledgement plus the TTL, less a safety
// margin, has passed; it then joins again with a new lease and fresh claims.
//
// A broadcast that is over is archived after Config.ArchiveAfter: its
// summary is given to the Config.Reporter (Kafka, in the worker), then one
// transaction puts it at P/archive/<id> and deletes the broadcast's live
// keys. Members read and watch only the live keys, so a resync
// costs what is in flight, not every broadcast there ever was; summaries
// are deleted after Config.Retention.
//
// The package does not read audiences or send messages: that is the
// worker's job, driven by the Claims a Coordinator hands out. It does not
// parse broadcast specs either; the Registry stores them as opaque bytes.
// The etcd key layout and every transaction are described in docs/ETCD.md.
//
// # Goroutines and locks
//
// New starts nothing. A running Coordinator has these goroutines:
//
//   - Run's own, the caller's: it joins, reads and watches the view,
//     reconciles, claims, and once ctx ends, leaves. It is the only writer
//     of the Coordinator's state; the comment on Coordinator says, field by
//     field, who may read what. It ends when Run returns.
//   - The claim queue's, started by Run before its loop and stopped by Run
//     (a closed stop channel, then a wait) before the leave. It hands
//     claims to the worker on Claims in the order taken, so Run never waits
//     for the worker. Run closes Claims after it stopped.
//   - The archiver's, started by Run before its loop and stopped by Run (a
//     cancelled context, then a wait) before the leave. After each
//     reconcile Run's goroutine offers it the finished broadcasts this
//     member is to archive (the latest offer replaces one not yet taken);
//     it reads, reports and archives them, and sweeps expired summaries,
//     so a slow Kafka or etcd never holds up a reconcile. It touches no
//     state of the Coordinator but its own fields.
//   - Two per lease, that is per membership epoch, started by grantLease
//     (from join, on Run's goroutine): one renews the lease every TTL/4 and
//     moves the local deadline; the other ends the lease's context when the
//     deadline passes or the session ends. lease.release stops both and
//     waits for them; Run's goroutine calls it when the lease is lost
//     (fence), when a join fails, and on leave. The concurrency.Session
//     behind the lease runs etcd's keepalive goroutine, which release ends
//     (Session.Orphan, which waits) before revoking the lease.
//   - The etcd client's, behind the one watch on the live keys; Run's loop
//     cancels the watch when it breaks, when the lease is lost, and when the
//     loop ends.
//
// Not started here, but calling in: the worker's goroutines use a Claim's
// methods (Checkpoint, Finish, Handoff, Release, Context) and the
// accessors (Ready, Deadline, LiveMembers, BroadcastState, RateShare); a
// metrics scrape reads the lease deadline.
//
// Locks, in the order they are taken:
//
//  1. Claim.mu serialises one claim's writes and is held across the
//     write's transaction. A refused write ends the claim, and so takes
//     Coordinator.mu in forget, with it held. Run's goroutine takes it to
//     record a hand-off's moves and, on leave, to hand back the claims the
//     worker never saw; before dropping a claim the view shows lost it
//     only tries it (TryLock), so that a Finish, Handoff or Release in
//     flight ends its claim itself.
//  2. Coordinator.mu guards the held claims and the broadcast states. It is
//     held only to read or change those maps, never across an etcd call or
//     while taking another lock.
//
// claimQueue.mu guards the queue alone: no other lock is held while it is
// taken, and none is taken under it. The lease has no lock: its deadline
// is an atomic, set by grantLease and then moved only by the renewing
// goroutine.
package coordinator
