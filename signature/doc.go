// Package signature signs Herald's deliveries and lets an endpoint check
// them: proof that a request came from a Herald worker holding a shared
// key, over exactly this body, recently.
//
// A signed delivery carries one header:
//
//	Herald-Signature: t=1763892000,v1=5f0c…e21a
//
// t is the Unix time in seconds when the attempt was sent. Each v1 is the
// lowercase hex HMAC-SHA256, keyed with one signing key, of the bytes
//
//	<t as sent> "." <request body as sent>
//
// While a key is being rotated the worker holds two keys and sends two v1
// entries, one per key, so an endpoint that knows either accepts the
// request. Entries of other schemes (v0, v2, ...) are ignored by Verify, so
// a later scheme can be added beside v1 without breaking endpoints.
//
// An endpoint checks a request with Verify: at least one v1 must match one
// of its keys, and t must be within a tolerance of its clock (5 minutes by
// default) so that a captured request cannot be replayed later. Inside the
// tolerance a replay is possible; the delivery's Idempotency-Key makes a
// replayed delivery a duplicate the endpoint already handles.
//
// Every retry of a delivery is signed anew with a fresh t; the body and the
// Idempotency-Key stay the same.
//
// What it does not do: encrypt anything (use https), identify which worker
// sent a request, or keep keys: the caller reads them from wherever it keeps
// secrets (ParseKeys reads the usual one-key-per-line form).
package signature
