//go:build race

package grafana_test

// raceEnabled: the tests run with -race, so kmt is built with -race too
// (reusing the race-instrumented build cache, and catching data races in
// the live run).
const raceEnabled = true
