// Package worker is one member of the Herald fleet. A Worker takes broadcast
// triggers from Kafka and registers them (trigger intake), and streams,
// renders and sends the slots its coordinator claims for it: per
// broadcast, one reader over the audience for all the slots it holds and
// one checkpointer that writes all those slots' progress in
// one fenced transaction per tick. A slot's progress is its cursor and the
// records still unfinished behind it, so a slow record never holds the
// cursor back. It exports its Prometheus metrics and serves /metrics,
// /healthz and /readyz (Worker.Handler).
//
// It does not coordinate: membership, claims, checkpoints, hand-over and
// broadcast state live in package coordinator, which the worker is built
// around. One delivery with its retry policy, and dead letters, are
// worker/delivery; reading audiences is worker/audience. A broadcast whose
// endpoint.kind is apns, fcm or webpush sends each record through its
// provider (package push and its subpackages) instead of a webhook POST
// (push.go): the same fence and allowlist before every attempt, the same
// dead letters, and the tokens the provider declares dead produced to
// herald.invalid-tokens with them. The broadcast spec
// is parsed and validated by package spec, endpoints are checked against
// package allowlist, and triggers are produced by package trigger; the
// worker only applies them (intake rejects what they refuse, and the
// sender asks the allowlist again before every attempt).
//
// # Goroutines
//
// Every goroutine has one owner that stops it and waits for it:
//
//   - Worker.Run starts the coordinator's Run, trigger intake (unless
//     Config.NoIntake) and the claim loop in one errgroup, and returns once
//     all three have returned and it has closed the senders (which end
//     each after its record) and the idle connections of the worker's
//     pool. When Run's context ends, intake stops; the
//     coordinator, leaving the fleet, asks for every slot back, waits for
//     the hand-backs (at most its LeaveTimeout) and ends every claim still
//     held.
//   - Intake reads the trigger topic until its context ends, then closes
//     its Kafka reader.
//   - The claim loop gives each claim to its broadcast's run, starting the
//     run (newBroadcastRun) with the broadcast's first slot on this
//     worker, and stops a run (stop) once it holds no slot. On its way out
//     it keeps doing so until the coordinator has closed Claims and every
//     run has stopped: slots leave when the coordinator ends their claims
//     (hand-back on shutdown, or lease loss), not when the loop's context
//     ends.
//   - A claim that never started is handed back on a goroutine of its own
//     (settle: retried while etcd fails to answer, released if it cannot
//     be written), which the claim loop counts and waits for.
//   - The senders (senders) deliver the records of every broadcast: at
//     most one goroutine per send slot (Config.MaxInFlight), started when a
//     record finds none free and ended after a second without one.
//   - A broadcast run (broadcastRun) owns: the reader (readLoop: one pass
//     over the audience for every slot held, reopening behind for a late
//     slot), the checkpointer (checkpointLoop: one Write for all the
//     slots, and their finishes and hand-backs, tried again while etcd
//     fails to answer), the slot watcher (watchSlots: one for all the
//     slots held, each asked back or its claim ended), a goroutine per
//     claim it must release (a last write that could not be made: the
//     claim must not outlive its slot here), and the state watcher
//     (broadcast state and this worker's share of the rate). stop closes a
//     channel that ends the reader, the checkpointer and the slot watcher,
//     waits for
//     them and the releases, then waits for its records still with the
//     senders, then cancels the state watcher and waits for it.
//
// Nothing here starts a goroutine per subscriber, nor one per unit of a
// broadcast's max_in_flight: a broadcast's records are read once, and the
// reader hands each to the senders only once it holds one of the worker's
// send slots (Config.MaxInFlight, shared fairly between the broadcasts
// that want them, at most max_in_flight each) until the record is
// finished. Every broadcast's Sender sends over the worker's one
// connection pool (delivery.Pool, sized by the same bound), so the
// goroutines and connections of many broadcasts at once stay bounded by
// the worker's send slots, with a few goroutines per broadcast (its
// reader, checkpointer and watchers) besides.
package worker
