// Package wire is the glue of the example programs: it turns the values of
// one carbonlb package into those of another, in a few readable lines each.
//
//   - Feed turns membership events into balancer pools: each alive member
//     with an HTTP or HTTPS port becomes a backend of the pool named by
//     membership.Member.Pool ("domain/subDomain").
//   - MemberConfig turns a Carbon node's files (carbonconf.Node) into a
//     membership.Config.
//   - Services turns a loadbalancer.conf (carbonconf.LBConf) into balancer
//     services.
//
// The four packages do not import each other; this is where they meet.
package wire
