//go:build front_nethttp

package front

// DefaultEngine is the engine of a zero Engine: EngineNetHTTP in this
// build, with the front_nethttp tag (EngineAuto without it).
const DefaultEngine = EngineNetHTTP
