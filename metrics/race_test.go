//go:build race

package metrics

// raceEnabled is set when the tests run under the race detector.
const raceEnabled = true
