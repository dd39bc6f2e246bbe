//go:build !balancer_engine

package balancer

// ownEngine says that the tests' front servers are net/http's: this build
// has no balancer_engine tag.
const ownEngine = false
