// Package listen opens the sockets of the example programs on their
// conventional ports (the Carbon defaults shifted by a port offset, the
// balancer's 8290) and falls back to a free port when one is taken, saying
// so, so that a demonstration runs on a busy machine and in tests. Proxy
// makes a listener speak the PROXY protocol with a trusted TCP front.
package listen
