// Package front runs one load-balancer instance of the example programs: a
// balancer.Balancer served on a listener, optionally a member of the cluster
// that feeds its pools from membership events, with a /healthz endpoint for
// whatever fronts it (a DNS responder, a cloud balancer) and a graceful
// drain.
package front
