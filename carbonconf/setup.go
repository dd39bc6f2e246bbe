package carbonconf

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// Setup holds the values the clustering procedures of seeds 000 (manager)
// and 001 (worker) ask for. Zero fields are noted per field.
type Setup struct {
	// Domain is the clustering domain both roles share, e.g.
	// "wso2.esb.domain". Required.
	Domain string
	// LocalMemberHost is the address this node advertises to the cluster.
	// Required.
	LocalMemberHost string
	// LocalMemberPort is the clustering port, e.g. 4100 for the manager and
	// 4200 and 4300 for two workers. It is not shifted by Offset. Required.
	LocalMemberPort int
	// WKA lists the well-known members as "host:port" (ranges of the last
	// octet such as "192.168.1.2-10:4000" or "10.0.0.[1-10]:4000" allowed;
	// a malformed range is an error). The seeds recommend at least two.
	// Required.
	WKA []string
	// HostName is the service host name the balancer publishes, e.g.
	// "esb.wso2.com" (carbon.xml HostName). Required.
	HostName string
	// MgtHostName is the management console's host name, e.g.
	// "mgt.esb.wso2.com" (carbon.xml MgtHostName). Required for the
	// manager; a worker's MgtHostName is left as it is.
	MgtHostName string
	// Offset, when not nil, sets carbon.xml Ports/Offset.
	Offset *int
	// SvnURL, SvnUser and SvnPassword configure the SVN-based deployment
	// synchronizer; "" leaves the file's value. A worker must check out
	// the repository the manager commits to: give it the manager's SvnUrl,
	// or Lint reports svn-url-mismatch (a stock carbon.xml's SvnUrl is the
	// placeholder StockSvnURL).
	SvnURL, SvnUser, SvnPassword string
	// HTTPProxyPort and HTTPSProxyPort are the balancer's ports written as
	// catalina-server.xml proxyPort (and into WSDLEPRPrefix on workers).
	// Zero means 80 and 443.
	HTTPProxyPort, HTTPSProxyPort int
	// ClusteringClass is the clustering agent; "" means HazelcastAgent.
	ClusteringClass string
	// JVMRoute, when not "", is written as catalina-server.xml's Engine
	// jvmRoute: Tomcat then suffixes every session id the node issues with
	// it ("ABC123.node-a"), and a balancer routes the session by it with no
	// table (balancer.Backend.Route). Give each node its own. "" leaves
	// the file's value.
	JVMRoute string
}

// Role names as carried by the subDomain member property.
const (
	RoleManager = "mgt"
	RoleWorker  = "worker"
)

func (s Setup) validate(manager bool) error {
	var errs []error
	if s.Domain == "" {
		errs = append(errs, errors.New("domain is empty"))
	}
	if s.LocalMemberHost == "" {
		errs = append(errs, errors.New("local member host is empty"))
	}
	if s.LocalMemberPort <= 0 || s.LocalMemberPort > 65535 {
		errs = append(errs, fmt.Errorf("local member port %d is not a port", s.LocalMemberPort))
	}
	if len(s.WKA) == 0 {
		errs = append(errs, errors.New("the WKA list is empty: list at least one well-known member (two recommended)"))
	}
	for _, m := range s.WKA {
		h, _, err := splitHostPort(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, _, err := memberRange(h); err != nil {
			errs = append(errs, fmt.Errorf("member %q: %w", m, err))
		}
	}
	if s.HostName == "" {
		errs = append(errs, errors.New("host name is empty"))
	}
	if manager && s.MgtHostName == "" {
		errs = append(errs, errors.New("management host name is empty"))
	}
	if s.Offset != nil && (*s.Offset < 0 || *s.Offset > 65535) {
		errs = append(errs, fmt.Errorf("offset %d is out of range", *s.Offset))
	}
	for _, p := range []int{s.HTTPProxyPort, s.HTTPSProxyPort} {
		if p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("proxy port %d is not a port", p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("carbonconf: setup: %w", err)
	}
	return nil
}

// ConfigureManager applies the manager steps of seed 000 to the node in
// memory: clustering on with the given agent, membershipScheme wka, domain,
// localMemberHost and localMemberPort, the WKA members, the member
// properties backendServerURL and mgtConsoleURL and subDomain mgt (axis2.xml);
// HostName, MgtHostName, the deployment synchronizer with AutoCommit true,
// and Offset when given (carbon.xml); proxyPort on the HTTP and HTTPS
// connectors (catalina-server.xml, when present). Everything else in the
// files is kept. It returns the unified diff of what changed ("" when
// nothing did: running it twice changes nothing the second time). On error
// the node is unchanged. Call Save to write the files.
func (n *Node) ConfigureManager(s Setup) (string, error) { return n.configure(s, true) }

// ConfigureWorker applies the worker steps of seed 001: as ConfigureManager,
// but subDomain worker, AutoCommit false, MgtHostName untouched, and
// WSDLEPRPrefix set on the pass-through HTTP and HTTPS listeners when the
// product has them (http://HostName:HTTPProxyPort and
// https://HostName:HTTPSProxyPort).
func (n *Node) ConfigureWorker(s Setup) (string, error) { return n.configure(s, false) }

func (n *Node) configure(s Setup, manager bool) (string, error) {
	if err := s.validate(manager); err != nil {
		return "", err
	}
	if n.Axis2 == nil || n.Carbon == nil {
		return "", fmt.Errorf("carbonconf: setup %s: need axis2.xml and carbon.xml", n.Name())
	}
	if s.HTTPProxyPort == 0 {
		s.HTTPProxyPort = 80
	}
	if s.HTTPSProxyPort == 0 {
		s.HTTPSProxyPort = 443
	}
	if s.ClusteringClass == "" {
		s.ClusteringClass = HazelcastAgent
	}
	before := [3][]byte{n.Axis2.Bytes(), n.Carbon.Bytes()}
	if n.Catalina != nil {
		before[2] = n.Catalina.Bytes()
	}
	if err := n.apply(s, manager); err != nil {
		n.restore(before)
		return "", err
	}
	var sb strings.Builder
	sb.WriteString(unifiedDiff(n.rel(n.Axis2.File, Axis2Path), before[0], n.Axis2.doc.src))
	sb.WriteString(unifiedDiff(n.rel(n.Carbon.File, CarbonPath), before[1], n.Carbon.doc.src))
	if n.Catalina != nil {
		sb.WriteString(unifiedDiff(n.rel(n.Catalina.File, CatalinaPath), before[2], n.Catalina.doc.src))
	}
	return sb.String(), nil
}

// rel names a file in a diff: relative to the product home when possible.
func (n *Node) rel(file, def string) string {
	if file == "" {
		return def
	}
	if n.Home != "" {
		if r, err := filepath.Rel(n.Home, file); err == nil && !strings.HasPrefix(r, "..") {
			return filepath.ToSlash(r)
		}
	}
	return filepath.ToSlash(file)
}

func (n *Node) restore(before [3][]byte) {
	// The saved bytes parsed before, so they parse again.
	if d, err := parseXML(n.Axis2.File, before[0]); err == nil {
		n.Axis2.doc = d
		n.Axis2.build()
	}
	if d, err := parseXML(n.Carbon.File, before[1]); err == nil {
		n.Carbon.doc = d
		n.Carbon.build()
	}
	if n.Catalina != nil {
		if d, err := parseXML(n.Catalina.File, before[2]); err == nil {
			n.Catalina.doc = d
			n.Catalina.build()
		}
	}
}

func (n *Node) apply(s Setup, manager bool) error {
	a, c := n.Axis2, n.Carbon
	role, autoCommit := RoleWorker, "false"
	if manager {
		role, autoCommit = RoleManager, "true"
	}
	steps := []func() error{
		func() error { return a.SetClusteringClass(s.ClusteringClass) },
		func() error { return a.SetClusteringEnabled(true) },
		func() error { return a.SetClusteringParameter("membershipScheme", "wka") },
		func() error { return a.SetClusteringParameter("domain", s.Domain) },
		func() error { return a.SetClusteringParameter("localMemberHost", s.LocalMemberHost) },
		func() error { return a.SetClusteringParameter("localMemberPort", strconv.Itoa(s.LocalMemberPort)) },
		func() error { return a.SetMembers(s.WKA) },
		func() error { return a.SetProperty("subDomain", role) },
		func() error { return c.SetHostName(s.HostName) },
		func() error { return c.Set("DeploymentSynchronizer/Enabled", "true") },
		func() error { return c.Set("DeploymentSynchronizer/AutoCommit", autoCommit) },
		func() error { return c.Set("DeploymentSynchronizer/AutoCheckout", "true") },
		func() error { return c.Set("DeploymentSynchronizer/RepositoryType", "svn") },
	}
	if manager {
		steps = append(steps,
			func() error {
				return a.SetProperty("backendServerURL", "https://${hostName}:${httpsPort}/services/")
			},
			func() error { return a.SetProperty("mgtConsoleURL", "https://${hostName}:${httpsPort}/") },
			func() error { return c.SetMgtHostName(s.MgtHostName) },
		)
	} else {
		for _, t := range []struct {
			class, scheme string
			port          int
		}{
			{"PassThroughHttpListener", "http", s.HTTPProxyPort},
			{"PassThroughHttpSSLListener", "https", s.HTTPSProxyPort},
		} {
			if !a.HasReceiver(t.class) {
				continue
			}
			prefix := t.scheme + "://" + net.JoinHostPort(s.HostName, strconv.Itoa(t.port))
			steps = append(steps, func() error { return a.SetReceiverParameter(t.class, "WSDLEPRPrefix", prefix) })
		}
	}
	for _, kv := range [][2]string{{"SvnUrl", s.SvnURL}, {"SvnUser", s.SvnUser}, {"SvnPassword", s.SvnPassword}} {
		if kv[1] != "" {
			steps = append(steps, func() error { return c.Set("DeploymentSynchronizer/"+kv[0], kv[1]) })
		}
	}
	if s.Offset != nil {
		steps = append(steps, func() error { return c.SetOffset(*s.Offset) })
	}
	if n.Catalina != nil {
		steps = append(steps,
			func() error { return n.Catalina.SetConnectorAttr("http", "proxyPort", strconv.Itoa(s.HTTPProxyPort)) },
			func() error { return n.Catalina.SetConnectorAttr("https", "proxyPort", strconv.Itoa(s.HTTPSProxyPort)) },
		)
	}
	if s.JVMRoute != "" {
		if n.Catalina == nil {
			return fmt.Errorf("carbonconf: setup %s: jvmRoute needs catalina-server.xml", n.Name())
		}
		steps = append(steps, func() error { return n.Catalina.SetJVMRoute(s.JVMRoute) })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}
