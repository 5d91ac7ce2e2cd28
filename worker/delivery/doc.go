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
// A DeadLetterWriter appends failed deliveries to the dead-letter topic
// (herald.deadletters) and returns only once Kafka has acknowledged them.
//
// The package does not render, rate-limit, checkpoint or decide what to
// send; those are the worker's.
package delivery
