//go:build race

package coordinator

// raceEnabled is whether the race detector is on: the fleet simulation is
// too slow under it.
const raceEnabled = true
