// Package sink provides Herald's reference receiving endpoint: an HTTP
// handler that accepts deliveries (the POSTs of docs/CONTRACTS.md, "A
// delivery"), counts requests, distinct idempotency keys and duplicates,
// overall and per broadcast, and serves the counts as JSON at GET /stats.
// It can inject latency, 429s and 5xx answers to exercise a sender's
// retries, go down for a set window (an outage), and refuse a fixed share
// of keys with 400 (bad subscribers), both chosen deterministically so a
// test knows in advance what the endpoint answered.
//
// It keeps a 128-bit hash of every key it has delivered, nothing else per
// request, so memory grows with distinct keys only. It does not store or
// forward messages, and it is not meant to face the internet.
//
// Routes:
//
//	POST <any path>    a delivery (except the two control paths below)
//	GET  /stats        Stats as JSON; with ?reset=1 the counters are
//	                   cleared after the snapshot is taken
//	POST /reset        clear every counter and the key set (204)
//
// A delivery is answered:
//
//	400  no Idempotency-Key header, an unreadable body, or (strict mode)
//	     a body that is not JSON or a key that is not printable ASCII of
//	     at most 200 characters, or (Config.Refuse400) a refused key
//	503  (Config.OutageFor; or the status set) during the outage window,
//	     at once and to every delivery
//	401  (with Config.VerifyKeys) a Herald-Signature that is missing,
//	     malformed, stale or made with another key
//	413  a body larger than Config.MaxBody
//	431  headers larger than Config.MaxHeaderBytes (net/http's answer)
//	429  injected, with Retry-After
//	500  injected
//	503  injected, with Retry-After; with Config.Retry also the first
//	     deliveries of a fixed share of keys
//	200  the key is new: it is now delivered
//	409  the key was delivered before: a duplicate, still delivered as
//	     far as the sender is concerned (a sender counts 409 as delivered)
//
// Injected answers and abandoned requests never mark a key delivered.
//
// A POST whose body is a JSON array is a batch (docs/CONTRACTS.md, "A
// batch of deliveries"): each object in it is a delivery with its own
// idempotency_key, counted as a request of its own would be. Answers that
// concern the whole request (400 for a body that is not an array of
// objects, 401, 413, the outage, an injected 429 or 5xx, an abandoned
// request) answer every item; otherwise the sink answers 200 with
// {"results":[{"idempotency_key":K,"status":S},...]}, one per item in
// order, S being what the item alone would have been answered (200, 409,
// 400 for a refused key or an item without a key, 503 with a
// "retry_after" in seconds for a key Config.Retry holds back).
package sink
