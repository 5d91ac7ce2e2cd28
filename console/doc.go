// Package console is Herald's web console: every broadcast live in a
// browser, with pause, resume, cancel and a form to trigger a new one.
//
// One Console serves any number of browsers from one etcd watch: its Run
// loop watches the key range a broadcast's status is made of
// (coordinator.Registry.StatusRange), re-reads the status of a broadcast
// whose keys changed at most once per Config.Interval, and pushes the
// result to every open page as a Server-Sent Event. A browser costs the
// fleet nothing; one too slow to take its events is dropped (its page
// reconnects and starts from a fresh snapshot) rather than held in memory.
//
// Reading is open to whoever reaches the listener, which is loopback by
// default. Actions need Config.Token, given as a bearer token or through
// the login form, which sets an HttpOnly, SameSite=Strict cookie; without
// a token the console is read-only. Every action is checked against
// cross-site requests (Sec-Fetch-Site and Origin, and a header a form
// cannot send) and logged. Pages show no secret value: a spec is shown as
// a summary (audience, endpoint origin and path, pacing), never as sent.
//
// The pages, script and style are embedded; nothing is built or fetched
// at run time. The package does not run workers or decide anything: state
// changes go through coordinator.Registry.SetState and triggers through
// the Producer it is given (package trigger), as the CLI's do.
package console
