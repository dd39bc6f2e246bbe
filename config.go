package carbonlb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/hosts"
	"github.com/carbonlb/carbonlb/membership"
)

// Resolver looks up the addresses of a host name. [hosts.Resolver]
// implements it: a caching resolver of static names, a hosts file, then
// DNS.
type Resolver interface {
	LookupAddr(ctx context.Context, host string) ([]netip.Addr, error)
}

var _ Resolver = (*hosts.Resolver)(nil)

// MemberConfig turns a Carbon node's clustering section into a membership
// configuration: domain, sub-domain, localMemberHost (advertised and bound),
// localMemberBindAddress (bound, when set), localMemberPort, the well-known
// members, and the member properties with ${hostName} and ${httpsPort}
// expanded, plus the node's HTTP and HTTPS ports after the offset
// (membership.PropHTTPPort, PropHTTPSPort) and its host name
// (PropHostName), and its Engine's jvmRoute (PropRoute). The rest is
// membership.DefaultConfig's.
//
// r, when not nil, resolves the well-known members given by host name, and
// localMemberHost and localMemberBindAddress when they are host names (as
// in seed 004; membership.Join looks them up at each join): Config.Resolve
// is r.LookupAddr, so that they follow a hosts file and DNS as the Carbon
// guides' "add host entries on all nodes" expects; nil means membership's
// default, the system resolver.
//
// It fails when clustering is not enabled, the scheme is not wka, or a
// value is missing or not usable (such as an installer placeholder,
// reported by carbonconf.Node.Identity), naming the file and line. An
// error expanding a property leaves the property out and is returned with
// the configuration.
func MemberConfig(n *carbonconf.Node, r Resolver) (membership.Config, error) {
	id, err := n.Identity()
	if err != nil {
		return membership.Config{}, err
	}
	file := n.Name()
	if n.Axis2 != nil && n.Axis2.File != "" {
		file = n.Axis2.File
	}
	switch {
	case n.Axis2 == nil || n.Axis2.Clustering == nil:
		return membership.Config{}, fmt.Errorf("carbonlb: %s: no <clustering> section", file)
	case !id.ClusteringEnabled:
		return membership.Config{}, fmt.Errorf("carbonlb: %s:%d: clustering is not enabled (enable=\"true\")", file, n.Axis2.Clustering.Line)
	case id.MembershipScheme != "" && id.MembershipScheme != "wka":
		return membership.Config{}, fmt.Errorf("carbonlb: %s:%d: membershipScheme %q: only wka is supported", file, n.Axis2.Clustering.MembershipScheme.Line, id.MembershipScheme)
	case id.Domain == "":
		return membership.Config{}, fmt.Errorf("carbonlb: %s: clustering parameter domain is not set", file)
	case id.LocalMemberHost == "":
		return membership.Config{}, fmt.Errorf("carbonlb: %s: clustering parameter localMemberHost is not set", file)
	}
	cfg := membership.DefaultConfig(id.Domain)
	cfg.SubDomain = id.SubDomain
	cfg.AdvertiseAddr = id.LocalMemberHost
	cfg.BindAddr = id.LocalMemberHost
	if b := n.Axis2.Clustering.LocalMemberBindAddress; b.Value != "" {
		cfg.BindAddr = b.Value
	}
	cfg.Port = id.LocalMemberPort
	cfg.WKA = id.WKA
	if r != nil {
		cfg.Resolve = r.LookupAddr
	}
	cfg.Properties = make(map[string]string)
	var errs []error
	for name, v := range id.Properties {
		if name == "subDomain" {
			continue // carried by Config.SubDomain
		}
		x, err := n.Expand(v, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("carbonlb: %s: property %s: %w", file, name, err))
			continue
		}
		cfg.Properties[name] = x
	}
	if id.HTTPPort > 0 {
		cfg.Properties[membership.PropHTTPPort] = strconv.Itoa(id.HTTPPort)
	}
	if id.HTTPSPort > 0 {
		cfg.Properties[membership.PropHTTPSPort] = strconv.Itoa(id.HTTPSPort)
	}
	if id.HostName != "" {
		cfg.Properties[membership.PropHostName] = id.HostName
	}
	if id.JVMRoute != "" {
		cfg.Properties[PropRoute] = id.JVMRoute // catalina-server.xml's Engine jvmRoute
	}
	return cfg, errors.Join(errs...)
}

// Services turns a loadbalancer.conf into balancer services: one per domain
// of each service, named "service/domain[/subDomain]", routing the domain's
// hosts and tenant range to the pool "domain[/subDomain]" that
// [membership.Member.Pool] names, with min_app_instances as MinInstances.
// Every service is balancer.DefaultService's: it learns JSESSIONID; the
// loadbalancer block's session_timeout (milliseconds), when set, is the
// sessions' idle lifetime. The services keep file order, so the first
// domain whose tenant range holds a request's tenant wins. No service is the
// Default one: loadbalancer.conf has no such notion, so a caller that wants
// requests for other hosts (or by IP address) served sets
// balancer.Service.Default on one.
//
// It fails when session_timeout is not a number of milliseconds or no
// service has a domain.
func Services(lb *carbonconf.LBConf) ([]balancer.Service, error) {
	var ttl time.Duration
	if v, ok := lb.LoadBalancer["session_timeout"]; ok {
		ms, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || ms < 0 {
			return nil, fmt.Errorf("carbonlb: %s: loadbalancer session_timeout %q: want milliseconds", lb.File, v)
		}
		ttl = time.Duration(ms) * time.Millisecond
	}
	var out []balancer.Service
	for _, s := range lb.Services {
		for _, d := range s.Domains {
			pool := d.Domain
			if d.SubDomain != "" {
				pool += "/" + d.SubDomain
			}
			svc := balancer.DefaultService(s.Name+"/"+pool, pool, d.Hosts...)
			svc.TenantRange = d.TenantRange
			svc.MinInstances = d.MinAppInstances
			if ttl > 0 {
				svc.Sticky.TTL = ttl
			}
			out = append(out, svc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("carbonlb: %s: no service with a domain", lb.File)
	}
	return out, nil
}

// Pools returns the pool names of services, in order, once each.
func Pools(services []balancer.Service) []string {
	seen := make(map[string]bool)
	var out []string
	for _, s := range services {
		if !seen[s.Pool] {
			seen[s.Pool] = true
			out = append(out, s.Pool)
		}
	}
	return out
}
