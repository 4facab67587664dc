//go:build !race

package mirror_test

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
