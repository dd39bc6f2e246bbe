package wire

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/membership"
)

// MemberConfig turns a Carbon node's clustering section into a membership
// configuration: domain, sub-domain, localMemberHost (advertised and bound),
// localMemberBindAddress (bound, when set), localMemberPort, the well-known
// members, and the member properties with ${hostName} and ${httpsPort}
// expanded, plus the node's HTTP and HTTPS ports after the offset and its
// host name. The timing is membership's LAN default.
//
// It fails when clustering is not enabled, the scheme is not wka, a value is
// missing or not usable (such as an installer placeholder), or
// localMemberHost is a host name rather than an address (or a go-sockaddr
// template), naming the file and line.
func MemberConfig(n *carbonconf.Node) (membership.Config, error) {
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
		return membership.Config{}, fmt.Errorf("%s: no <clustering> section", file)
	case !id.ClusteringEnabled:
		return membership.Config{}, fmt.Errorf("%s:%d: clustering is not enabled (enable=\"true\")", file, n.Axis2.Clustering.Line)
	case id.MembershipScheme != "" && id.MembershipScheme != "wka":
		return membership.Config{}, fmt.Errorf("%s:%d: membershipScheme %q: only wka is supported", file, n.Axis2.Clustering.MembershipScheme.Line, id.MembershipScheme)
	case id.Domain == "":
		return membership.Config{}, fmt.Errorf("%s: clustering parameter domain is not set", file)
	case id.LocalMemberHost == "":
		return membership.Config{}, fmt.Errorf("%s: clustering parameter localMemberHost is not set", file)
	}
	if _, err := netip.ParseAddr(id.LocalMemberHost); err != nil && !strings.Contains(id.LocalMemberHost, "{{") {
		return membership.Config{}, fmt.Errorf("%s:%d: localMemberHost %q is not an IP address: cluster members are reached by address (override it with the address of this host)",
			file, n.Axis2.Clustering.LocalMemberHost.Line, id.LocalMemberHost)
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
	cfg.Properties = make(map[string]string)
	var errs []error
	for name, v := range id.Properties {
		if name == "subDomain" {
			continue // carried by Config.SubDomain
		}
		x, err := n.Expand(v, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: property %s: %w", file, name, err))
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
	return cfg, errors.Join(errs...)
}

// Services turns a loadbalancer.conf into balancer services: one per domain
// of each service, named "service/domain[/subDomain]", routing the domain's
// hosts and tenant range to the pool "domain[/subDomain]" that membership
// names, with min_app_instances as MinInstances. Every service learns
// JSESSIONID; the loadbalancer block's session_timeout (milliseconds), when
// set, is the sessions' idle lifetime. The services keep file order, so the
// first domain whose tenant range holds a request's tenant wins.
func Services(lb *carbonconf.LBConf) ([]balancer.Service, error) {
	var ttl time.Duration
	if v, ok := lb.LoadBalancer["session_timeout"]; ok {
		ms, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || ms < 0 {
			return nil, fmt.Errorf("%s: loadbalancer session_timeout %q: want milliseconds", lb.File, v)
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
		return nil, fmt.Errorf("%s: no service with a domain", lb.File)
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

// StaticBackends parses "pool=url,url;pool=url" into backends by pool, each
// named by its pool and position ("pool#1"). It is how a program lists
// backends that are not cluster members.
func StaticBackends(s string) (map[string][]balancer.Backend, error) {
	out := make(map[string][]balancer.Backend)
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		pool, urls, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(pool) == "" {
			return nil, fmt.Errorf("static backends %q: want pool=url,url", part)
		}
		pool = strings.TrimSpace(pool)
		for i, u := range strings.Split(urls, ",") {
			u = strings.TrimSpace(u)
			if u == "" {
				continue
			}
			if !strings.Contains(u, "://") {
				u = "http://" + u
			}
			out[pool] = append(out[pool], balancer.Backend{ID: pool + "#" + strconv.Itoa(i+1), URL: u})
		}
	}
	return out, nil
}

// SidecarConfig returns the properties a sidecar announces for a backend that
// is not written in Go: its HTTP or HTTPS port, by the URL's scheme, and the
// URL's host as PropHostName. The backend's address must be an IP address,
// as cluster members are reached by address.
func SidecarConfig(backendURL string) (addr netip.Addr, props map[string]string, err error) {
	scheme, rest, ok := strings.Cut(backendURL, "://")
	if !ok {
		scheme, rest = "http", backendURL
	}
	hostport, _, _ := strings.Cut(rest, "/")
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return addr, nil, fmt.Errorf("backend %q: want scheme://ip:port: %w", backendURL, err)
	}
	props = map[string]string{membership.PropHostName: ap.Addr().String()}
	switch scheme {
	case "http":
		props[membership.PropHTTPPort] = strconv.Itoa(int(ap.Port()))
	case "https":
		props[membership.PropHTTPSPort] = strconv.Itoa(int(ap.Port()))
	default:
		return addr, nil, fmt.Errorf("backend %q: scheme %q: want http or https", backendURL, scheme)
	}
	return ap.Addr(), props, nil
}
