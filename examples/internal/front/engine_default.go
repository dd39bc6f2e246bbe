//go:build !front_nethttp

package front

// DefaultEngine is the engine of a zero Engine: EngineAuto, or
// EngineNetHTTP in a build with the front_nethttp tag (which runs the
// example programs' tests with net/http's server).
const DefaultEngine = EngineAuto
