// Package carbonlb runs, in code, a worker/manager separated application
// cluster in the style of WSO2 Carbon and the sticky load balancer in front
// of it. This package is where the module's four packages meet; each of
// them is usable alone, and none imports another or this one:
//
//   - [github.com/carbonlb/carbonlb/membership] joins nodes into a cluster
//     through well-known addresses (WKA) on top of hashicorp/memberlist. Each
//     member advertises a domain, a sub-domain (worker or mgt) and a few
//     properties such as its HTTP and HTTPS ports.
//   - [github.com/carbonlb/carbonlb/balancer] is a sticky, service-aware HTTP
//     and HTTPS load balancer: a [net/http.Handler] that sends the management
//     host to the manager pool and the service hosts to the worker pool, keeps
//     each JSESSIONID on one backend, and hides failed backends from users.
//   - [github.com/carbonlb/carbonlb/carbonconf] reads, edits without losing a
//     byte, and validates the Carbon configuration files (axis2.xml,
//     carbon.xml, catalina-server.xml, loadbalancer.conf) of a whole cluster.
//   - [github.com/carbonlb/carbonlb/hosts] edits hosts files, resolves names
//     hosts-then-DNS with a cache, finds local addresses, and serves names
//     from a small DNS responder.
//
// # What this package composes
//
// A program that embeds the packages needs the same few joints, and this
// package holds them:
//
//   - [Feed] keeps a balancer's pools equal to a cluster's live members: a
//     member's domain and sub-domain name its pool ([membership.Member.Pool]),
//     its cluster address and HTTP or HTTPS port property its backend URL
//     ([MemberBackend]). The node that runs the Feed is never its own
//     backend, nor is a member marked as a balancer ([IsBalancer]).
//   - [MemberConfig] turns a Carbon node's files ([carbonconf.Node]) into a
//     [membership.Config], whose well-known members resolve through a
//     [Resolver] such as a [hosts.Resolver].
//   - [Services] turns a loadbalancer.conf ([carbonconf.LBConf]) into
//     balancer services, one per service domain, whose pools are those a
//     Feed sets.
//   - [SessionSync] shares the sessions balancer instances learn
//     (balancer.StickyLearn) over the cluster: its [balancer.SessionTable]
//     reports each change and membership carries it to the other instances
//     ([membership.Node.Broadcast]); an instance that starts fetches a
//     running one's table ([membership.Node.RequestState]). A client may
//     then reach any instance, and an instance may restart, without losing
//     its session.
//   - [Zone] keeps the records of a [hosts.Server] equal to the live members:
//     worker.<zone> and mgt.<zone> answer with the live workers and managers,
//     lb.<zone> with the live balancer instances, so names follow the
//     cluster instead of being hand-edited into hosts files on every node.
//
// A balancer that is itself a cluster member, as the Elastic Load Balancer
// of the Carbon guides is, and learns its pools from the cluster:
//
//	lb, err := balancer.New(cfg) // cfg.Services from Services(lbconf), or by hand
//	…
//	node, err := membership.Join(ctx, mc) // mc from MemberConfig(carbonNode, resolver), or by hand
//	…
//	feed, err := carbonlb.NewFeed(lb, carbonlb.FeedConfig{})
//	…
//	go feed.Run(ctx, node) // until ctx is done or node is closed
//	http.ListenAndServe(":80", lb)
//
// # Concurrency and ownership
//
// Feed, SessionSync and Zone are safe for concurrent use. Their Run methods block until
// the context is done or the node is closed, on a goroutine the caller
// starts and owns; they start none of their own. The caller owns the node,
// the balancer and the DNS server, and closes them after Run has returned.
package carbonlb
