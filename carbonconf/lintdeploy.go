package carbonconf

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// StockSvnURL is the SvnUrl of a stock carbon.xml, a placeholder that names
// no repository.
const StockSvnURL = "http://svnrepo.example.com/repos/"

// lintWKAManager reports clustered workers whose well-known members do not
// include a manager: seeds 000 and 001 make the manager a worker's
// well-known member, since the deployment synchronizer needs it.
func lintWKAManager(clustered []linted, add addFunc) {
	var managers []linted
	for _, l := range clustered {
		if l.id.SubDomain == RoleManager && l.id.LocalMemberHost != "" {
			managers = append(managers, l)
		}
	}
	if len(managers) == 0 {
		return
	}
	var names []string
	for _, m := range managers {
		names = append(names, net.JoinHostPort(m.id.LocalMemberHost, strconv.Itoa(m.id.LocalMemberPort)))
	}
	for _, l := range clustered {
		cl := l.n.Axis2.Clustering
		if l.id.SubDomain != RoleWorker || !equalFold(cl.MembershipScheme.Value, "wka") || len(cl.Members) == 0 {
			continue
		}
		found := false
		for _, m := range cl.Members {
			for _, mgr := range managers {
				if matchesWKA(m.Addr(), mgr.id.LocalMemberHost, mgr.id.LocalMemberPort) {
					found = true
				}
			}
		}
		if !found {
			add(Warning, CodeWKANoManager, l.axf, cl.Members[0].Line, cl.Members[0].Col,
				"the well-known members do not include the manager (%s): add it, since the deployment synchronizer finds the manager through them (seeds 000, 001)",
				strings.Join(names, ", "))
		}
	}
}

// lintSvnURL reports nodes that check out deployment artifacts from another
// repository than the one the committer (the manager) commits to: they
// never see what is deployed on the manager.
func lintSvnURL(ls []linted, committer linted, add addFunc) {
	want := committer.n.Carbon.DeploymentSynchronizer.SvnURL
	if want.Value == "" {
		return
	}
	for _, l := range ls {
		if l.n == committer.n || l.n.Carbon == nil {
			continue
		}
		ds := l.n.Carbon.DeploymentSynchronizer
		if ds == nil || !ds.Enabled.Bool() || ds.AutoCommit.Bool() {
			continue // not synchronized, or a committer (multiple-committers)
		}
		got := ds.SvnURL
		if strings.TrimSuffix(got.Value, "/") == strings.TrimSuffix(want.Value, "/") {
			continue
		}
		line, col := got.Line, got.Col
		if !got.Set() {
			line, col = ds.Line, ds.Col
		}
		what := strconv.Quote(got.Value)
		switch got.Value {
		case "":
			what = "no SvnUrl"
		case StockSvnURL:
			what = "the stock " + what
		}
		add(Error, CodeSvnURLMismatch, l.n.Carbon.File, line, col,
			"the deployment synchronizer checks out %s but %s commits to %q: set <SvnUrl>%s</SvnUrl>",
			what, committer.n.Carbon.File, want.Value, want.Value)
	}
}

// eprListeners are the transport receivers whose WSDLEPRPrefix seed 000's
// worker step sets, and the scheme of each.
var eprListeners = []struct{ class, scheme string }{
	{"PassThroughHttpListener", "http"},
	{"PassThroughHttpSSLListener", "https"},
}

// lintWSDLEPRPrefix reports a worker's WSDLEPRPrefix that does not name
// the balancer (seed 000's worker step, seed 003): the endpoints in the
// WSDLs the worker serves would send clients past it. The manager's is left
// alone, as the seeds leave it. The balancer's host is one of the
// hosts lb serves for the node's domain and subDomain, or, without lb or
// such hosts, the node's HostName; its port is the node's proxy port for
// the scheme, or, when none is set, one lb listens on.
func lintWSDLEPRPrefix(ls []linted, lb *LBConf, add addFunc) {
	for _, l := range ls {
		a := l.n.Axis2
		if a == nil || l.id.SubDomain != RoleWorker {
			continue
		}
		hosts := servedHosts(lb, l.id)
		if len(hosts) == 0 && l.id.HostName != "" {
			hosts = []string{l.id.HostName}
		}
		for _, t := range a.Receivers {
			scheme := receiverScheme(t)
			p, ok := t.Param("WSDLEPRPrefix")
			if scheme == "" || !ok || p.Value == "" {
				continue
			}
			wantPort := l.id.HTTPProxyPort
			if scheme == "https" {
				wantPort = l.id.HTTPSProxyPort
			}
			var ports []int
			switch {
			case wantPort != 0:
				ports = []int{wantPort}
			case lb != nil:
				ports = lb.Listen()
			}
			want := ""
			if len(hosts) > 0 {
				port := defaultPort(scheme)
				if len(ports) > 0 && !slices.Contains(ports, port) {
					port = ports[0]
				}
				want = scheme + "://" + net.JoinHostPort(hosts[0], strconv.Itoa(port))
			}
			fix := ""
			if want != "" {
				fix = ": set it to " + want
			}
			u, err := url.Parse(p.Value)
			if err != nil || u.Host == "" {
				add(Error, CodeWSDLEPRPrefix, a.File, p.Line, p.Col, "%s WSDLEPRPrefix %q is not a URL scheme://host:port%s", t.Name, p.Value, fix)
				continue
			}
			port := defaultPort(u.Scheme)
			if ps := u.Port(); ps != "" {
				port, _ = strconv.Atoi(ps)
			}
			switch {
			case u.Scheme != scheme:
				add(Error, CodeWSDLEPRPrefix, a.File, p.Line, p.Col, "%s WSDLEPRPrefix %s has scheme %s on the %s listener%s", t.Name, p.Value, u.Scheme, scheme, fix)
			case len(hosts) > 0 && !slices.ContainsFunc(hosts, func(h string) bool { return strings.EqualFold(h, u.Hostname()) }):
				add(Error, CodeWSDLEPRPrefix, a.File, p.Line, p.Col, "%s WSDLEPRPrefix %s names host %s, not the balancer's (%s)%s", t.Name, p.Value, u.Hostname(), strings.Join(hosts, ", "), fix)
			case len(ports) > 0 && !slices.Contains(ports, port):
				add(Error, CodeWSDLEPRPrefix, a.File, p.Line, p.Col, "%s WSDLEPRPrefix %s names port %d, not the balancer's (%s)%s", t.Name, p.Value, port, joinInts(ports), fix)
			}
		}
	}
}

// receiverScheme returns the scheme of a pass-through listener, "" for
// other receivers.
func receiverScheme(t Transport) string {
	for _, e := range eprListeners {
		if t.Class == e.class || strings.HasSuffix(t.Class, "."+e.class) {
			return e.scheme
		}
	}
	return ""
}

func defaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}

// servedHosts returns the hosts lb serves for the node's domain and
// subDomain (a domain entry without sub_domain serves every subDomain).
func servedHosts(lb *LBConf, id Identity) []string {
	if lb == nil {
		return nil
	}
	var out []string
	for _, s := range lb.Services {
		for _, d := range s.Domains {
			if d.Domain != id.Domain || d.SubDomain != "" && d.SubDomain != id.SubDomain {
				continue
			}
			for _, h := range d.Hosts {
				if !slices.Contains(out, h) {
					out = append(out, h)
				}
			}
		}
	}
	return out
}
