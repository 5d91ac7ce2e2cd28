//go:build race

package coordinator

// raceEnabled shrinks the soak tests and skips the fleet simulation: the
// race detector makes a thousand members, and every etcd round trip, about
// ten times slower.
const raceEnabled = true
