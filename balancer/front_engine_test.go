//go:build balancer_engine

package balancer

// ownEngine says that the tests' front servers are the balancer's own
// engine: this build has the balancer_engine tag.
const ownEngine = true
