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
// The package does not read audiences or send messages: that is the
// worker's job, driven by the Claims a Coordinator hands out. It does not
// parse broadcast specs either; the Registry stores them as opaque bytes.
// The etcd key layout and every transaction are described in docs/ETCD.md.
package coordinator
