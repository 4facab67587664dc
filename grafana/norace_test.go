//go:build !race

package grafana_test

// raceEnabled: the tests run without -race.
const raceEnabled = false
