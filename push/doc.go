// Package push is what Herald's native device providers share: the
// message a provider delivers (Message), how one attempt's answer is
// judged (Answer, Verdict), and the loop that makes a delivery out of
// attempts (Retrier): the fence and the allowlist asked before every
// attempt, each attempt bounded, retries as the provider asks (its
// Retry-After honoured), and a quota answer that holds every delivery of
// the broadcast on this worker for a while.
//
// The providers are its subpackages: apns (Apple, HTTP/2 with a .p8
// provider token), fcm (Firebase Cloud Messaging HTTP v1 with a service
// account) and webpush (RFC 8030 with RFC 8291 encryption and RFC 8292
// VAPID). Each has a fake of the real service in a test package beside it
// (apnstest, fcmtest, webpushtest) that tests, `herald dev` and
// `herald demo` run against.
//
// A Result is the webhook's delivery.Result, and a token the provider
// declared dead for good is reported in it (Result.Gone), so the worker
// fails the record, writes its dead letter and produces the token to the
// invalid-token topic. The package does not render, checkpoint or decide
// what to send; those are the worker's.
package push
