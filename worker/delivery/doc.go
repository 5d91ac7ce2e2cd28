// Package delivery sends rendered deliveries to a broadcast's endpoint and
// records the ones that fail for good.
//
// A Sender POSTs one delivery (docs/CONTRACTS.md, "A delivery") with its
// idempotency key, retrying as the endpoint's answer asks (the policy table
// is on classify), and reports one Result: Delivered, Failed, or Aborted
// when the caller's context ended first. Aborted is not a failure: the
// message is unfinished and the next owner of its work unit sends it again
// under the same key. A Sender is safe for concurrent use; the worker calls
// it from a fixed pool of max_in_flight goroutines and the Sender's
// connection pool is sized to match.
//
// Where the delivery contract leaves a choice open, the Sender does not
// follow redirects (a 3xx fails the delivery: net/http would re-send a POST
// as a GET), fails a rejected TLS certificate at once rather than retrying
// it, waits at least BackoffMin even when Retry-After says 0, and retries
// every 5xx, 501 Not Implemented included. Connections honour HTTP_PROXY,
// HTTPS_PROXY and NO_PROXY as net/http's defaults do.
//
// Before every attempt the Sender asks Config.Allow whether the URL may be
// dialed (the worker's endpoint allowlist), so a refused URL is never
// contacted; with Config.SigningKeys each attempt is signed anew with a
// Herald-Signature header (package signature), and Config.Authorization is
// sent as is. Answers are bounded: MaxResponseBytes of body are read,
// MaxResponseHeaderBytes of headers accepted.
//
// Config.HTTP2 picks the HTTP version: by default HTTP/2 where TLS
// negotiates it (ALPN) and HTTP/1.1 otherwise, plain http:// included;
// HTTP2Off is HTTP/1.1 only, HTTP2H2C HTTP/2 by prior knowledge without
// TLS. A Pool keeps one transport per mode, each with the same bounds; over
// HTTP/2 a Sender's sends are streams multiplexed on a few connections, as
// many on each as the endpoint allows.
//
// Each Sender has a circuit breaker, so one broadcast's endpoint going down
// pauses that broadcast rather than failing every message in flight. When
// most recent attempts (by default 16 of the last 20 within 10 s, at least
// 10 of them) failed as an unavailable endpoint fails them (5xx, 429, a
// timeout or connection error), the breaker opens: every attempt about to
// start, the first of a Send too, waits, and one probe at a time goes out,
// at intervals doubling from BackoffMin to BreakerProbeMax or as the
// endpoint's Retry-After says. The first answer that is not such a failure
// (2xx, 409, or a refusal) closes it and every waiter goes. A transient
// failure while the breaker is open does not count towards MaxAttempts
// (Result.Attempts still counts every request started), so the outage
// fails nothing; one with the breaker closed does, so a message the
// endpoint keeps refusing with 500 while others get 200 fails after
// MaxAttempts as before. A wait ends at once with the Send's context,
// Fence is asked before every attempt, probes included, and a delivery
// waits BreakerMaxWait in all at most before it is sent regardless and its
// attempts count again, so a broadcast cannot stall for good on messages
// only the endpoint fails. Sender.Waiting reports an open breaker, for
// status.
//
// A DeadLetterWriter appends failed deliveries to the dead-letter topic
// (herald.deadletters) and returns only once Kafka has acknowledged them.
// A DeadLetterQueue stands in front of it so that senders do not wait on
// Kafka: Enqueue hands a letter over and returns, one goroutine writes the
// queue in batches (DeadLetterWriter.WriteBatch), each with a deadline, and
// retries failed writes with backoff until Kafka takes them, calling each
// letter's done once it has. The queue is bounded: while Kafka is down it
// fills, and then Enqueue blocks until there is room or its context ends,
// so the caller's work stops advancing, with nothing lost and nothing
// skipped. Close writes what is left within a deadline and reports the
// letters it could not write to their done.
//
// The package does not render, rate-limit, checkpoint or decide what to
// send; those are the worker's.
package delivery
