// Package hosts maps host names to addresses for a cluster: it edits hosts(5)
// files without losing a byte, resolves names hosts-then-DNS with a cache,
// picks local addresses from go-sockaddr templates, and serves a live record
// set from a small DNS responder.
//
// # Hosts files
//
// [Parse] and [Load] keep every line of a hosts file, including comments,
// blank lines, lines that do not parse (reported by [File.Warnings]) and
// CRLF line endings, so that [File.WriteTo] of an unedited file writes the
// input back byte for byte. [File.Set] and [File.Remove] edit only the lines
// they must, and [File.Save] replaces the file atomically:
//
//	f, err := hosts.Load("/etc/hosts")
//	if err != nil { … }
//	lb := netip.MustParseAddr("10.0.0.10")
//	f.Set("mgt.as.example.com", lb)
//	f.Set("as.example.com", lb)
//	err = f.Save("/etc/hosts")
//
// # Resolver
//
// A [Resolver] answers [Resolver.LookupAddr] from, in order: IP literals,
// static entries, a hosts file (re-read when it changes, checked at most
// once a second), a cache, and DNS through github.com/miekg/dns: A and AAAA
// in parallel, UDP with a TCP retry when the answer is truncated, EDNS0,
// search domains and ndots as in resolv.conf(5) (the next search domain
// after a name the servers failed or refused to answer, as glibc does), the
// next server on a timeout, an unreachable server, SERVFAIL or REFUSED.
// Positive answers are cached for their TTL and negative ones for their
// SOA's (RFC 2308), both capped, a TTL of 2^31 or more counting as 0
// (RFC 2181); at most 32 addresses are kept per answer unless configured
// otherwise. Concurrent lookups of one name share one query. Its
// LookupAddr method has the signature func(context.Context, string)
// ([]netip.Addr, error), so it plugs into any code that takes such a
// function.
//
// The zero [ResolverConfig] reads no system file; [DefaultResolverConfig]
// reads /etc/hosts and /etc/resolv.conf.
//
// # Local addresses and the DNS responder
//
// [LocalAddr] turns a template such as `{{ GetPrivateIP }}` into the one
// address a node should bind or advertise. A [Server] answers A, AAAA and
// PTR queries for names that a program sets at runtime, for example the live
// members of a cluster under stable names; it serves any [net.PacketConn]
// and [net.Listener] the caller opens. It answers NXDOMAIN for unpublished
// names in its forward and reverse zones and REFUSED outside them, refuses
// zone transfers, and speaks EDNS as RFC 6891 says.
//
// # Concurrency and ownership
//
// A [File] is a value for one goroutine at a time. A [Resolver] and a
// [Server] are safe for concurrent use. Slices of addresses returned by
// [Resolver.LookupAddr] and [Server.Lookup] are shared and must not be
// modified; [File.Lookup] returns a copy. A Resolver has goroutines only
// while DNS queries are in flight, and [Resolver.Close] stops them; a
// Server's goroutines stop with [Server.Shutdown].
package hosts
