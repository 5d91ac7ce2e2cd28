// Package spec reads broadcast specs, the value of a trigger message (SPEC
// section 2): Parse checks a spec's JSON strictly (unknown fields,
// duplicate keys and wrong types are refused, each naming its field),
// validates every field, compiles the template and fills in the endpoint's
// defaults; Canonical gives the one form a spec is stored in. A refusal is
// an *Error naming the broadcast when it can, the field and the limit
// passed, if any.
//
// The package does not decide whether a fleet may run a valid spec: the
// endpoint allowlist (package allowlist), the secrets a spec names and the
// audience directory are the workers' checks. It neither produces nor
// consumes triggers (package trigger produces them, package worker
// consumes them) and keeps no state.
package spec
