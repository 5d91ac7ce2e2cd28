// Package worker is one member of the Herald fleet. A Worker takes broadcast
// triggers from Kafka and registers them (trigger intake), and streams,
// renders and sends the work units its coordinator claims for it: a unit
// runner per claimed unit, a send pool per broadcast, progress tracked per
// unit and written as fenced checkpoints. It exports its Prometheus metrics
// and serves /metrics, /healthz and /readyz (Worker.Handler).
//
// It does not coordinate: membership, claims, checkpoints, hand-over and
// broadcast state live in package coordinator, which the worker is built
// around. One delivery with its retry policy, and dead letters, are
// worker/delivery; reading audiences is worker/audience. The broadcast spec
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
//     all three have returned. When Run's context ends, intake stops and
//     the claim loop takes no more claims; the coordinator, leaving the
//     fleet, asks for every unit back, waits for the hand-backs (at most
//     its LeaveTimeout) and ends every claim still held.
//   - Intake reads the trigger topic until its context ends, then closes
//     its Kafka reader.
//   - The claim loop starts one unit runner goroutine per claim and reaps
//     each when it returns. On its way out it keeps reaping until every
//     runner has returned: runners end when the coordinator ends their
//     claims (on hand-back or lease loss), not when the loop's context ends.
//   - A unit runner (unitRun.run) starts its unit's checkpoint loop and
//     stops it, closing a channel and waiting, before it writes the unit's
//     final progress. It returns only once nothing it dispatched is still
//     being sent, or what is left has been given up to the next owner, and
//     once its claim is over: the last write (finish or hand-back) is
//     retried while etcd fails to answer, and the claim released if it
//     cannot be written (settle), so no claim outlives its runner.
//   - A claim that never started is handed back on a goroutine of its own,
//     which the claim loop counts and waits for with its runners.
//   - A broadcast run (broadcastRun) is started by the claim loop with the
//     broadcast's first unit on this worker: newBroadcastRun starts the send
//     pool (max_in_flight goroutines shared by the broadcast's units) and
//     the state watcher (broadcast state and this worker's share of the
//     rate). When the last unit of the broadcast returns, the claim loop
//     calls stop, which closes the pool's queue and waits for the pool,
//     closes the broadcast's idle connections, then cancels the watcher and
//     waits for it.
//
// Nothing here starts a goroutine per subscriber: a broadcast's sends, over
// all its units on this worker, go through its fixed pool. Every Send also
// holds one of the worker's send slots (Config.MaxInFlight), shared fairly
// between the broadcasts that want them, so the sends and connections of
// many broadcasts at once stay bounded too.
package worker
