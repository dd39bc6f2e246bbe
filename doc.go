// Package carbonlb is the overview of a library that runs, in code, a
// worker/manager separated application cluster in the style of WSO2 Carbon
// and the sticky load balancer in front of it.
//
// The module has four independent packages; none imports another, and a
// program composes them in a few lines (see the examples directory):
//
//   - [github.com/carbonlb/carbonlb/membership] joins nodes into a cluster
//     through well-known addresses (WKA) on top of hashicorp/memberlist. Each
//     member advertises a domain, a sub-domain (worker or mgt) and a few
//     properties such as its HTTP and HTTPS ports.
//   - [github.com/carbonlb/carbonlb/balancer] is a sticky, service-aware HTTP
//     and HTTPS load balancer: an [net/http.Handler] that sends the management
//     host to the manager pool and the service hosts to the worker pool, keeps
//     each JSESSIONID on one backend, and hides failed backends from users.
//   - [github.com/carbonlb/carbonlb/carbonconf] reads, edits without losing a
//     byte, and validates the Carbon configuration files (axis2.xml,
//     carbon.xml, catalina-server.xml, loadbalancer.conf) of a whole cluster.
//   - [github.com/carbonlb/carbonlb/hosts] edits hosts files, resolves names
//     hosts-then-DNS with a cache, finds local addresses, and serves cluster
//     names from a small DNS responder.
//
// The usual wiring: carbonconf turns a node's files into a membership
// configuration and a loadbalancer.conf into a balancer configuration;
// membership events become balancer backends (a member's domain and
// sub-domain name its pool); hosts resolves the well-known members' names and
// publishes the healthy balancer instances.
//
// This package holds no code; it exists for this documentation.
package carbonlb
