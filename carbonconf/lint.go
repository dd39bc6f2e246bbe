package carbonconf

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Severity ranks a Finding.
type Severity int

// Severities, most serious first.
const (
	// Error: the cluster will not form or will misbehave as configured.
	Error Severity = iota
	// Warning: it works, but against the seeds' advice or unsafely.
	Warning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// MarshalText makes a Severity print as its name in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding is one problem Lint found: where, a stable code, and a message
// that says what to change. docs/carbonconf.md documents every code.
type Finding struct {
	Severity Severity
	Code     string // stable, e.g. "wka-few-members"
	File     string
	Line     int // 1-based, 0 when the problem is an absent setting
	Col      int
	Message  string
}

// String formats the finding as "file:line:col: code: message".
func (f Finding) String() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", displayName(f.File), f.Line, f.Col, f.Code, f.Message)
}

// The lint codes. Each is documented in docs/carbonconf.md.
const (
	CodeWKAFewMembers        = "wka-few-members"
	CodeWKANoMembers         = "wka-no-members"
	CodeWKAUnknownMember     = "wka-unknown-member"
	CodeDomainMismatch       = "domain-mismatch"
	CodeDuplicateMember      = "duplicate-member"
	CodePortCollision        = "port-collision"
	CodeClusteringDisabled   = "clustering-disabled"
	CodeWorkerAutoCommit     = "worker-autocommit"
	CodeMultipleCommitters   = "multiple-committers"
	CodeNoManager            = "no-manager"
	CodeSubDomainMissing     = "subdomain-missing"
	CodeSubDomainUnknown     = "subdomain-unknown"
	CodeProxyPortNotListened = "proxy-port-not-listened"
	CodeLBNoNode             = "lb-no-node"
	CodeMgtHostNotServed     = "mgt-host-not-served"
	CodeDefaultPassword      = "default-keystore-password"
	CodePlaintextSecret      = "plaintext-secret"
	CodeHostNameUnset        = "hostname-unset"
	CodeNotANumber           = "not-a-number"
	CodeLBUnclosedBlock      = "lb-unclosed-block"
	CodeWKABadRange          = "wka-bad-range"
	CodeWKANoManager         = "wka-no-manager"
	CodeWSDLEPRPrefix        = "wsdl-epr-prefix-mismatch"
	CodeSvnURLMismatch       = "svn-url-mismatch"
)

// linted is a node with its identity computed once.
type linted struct {
	n   *Node
	id  Identity
	axf string // axis2.xml file name
}

// Lint checks a whole cluster: every node's files on their own, the nodes
// against each other, and the balancer's loadbalancer.conf (nil when there
// is none) against the nodes. Findings come sorted by file, line and
// column.
func Lint(nodes []*Node, lb *LBConf) []Finding {
	var fs []Finding
	add := func(sev Severity, code, file string, line, col int, format string, args ...any) {
		fs = append(fs, Finding{Severity: sev, Code: code, File: file, Line: line, Col: col, Message: fmt.Sprintf(format, args...)})
	}
	type pos struct {
		file      string
		line, col int
	}
	var ls []linted
	for _, n := range nodes {
		if n == nil {
			continue
		}
		id, err := n.Identity()
		reported := map[pos]bool{}
		for _, e := range unwrapJoin(err) {
			var ve *ValueError
			if errors.As(e, &ve) {
				add(Error, CodeNotANumber, ve.File, ve.Line, ve.Col, "%s is %q, not a number: replace the placeholder with the port or offset", ve.Name, ve.Value)
				reported[pos{ve.File, ve.Line, ve.Col}] = true
			}
		}
		// Identity reads only the first http and https transportReceiver
		// proxyPort, and only when catalina-server.xml sets none; the
		// others are reported here.
		if n.Axis2 != nil {
			for _, p := range axis2ProxyPorts(n.Axis2) {
				if _, err := strconv.Atoi(p.param.Value); p.param.Value != "" && err != nil && !reported[pos{n.Axis2.File, p.param.Line, p.param.Col}] {
					add(Error, CodeNotANumber, n.Axis2.File, p.param.Line, p.param.Col,
						"%s transportReceiver proxyPort is %q, not a number: replace the placeholder with the port", p.receiver, p.param.Value)
				}
			}
		}
		l := linted{n: n, id: id}
		if n.Axis2 != nil {
			l.axf = n.Axis2.File
		}
		ls = append(ls, l)
		lintNode(l, add)
	}
	lintCluster(ls, add)
	lintWSDLEPRPrefix(ls, lb, add)
	if lb != nil {
		lintLB(ls, lb, add)
	}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Code < b.Code
	})
	return fs
}

func unwrapJoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

type addFunc func(sev Severity, code, file string, line, col int, format string, args ...any)

// lintNode checks one node on its own.
func lintNode(l linted, add addFunc) {
	n, id := l.n, l.id
	var cl *Clustering
	if n.Axis2 != nil {
		cl = n.Axis2.Clustering
	}
	clustered := cl != nil && cl.Enabled
	wka := cl != nil && equalFold(cl.MembershipScheme.Value, "wka")
	if cl != nil {
		for _, m := range cl.Members {
			if _, err := strconv.Atoi(m.Port); err != nil {
				add(Error, CodeNotANumber, l.axf, m.Line, m.Col, "well-known member %s has port %q, not a number", m.HostName, m.Port)
			}
			if _, _, err := memberRange(m.HostName); err != nil {
				add(Error, CodeWKABadRange, l.axf, m.Line, m.Col, "well-known member hostName %q: %v", m.HostName, err)
			}
		}
	}
	if clustered && wka {
		switch len(cl.Members) {
		case 0:
			add(Error, CodeWKANoMembers, l.axf, cl.MembershipScheme.Line, cl.MembershipScheme.Col,
				"membershipScheme is wka but <members> lists no well-known member: add at least two (host and localMemberPort of other nodes)")
		case 1:
			add(Warning, CodeWKAFewMembers, l.axf, cl.Members[0].Line, cl.Members[0].Col,
				"only one well-known member (%s): add a second so the cluster can form when it is down", cl.Members[0].Addr())
		}
	}
	if cl != nil && !cl.Enabled && wka && len(cl.Members) > 0 {
		line, col := cl.Line, cl.Col
		if cl.Enable.Set() {
			line, col = cl.Enable.Line, cl.Enable.Col
		}
		add(Warning, CodeClusteringDisabled, l.axf, line, col,
			"clustering is disabled but well-known members are listed (%d): set enable=\"true\" on <clustering> or remove the members", len(cl.Members))
	}
	if clustered {
		if p, ok := cl.Property("subDomain"); !ok {
			add(Warning, CodeSubDomainMissing, l.axf, cl.Line, cl.Col,
				`clustered node has no subDomain property: add <property name="subDomain" value="worker"/> (or "mgt" on the manager) to the properties parameter`)
		} else if p.Value != RoleWorker && p.Value != RoleManager {
			add(Error, CodeSubDomainUnknown, l.axf, p.Line, p.Col,
				"subDomain is %q: use %q on workers or %q on the manager", p.Value, RoleWorker, RoleManager)
		}
		if n.Carbon != nil && id.HostName == "" {
			add(Warning, CodeHostNameUnset, n.Carbon.File, n.Carbon.line, n.Carbon.col,
				"clustered node has no <HostName>: set it, since the host name Carbon guesses from the system is often wrong (seed 003)")
		}
	}
	if n.Carbon != nil {
		ds := n.Carbon.DeploymentSynchronizer
		if ds != nil && ds.Enabled.Bool() && ds.AutoCommit.Bool() && id.SubDomain == RoleWorker {
			add(Error, CodeWorkerAutoCommit, n.Carbon.File, ds.AutoCommit.Line, ds.AutoCommit.Col,
				"worker node commits to the deployment repository: set <AutoCommit>false</AutoCommit>; only the manager commits")
		}
	}
	lintSecrets(n, add)
}

func lintSecrets(n *Node, add addFunc) {
	check := func(file string, ss []Secret) {
		for _, s := range ss {
			switch {
			case s.Vaulted:
			case s.Value == DefaultKeystorePassword:
				add(Warning, CodeDefaultPassword, file, s.Line, s.Col,
					"%s is the public default %q: create your own keystore and change the password", s.Name, DefaultKeystorePassword)
			default:
				add(Warning, CodePlaintextSecret, file, s.Line, s.Col,
					"%s is in plain text: protect it with Secure Vault (seed 003)", s.Name)
			}
		}
	}
	if n.Axis2 != nil {
		check(n.Axis2.File, n.Axis2.Secrets)
	}
	if n.Carbon != nil {
		check(n.Carbon.File, n.Carbon.Secrets)
	}
	if n.Catalina != nil {
		check(n.Catalina.File, n.Catalina.Secrets)
	}
}

// memberHost normalises a host for comparison.
func memberHost(h string) string {
	if h == "localhost" || h == "::1" {
		return "127.0.0.1"
	}
	return h
}

// matchesWKA reports whether entry ("host:port" with an optional range in the
// last octet, "192.168.1.2-10:4000" or "10.0.0.[1-10]:4000") covers
// host:port.
func matchesWKA(entry, host string, port int) bool {
	h, p, err := splitHostPort(entry)
	if err != nil || p != port {
		return false
	}
	h, host = memberHost(h), memberHost(host)
	if h == host {
		return true
	}
	r, ok, err := memberRange(h)
	if !ok || err != nil || !strings.HasPrefix(host, r.prefix) {
		return false
	}
	v, err := strconv.Atoi(host[len(r.prefix):])
	return err == nil && r.first <= v && v <= r.last
}

// hostRange is a range of the last octet of IPv4 addresses: prefix
// ("192.168.1.") followed by first to last, inclusive.
type hostRange struct {
	prefix      string
	first, last int
}

// memberRange reads a well-known member's hostName written as a range of
// the last octet: "192.168.1.2-10", as the Carbon and Hazelcast guides write
// it (2 to 10), or "192.168.1.[2-10]". ok is false for a host that is not
// written as a range. err says what is wrong with a malformed one and at
// which 1-based column of h: an end above 255 or below the start, a range
// in another octet, or an address that is not a.b.c.d.
func memberRange(h string) (r hostRange, ok bool, err error) {
	fail := func(col int, format string, args ...any) (hostRange, bool, error) {
		return hostRange{}, true, fmt.Errorf("col %d: %s", col+1, fmt.Sprintf(format, args...))
	}
	var lo, hi string
	var loCol, hiCol int
	switch open := strings.IndexByte(h, '['); {
	case open >= 0:
		if !strings.HasSuffix(h, "]") {
			return fail(len(h), "a range must end the address, as 10.0.0.[1-10]")
		}
		r.prefix = h[:open]
		body := h[open+1 : len(h)-1]
		var cut bool
		if lo, hi, cut = strings.Cut(body, "-"); !cut {
			return fail(open+1, "want [first-last], got [%s]", body)
		}
		loCol, hiCol = open+1, open+2+len(lo)
	case isDashRange(h):
		dash := strings.IndexByte(h, '-')
		if strings.Contains(h[dash:], ".") {
			return fail(dash, "a range is only allowed in the last octet, as 192.168.1.2-10")
		}
		dot := strings.LastIndexByte(h[:dash], '.')
		r.prefix, lo, hi = h[:dot+1], h[dot+1:dash], h[dash+1:]
		loCol, hiCol = dot+1, dash+1
	default:
		return hostRange{}, false, nil
	}
	octets := strings.Split(strings.TrimSuffix(r.prefix, "."), ".")
	if !strings.HasSuffix(r.prefix, ".") || len(octets) != 3 {
		return fail(0, "a range is only allowed in the last octet of an IPv4 address, as 192.168.1.2-10")
	}
	col := 0
	for i, o := range octets {
		if _, err := octet(o); err != nil {
			return fail(col, "octet %d: %v", i+1, err)
		}
		col += len(o) + 1
	}
	if r.first, err = octet(strings.TrimSpace(lo)); err != nil {
		return fail(loCol, "range start: %v", err)
	}
	if r.last, err = octet(strings.TrimSpace(hi)); err != nil {
		return fail(hiCol, "range end: %v", err)
	}
	if r.first > r.last {
		return fail(loCol, "range start %d is greater than its end %d", r.first, r.last)
	}
	return r, true, nil
}

// isDashRange reports whether h is written as "a.b.c.d-e": digits, dots and
// a hyphen, starting with a digit. A host name has a letter somewhere.
func isDashRange(h string) bool {
	if h == "" || h[0] < '0' || h[0] > '9' || !strings.Contains(h, "-") {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// octet parses an IPv4 octet, 0 to 255.
func octet(s string) (int, error) {
	if s == "" {
		return 0, errors.New("empty, want 0 to 255")
	}
	if strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if len(s) > 3 {
		return 0, fmt.Errorf("%s is more than 255", s)
	}
	v, _ := strconv.Atoi(s)
	if v > 255 {
		return 0, fmt.Errorf("%d is more than 255", v)
	}
	return v, nil
}

// lintCluster checks the nodes against each other.
func lintCluster(ls []linted, add addFunc) {
	var clustered []linted
	for _, l := range ls {
		if l.id.ClusteringEnabled {
			clustered = append(clustered, l)
		}
	}
	// Domains: compare with the first clustered node's.
	for _, l := range clustered[min(1, len(clustered)):] {
		first := clustered[0]
		if l.id.Domain != first.id.Domain {
			d := l.n.Axis2.Clustering.Domain
			add(Error, CodeDomainMismatch, l.axf, d.Line, d.Col,
				"domain %q differs from %q in %s: all nodes of one cluster share one domain", l.id.Domain, first.id.Domain, first.axf)
		}
	}
	// Duplicate host:localMemberPort.
	seen := map[string]linted{}
	for _, l := range clustered {
		if l.id.LocalMemberHost == "" {
			continue
		}
		key := net.JoinHostPort(memberHost(l.id.LocalMemberHost), strconv.Itoa(l.id.LocalMemberPort))
		if o, ok := seen[key]; ok {
			f := l.n.Axis2.Clustering.LocalMemberPort
			add(Error, CodeDuplicateMember, l.axf, f.Line, f.Col,
				"localMemberHost:localMemberPort %s is also used by %s: give each node on one host its own localMemberPort", key, o.axf)
			continue
		}
		seen[key] = l
	}
	// WKA members that are no node.
	if len(clustered) > 1 {
		for _, l := range clustered {
			for _, m := range l.n.Axis2.Clustering.Members {
				if _, _, err := memberRange(m.HostName); err != nil {
					continue // wka-bad-range
				}
				found := false
				for _, o := range clustered {
					if matchesWKA(m.Addr(), o.id.LocalMemberHost, o.id.LocalMemberPort) {
						found = true
					}
				}
				if !found {
					add(Warning, CodeWKAUnknownMember, l.axf, m.Line, m.Col,
						"well-known member %s is no node's localMemberHost:localMemberPort: use a node's address and its localMemberPort", m.Addr())
				}
			}
		}
	}
	lintPorts(ls, add)
	// Deployment synchronizer: one committer, and a manager.
	var committers []linted
	managers, workers := 0, 0
	for _, l := range ls {
		switch l.id.SubDomain {
		case RoleManager:
			managers++
		case RoleWorker:
			workers++
		}
		if l.n.Carbon == nil {
			continue
		}
		if ds := l.n.Carbon.DeploymentSynchronizer; ds != nil && ds.Enabled.Bool() && ds.AutoCommit.Bool() {
			committers = append(committers, l)
		}
	}
	lintWKAManager(clustered, add)
	if len(committers) > 0 {
		lintSvnURL(ls, committers[0], add)
	}
	if len(committers) > 1 {
		for _, l := range committers[1:] {
			ac := l.n.Carbon.DeploymentSynchronizer.AutoCommit
			add(Error, CodeMultipleCommitters, l.n.Carbon.File, ac.Line, ac.Col,
				"%d nodes have AutoCommit true (also %s): only the manager may commit; set false on the others", len(committers), committers[0].n.Carbon.File)
		}
	}
	if len(ls) > 1 && workers > 0 && managers == 0 {
		l := ls[0]
		line, col := 0, 0
		if l.n.Axis2 != nil && l.n.Axis2.Clustering != nil {
			line, col = l.n.Axis2.Clustering.Line, l.n.Axis2.Clustering.Col
		}
		add(Error, CodeNoManager, l.axf, line, col,
			"%d worker nodes and no manager: configure one node with subDomain mgt and AutoCommit true", workers)
	}
}

// nodePort is one port a node listens on, and where it is configured.
type nodePort struct {
	port      int
	what      string
	file      string
	line, col int
}

// portsOf lists the node's listening ports after its offset (the clustering
// port is left to duplicate-member).
func portsOf(l linted) []nodePort {
	var out []nodePort
	off := l.id.Offset
	if c := l.n.Carbon; c != nil {
		for _, s := range c.Ports.All {
			if v, err := strconv.Atoi(s.Value); err == nil && v > 0 {
				out = append(out, nodePort{v + off, s.Path, c.File, s.Line, s.Col})
			}
		}
	}
	if c := l.n.Catalina; c != nil {
		for _, s := range c.Services {
			for _, k := range s.Connectors {
				if v, err := strconv.Atoi(k.Port.Value); err == nil && v > 0 {
					out = append(out, nodePort{v + off, "Connector port", c.File, k.Port.Line, k.Port.Col})
				}
			}
		}
	}
	if a := l.n.Axis2; a != nil {
		for _, t := range a.Receivers {
			if p, ok := t.Param("port"); ok {
				if v, err := strconv.Atoi(p.Value); err == nil && v > 0 {
					out = append(out, nodePort{v + off, t.Name + " transportReceiver port", a.File, p.Line, p.Col})
				}
			}
		}
	}
	return out
}

func lintPorts(ls []linted, add addFunc) {
	byHost := map[string][]linted{}
	var hosts []string
	for _, l := range ls {
		// HostName is no guide: workers share the service host name the
		// balancer publishes. Only the member address says where a node runs.
		h := memberHost(l.id.LocalMemberHost)
		if h == "" {
			continue
		}
		if _, ok := byHost[h]; !ok {
			hosts = append(hosts, h)
		}
		byHost[h] = append(byHost[h], l)
	}
	for _, h := range hosts {
		group := byHost[h]
		used := map[int]nodePort{}
		for _, l := range group {
			mine := map[int]bool{}
			for _, p := range portsOf(l) {
				if mine[p.port] {
					continue
				}
				mine[p.port] = true
				if o, ok := used[p.port]; ok {
					add(Error, CodePortCollision, p.file, p.line, p.col,
						"port %d (%s) is also used on host %s by %s (%s): give the nodes different <Offset> values", p.port, p.what, h, o.file, o.what)
					continue
				}
				used[p.port] = p
			}
		}
	}
}

// lintLB checks loadbalancer.conf against the nodes.
func lintLB(ls []linted, lb *LBConf, add addFunc) {
	for _, w := range lb.Warnings {
		add(Warning, CodeLBUnclosedBlock, w.File, w.Line, w.Col, "%v; add the missing \"}\"", w.Err)
	}
	for _, s := range lb.Services {
		for _, d := range s.Domains {
			for _, k := range []string{"min_app_instances", "max_app_instances"} {
				for key, v := range d.Settings {
					if normKey(key) == k {
						if _, err := strconv.Atoi(v); err != nil {
							add(Error, CodeNotANumber, lb.File, d.Line, d.Col, "%s of domain %s is %q, not a number", key, d.Domain, v)
						}
					}
				}
			}
			if len(ls) == 0 {
				continue
			}
			matched := false
			for _, l := range ls {
				if l.id.Domain == d.Domain && (d.SubDomain == "" || d.SubDomain == l.id.SubDomain) {
					matched = true
				}
			}
			if !matched {
				sub := ""
				if d.SubDomain != "" {
					sub = " sub_domain " + d.SubDomain
				}
				add(Warning, CodeLBNoNode, lb.File, d.Line, d.Col,
					"service %s domain %s%s matches no node: fix the domain/sub_domain or the nodes' clustering domain and subDomain", s.Name, d.Domain, sub)
			}
		}
	}
	listen := lb.Listen()
	// The hosts served with sub_domain mgt. Domains without hosts of their
	// own share their service's list: each list is read once, or a long
	// list shared by many domains would cost the product of the two.
	mgtHosts := map[string]bool{}
	read := map[*string]bool{}
	for _, s := range lb.Services {
		for _, d := range s.Domains {
			if d.SubDomain != RoleManager || len(d.Hosts) == 0 || read[&d.Hosts[0]] {
				continue
			}
			read[&d.Hosts[0]] = true
			for _, h := range d.Hosts {
				mgtHosts[h] = true
			}
		}
	}
	for _, l := range ls {
		if l.id.SubDomain == RoleManager && l.id.MgtHostName != "" {
			if !mgtHosts[l.id.MgtHostName] {
				f := l.n.Carbon.MgtHostName
				add(Error, CodeMgtHostNotServed, l.n.Carbon.File, f.Line, f.Col,
					"MgtHostName %s is served by no loadbalancer.conf entry with sub_domain mgt: add it to that entry's hosts", l.id.MgtHostName)
			}
		}
		if c := l.n.Catalina; c != nil {
			for _, s := range c.Services {
				for _, k := range s.Connectors {
					v, err := strconv.Atoi(k.ProxyPort.Value)
					if err != nil || slices.Contains(listen, v) {
						continue
					}
					add(Error, CodeProxyPortNotListened, c.File, k.ProxyPort.Line, k.ProxyPort.Col,
						"proxyPort %d is not a port the balancer listens on (%s): set the balancer's port", v, joinInts(listen))
				}
			}
		}
		if a := l.n.Axis2; a != nil {
			for _, p := range axis2ProxyPorts(a) {
				v, err := strconv.Atoi(p.param.Value)
				if err != nil || slices.Contains(listen, v) {
					continue
				}
				add(Error, CodeProxyPortNotListened, a.File, p.param.Line, p.param.Col,
					"%s transportReceiver proxyPort %d is not a port the balancer listens on (%s): set the parameter to the balancer's port for %s, or make the balancer listen on %d",
					p.receiver, v, joinInts(listen), p.receiver, v)
			}
		}
	}
}

// receiverParam is a parameter of a named transportReceiver.
type receiverParam struct {
	receiver string // the transportReceiver's name, such as http
	param    Parameter
}

// axis2ProxyPorts returns the proxyPort parameters of a's live
// transportReceivers, in file order. Seed 002 sets the balancer's ports
// there rather than in catalina-server.xml.
func axis2ProxyPorts(a *Axis2) []receiverParam {
	var ps []receiverParam
	for _, t := range a.Receivers {
		for _, p := range t.Parameters {
			if p.Name == "proxyPort" {
				ps = append(ps, receiverParam{t.Name, p})
			}
		}
	}
	return ps
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// allCodes lists every lint code.
func allCodes() []string {
	return []string{
		CodeWKAFewMembers, CodeWKANoMembers, CodeWKAUnknownMember, CodeDomainMismatch,
		CodeDuplicateMember, CodePortCollision, CodeClusteringDisabled, CodeWorkerAutoCommit,
		CodeMultipleCommitters, CodeNoManager, CodeSubDomainMissing, CodeSubDomainUnknown,
		CodeProxyPortNotListened, CodeLBNoNode, CodeMgtHostNotServed, CodeDefaultPassword,
		CodePlaintextSecret, CodeHostNameUnset, CodeNotANumber, CodeLBUnclosedBlock,
		CodeWKABadRange, CodeWKANoManager, CodeWSDLEPRPrefix, CodeSvnURLMismatch,
	}
}
