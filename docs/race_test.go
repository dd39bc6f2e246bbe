//go:build race

package docs

// raceEnabled: the test binary was built with -race, and so were the
// packages the snippets import.
const raceEnabled = true
