//go:build race

package coordinator

// raceEnabled shrinks the soak tests: the race detector makes building and
// decoding ring arcs about ten times slower.
const raceEnabled = true
