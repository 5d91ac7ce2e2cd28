//go:build race

package coordinator

// raceEnabled skips the fleet simulation: a thousand members are too slow
// under the race detector.
const raceEnabled = true
