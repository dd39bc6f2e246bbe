package carbonconf

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// nodeOpts describes a small node for lint tests.
type nodeOpts struct {
	name          string
	enable        string // clustering enable attribute
	scheme        string
	domain        string
	host, port    string // localMemberHost, localMemberPort
	sub           string // subDomain property; "" for none
	members       []string
	hostName      string
	mgtHostName   string
	offset        string
	autoCommit    string
	proxyHTTP     string
	proxyHTTPS    string
	keystorePass  string // https connector keystorePass; "" for none
	svnPassword   string // "" for none
	svnPassVaulty bool   // add svns:secretAlias to SvnPassword

	// axis2.xml transportReceiver proxyPort parameters, "" for none, as
	// seed 002 sets them; axis2ProxyCommented puts them in comments.
	axis2ProxyHTTP, axis2ProxyHTTPS string
	axis2ProxyCommented             bool

	wsdlPrefix string // the http receiver's WSDLEPRPrefix, "" for none
	svnURL     string // <SvnUrl>, "" for none
}

func (o nodeOpts) build(t testing.TB) *Node {
	t.Helper()
	var members strings.Builder
	for _, m := range o.members {
		h, p, _ := strings.Cut(m, ":")
		fmt.Fprintf(&members, "      <member><hostName>%s</hostName><port>%s</port></member>\n", h, p)
	}
	sub := ""
	if o.sub != "" {
		sub = fmt.Sprintf(`<property name="subDomain" value="%s"/>`, o.sub)
	}
	proxyParam := func(v string) string {
		if v == "" {
			return ""
		}
		p := fmt.Sprintf(`<parameter name="proxyPort">%s</parameter>`, v)
		if o.axis2ProxyCommented {
			p = "<!--" + p + "-->"
		}
		return "\n    " + p
	}
	https := ""
	if o.axis2ProxyHTTPS != "" {
		https = fmt.Sprintf(`
  <transportReceiver name="https" class="org.wso2.carbon.core.transports.http.HttpsTransportListener">%s
  </transportReceiver>`, proxyParam(o.axis2ProxyHTTPS))
	}
	// WSDLEPRPrefix shares the port parameter's line, so that the lines
	// of the rest stay where the tests expect them.
	wsdl := ""
	if o.wsdlPrefix != "" {
		wsdl = fmt.Sprintf(`<parameter name="WSDLEPRPrefix" locked="false">%s</parameter>`, o.wsdlPrefix)
	}
	axis2 := fmt.Sprintf(`<axisconfig name="AxisJava2.0">
  <transportReceiver name="http" class="org.apache.synapse.transport.passthru.PassThroughHttpListener">
    <parameter name="port" locked="false">8280</parameter>%s%s
  </transportReceiver>%s
  <clustering class="%s" enable="%s">
    <parameter name="membershipScheme">%s</parameter>
    <parameter name="domain">%s</parameter>
    <parameter name="localMemberHost">%s</parameter>
    <parameter name="localMemberPort">%s</parameter>
    <parameter name="properties">
      %s
    </parameter>
    <members>
%s    </members>
  </clustering>
</axisconfig>
`, wsdl, proxyParam(o.axis2ProxyHTTP), https, HazelcastAgent, o.enable, o.scheme, o.domain, o.host, o.port, sub, members.String())
	host := ""
	if o.hostName != "" {
		host = "<HostName>" + o.hostName + "</HostName>"
	}
	mgt := ""
	if o.mgtHostName != "" {
		mgt = "<MgtHostName>" + o.mgtHostName + "</MgtHostName>"
	}
	svn := ""
	if o.svnPassword != "" {
		alias := ""
		if o.svnPassVaulty {
			alias = ` xmlns:svns="http://org.wso2.securevault/configuration" svns:secretAlias="svn.password"`
		}
		svn = fmt.Sprintf("<SvnPassword%s>%s</SvnPassword>", alias, o.svnPassword)
	}
	if o.svnURL != "" {
		svn = "<SvnUrl>" + o.svnURL + "</SvnUrl>" + svn
	}
	carbon := fmt.Sprintf(`<?xml version="1.0" encoding="ISO-8859-1"?>
<Server xmlns="http://wso2.org/projects/carbon/carbon.xml">
    %s
    %s
    <Ports>
        <Offset>%s</Offset>
        <JMX><RMIRegistryPort>9999</RMIRegistryPort><RMIServerPort>11111</RMIServerPort></JMX>
    </Ports>
    <DeploymentSynchronizer>
        <Enabled>true</Enabled>
        <AutoCommit>%s</AutoCommit>
        <AutoCheckout>true</AutoCheckout>
        %s
    </DeploymentSynchronizer>
</Server>
`, host, mgt, o.offset, o.autoCommit, svn)
	attr := func(name, v string) string {
		if v == "" {
			return ""
		}
		return fmt.Sprintf(` %s="%s"`, name, v)
	}
	catalina := fmt.Sprintf(`<Server port="8005" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector protocol="org.apache.coyote.http11.Http11NioProtocol" port="9763"%s/>
    <Connector protocol="org.apache.coyote.http11.Http11NioProtocol" port="9443" SSLEnabled="true" scheme="https"%s%s/>
  </Service>
</Server>
`, attr("proxyPort", o.proxyHTTP), attr("proxyPort", o.proxyHTTPS), attr("keystorePass", o.keystorePass))
	a, err := parseAxis2(o.name+"/axis2.xml", []byte(axis2))
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCarbon(o.name+"/carbon.xml", []byte(carbon))
	if err != nil {
		t.Fatal(err)
	}
	k, err := parseCatalina(o.name+"/catalina-server.xml", []byte(catalina))
	if err != nil {
		t.Fatal(err)
	}
	return &Node{Axis2: a, Carbon: c, Catalina: k}
}

// goodCluster is a manager and two workers set up as seeds 000 and 001 say,
// behind a balancer that serves both host names. Lint finds nothing in it.
func goodCluster() ([]nodeOpts, string) {
	base := nodeOpts{enable: "true", scheme: "wka", domain: "wso2.esb.domain", hostName: "esb.wso2.com",
		offset: "0", autoCommit: "false", proxyHTTP: "80", proxyHTTPS: "443", svnURL: "http://svn.example.com/esb/"}
	mgr, w1, w2 := base, base, base
	mgr.name, mgr.host, mgr.port, mgr.sub = "mgr", "10.0.0.1", "4100", "mgt"
	mgr.mgtHostName, mgr.autoCommit = "mgt.esb.wso2.com", "true"
	w1.name, w1.host, w1.port, w1.sub = "w1", "10.0.0.2", "4200", "worker"
	w2.name, w2.host, w2.port, w2.sub = "w2", "10.0.0.3", "4300", "worker"
	w1.wsdlPrefix, w2.wsdlPrefix = "http://esb.wso2.com:80", "http://esb.wso2.com"
	mgr.members = []string{"10.0.0.2:4200", "10.0.0.3:4300"}
	w1.members = []string{"10.0.0.1:4100", "10.0.0.3:4300"}
	w2.members = []string{"10.0.0.1:4100", "10.0.0.2:4200"}
	lb := `loadbalancer {
    instances 1;
}
services {
    defaults {
        min_app_instances 1;
        max_app_instances 5;
    }
    esb {
        hosts esb.wso2.com;
        domains {
            wso2.esb.domain {
                sub_domain worker;
                tenant_range *;
            }
        }
    }
    esbmgt {
        domains {
            wso2.esb.domain {
                hosts mgt.esb.wso2.com;
                sub_domain mgt;
                tenant_range *;
            }
        }
    }
}
`
	return []nodeOpts{mgr, w1, w2}, lb
}

func lintCase(t *testing.T, mutate func(ns []nodeOpts, lb *string) []nodeOpts) []Finding {
	t.Helper()
	ns, lb := goodCluster()
	if mutate != nil {
		ns = mutate(ns, &lb)
	}
	var nodes []*Node
	for _, o := range ns {
		nodes = append(nodes, o.build(t))
	}
	var conf *LBConf
	if lb != "" {
		var err error
		conf, err = parseLBConf("loadbalancer.conf", []byte(lb))
		if err != nil {
			t.Fatal(err)
		}
	}
	return Lint(nodes, conf)
}

func TestLintGoodClusterIsClean(t *testing.T) {
	if fs := lintCase(t, nil); len(fs) != 0 {
		for _, f := range fs {
			t.Errorf("unexpected finding: %s", f)
		}
	}
}

func TestLintCodes(t *testing.T) {
	type mut = func(ns []nodeOpts, lb *string) []nodeOpts
	tests := []struct {
		name   string
		code   string
		mutate mut
		want   bool // whether code must be reported (false: must not be)
	}{
		{"one member", CodeWKAFewMembers, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members = ns[1].members[:1]
			return ns
		}, true},
		{"range counts as members", CodeWKAFewMembers, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members = []string{"10.0.0.[1-3]:4100", "10.0.0.3:4300"}
			return ns
		}, false},
		{"no members", CodeWKANoMembers, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].members = nil
			return ns
		}, true},
		{"no members with multicast", CodeWKANoMembers, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].members, ns[2].scheme = nil, "multicast"
			return ns
		}, false},
		{"member is no node", CodeWKAUnknownMember, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members[0] = "10.0.0.9:4100"
			return ns
		}, true},
		{"member range covers a node", CodeWKAUnknownMember, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members[0] = "10.0.0.[1-2]:4100"
			return ns
		}, false},
		{"member range misses", CodeWKAUnknownMember, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members[0] = "10.0.0.[5-9]:4100"
			return ns
		}, true},
		{"dash range covers a node", CodeWKAUnknownMember, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members[0] = "10.0.0.1-2:4100"
			return ns
		}, false},
		{"dash range misses", CodeWKAUnknownMember, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members[0] = "10.0.0.5-9:4100"
			return ns
		}, true},
		{"dash range end past 255", CodeWKABadRange, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members[0] = "10.0.0.2-300:4100"
			return ns
		}, true},
		{"bracket range backwards", CodeWKABadRange, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members[0] = "10.0.0.[9-2]:4100"
			return ns
		}, true},
		{"good ranges", CodeWKABadRange, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members = []string{"10.0.0.1-2:4100", "10.0.0.[3-3]:4300"}
			return ns
		}, false},
		{"worker without the manager", CodeWKANoManager, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members = []string{"10.0.0.3:4300"}
			return ns
		}, true},
		{"worker with the manager in a range", CodeWKANoManager, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].members = []string{"10.0.0.1-2:4100", "10.0.0.3:4300"}
			return ns
		}, false},
		{"manager without the manager", CodeWKANoManager, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[0].members = []string{"10.0.0.2:4200"}
			return ns
		}, false},
		{"WSDLEPRPrefix other host", CodeWSDLEPRPrefix, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].wsdlPrefix = "http://w1.internal:80"
			return ns
		}, true},
		{"WSDLEPRPrefix other port", CodeWSDLEPRPrefix, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].wsdlPrefix = "http://esb.wso2.com:8280"
			return ns
		}, true},
		{"WSDLEPRPrefix https on the http listener", CodeWSDLEPRPrefix, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].wsdlPrefix = "https://esb.wso2.com:443"
			return ns
		}, true},
		{"WSDLEPRPrefix placeholder", CodeWSDLEPRPrefix, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].wsdlPrefix = "https://apachehost:port/somepath"
			return ns
		}, true},
		{"WSDLEPRPrefix the balancer's other port", CodeWSDLEPRPrefix, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].proxyHTTP, ns[1].wsdlPrefix = "8280", "http://esb.wso2.com:8280"
			return ns
		}, false},
		{"WSDLEPRPrefix of the manager", CodeWSDLEPRPrefix, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[0].wsdlPrefix = "http://integrator.wso2.com:80"
			return ns
		}, false},
		{"WSDLEPRPrefix host served by the balancer", CodeWSDLEPRPrefix, func(ns []nodeOpts, lb *string) []nodeOpts {
			*lb = strings.Replace(*lb, "hosts esb.wso2.com;", "hosts esb.wso2.com, esb2.wso2.com;", 1)
			ns[1].wsdlPrefix = "http://esb2.wso2.com:80"
			return ns
		}, false},
		{"worker with the stock SvnUrl", CodeSvnURLMismatch, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].svnURL = StockSvnURL
			return ns
		}, true},
		{"worker without SvnUrl", CodeSvnURLMismatch, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].svnURL = ""
			return ns
		}, true},
		{"SvnUrl without the trailing slash", CodeSvnURLMismatch, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].svnURL = "http://svn.example.com/esb"
			return ns
		}, false},
		{"all stock SvnUrl", CodeSvnURLMismatch, func(ns []nodeOpts, _ *string) []nodeOpts {
			for i := range ns {
				ns[i].svnURL = StockSvnURL
			}
			return ns
		}, false},
		{"domains differ", CodeDomainMismatch, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].domain = "wso2.as.domain"
			return ns
		}, true},
		{"duplicate member", CodeDuplicateMember, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].host, ns[2].port = ns[1].host, ns[1].port
			ns[2].offset = "1"
			return ns
		}, true},
		{"same host, other port", CodeDuplicateMember, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].host = ns[1].host
			ns[2].offset = "1"
			return ns
		}, false},
		{"ports collide on one host", CodePortCollision, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].host = ns[1].host
			return ns
		}, true},
		{"offset separates ports", CodePortCollision, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].host, ns[2].offset = ns[1].host, "1"
			return ns
		}, false},
		{"disabled with members", CodeClusteringDisabled, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].enable = "false"
			return ns
		}, true},
		{"disabled without members", CodeClusteringDisabled, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].enable, ns[2].members = "false", nil
			return ns
		}, false},
		{"worker commits", CodeWorkerAutoCommit, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].autoCommit = "true"
			return ns
		}, true},
		{"two committers", CodeMultipleCommitters, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].autoCommit = "true"
			return ns
		}, true},
		{"one committer", CodeMultipleCommitters, nil, false},
		{"no manager", CodeNoManager, func(ns []nodeOpts, lb *string) []nodeOpts {
			*lb = ""
			return ns[1:]
		}, true},
		{"single worker alone", CodeNoManager, func(ns []nodeOpts, lb *string) []nodeOpts {
			*lb = ""
			return ns[1:2]
		}, false},
		{"subDomain missing", CodeSubDomainMissing, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].sub = ""
			return ns
		}, true},
		{"subDomain unknown", CodeSubDomainUnknown, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[2].sub = "wrker"
			return ns
		}, true},
		{"subDomain mgt", CodeSubDomainUnknown, nil, false},
		{"proxy port not listened", CodeProxyPortNotListened, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].proxyHTTPS = "8443"
			return ns
		}, true},
		{"proxy port of the ELB", CodeProxyPortNotListened, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].proxyHTTP, ns[1].proxyHTTPS = "8290", "8243"
			return ns
		}, false},
		{"axis2 proxy port not listened", CodeProxyPortNotListened, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].proxyHTTP, ns[1].proxyHTTPS = "", ""
			ns[1].axis2ProxyHTTP, ns[1].axis2ProxyHTTPS = "8290", "9443"
			return ns
		}, true},
		{"axis2 proxy port of the ELB", CodeProxyPortNotListened, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].proxyHTTP, ns[1].proxyHTTPS = "", ""
			ns[1].axis2ProxyHTTP, ns[1].axis2ProxyHTTPS = "8290", "8243"
			return ns
		}, false},
		{"axis2 proxy port commented out", CodeProxyPortNotListened, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].axis2ProxyHTTP, ns[1].axis2ProxyHTTPS = "81", "444"
			ns[1].axis2ProxyCommented = true
			return ns
		}, false},
		{"lb domain matches no node", CodeLBNoNode, func(ns []nodeOpts, lb *string) []nodeOpts {
			*lb = strings.Replace(*lb, "sub_domain worker", "sub_domain workers", 1)
			return ns
		}, true},
		{"lb domain without sub_domain matches", CodeLBNoNode, func(ns []nodeOpts, lb *string) []nodeOpts {
			*lb = strings.Replace(*lb, "sub_domain worker;", "", 1)
			return ns
		}, false},
		{"mgt host not served", CodeMgtHostNotServed, func(ns []nodeOpts, lb *string) []nodeOpts {
			*lb = strings.Replace(*lb, "hosts mgt.esb.wso2.com", "hosts mgmt.esb.wso2.com", 1)
			return ns
		}, true},
		{"default keystore password", CodeDefaultPassword, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[0].keystorePass = DefaultKeystorePassword
			return ns
		}, true},
		{"own keystore password", CodeDefaultPassword, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[0].keystorePass = "$secret{keystore}"
			return ns
		}, false},
		{"plain svn password", CodePlaintextSecret, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[0].svnPassword = "hunter2"
			return ns
		}, true},
		{"vaulted svn password", CodePlaintextSecret, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[0].svnPassword, ns[0].svnPassVaulty = "password", true
			return ns
		}, false},
		{"host name unset", CodeHostNameUnset, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].hostName = ""
			return ns
		}, true},
		{"host name unset, not clustered", CodeHostNameUnset, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].hostName, ns[1].enable, ns[1].members = "", "false", nil
			return ns
		}, false},
		{"placeholder offset", CodeNotANumber, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].offset = "SC_PORT_OFFSET"
			return ns
		}, true},
		{"placeholder proxy port", CodeNotANumber, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].proxyHTTP = "PROXY_PORT_HTTP"
			return ns
		}, true},
		{"placeholder axis2 proxy port", CodeNotANumber, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].axis2ProxyHTTPS = "PROXY_PORT_HTTPS"
			return ns
		}, true},
		{"placeholder axis2 proxy port commented out", CodeNotANumber, func(ns []nodeOpts, _ *string) []nodeOpts {
			ns[1].axis2ProxyHTTPS, ns[1].axis2ProxyCommented = "PROXY_PORT_HTTPS", true
			return ns
		}, false},
		{"placeholder instances", CodeNotANumber, func(ns []nodeOpts, lb *string) []nodeOpts {
			*lb = strings.Replace(*lb, "tenant_range *;", "tenant_range *; min_app_instances MIN;", 1)
			return ns
		}, true},
		{"numbers", CodeNotANumber, nil, false},
		{"unclosed block", CodeLBUnclosedBlock, func(ns []nodeOpts, lb *string) []nodeOpts {
			*lb = strings.TrimSuffix(*lb, "}\n")
			return ns
		}, true},
	}
	// Every code is also checked against the clean cluster, where it must
	// not be reported.
	for _, c := range allCodes() {
		tests = append(tests, struct {
			name   string
			code   string
			mutate mut
			want   bool
		}{"clean cluster " + c, c, nil, false})
	}
	triggered := map[string]bool{}
	for _, tt := range tests {
		if tt.want {
			triggered[tt.code] = true
		}
	}
	for _, c := range allCodes() {
		if !triggered[c] {
			t.Errorf("no case triggers %s", c)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := lintCase(t, tt.mutate)
			got := false
			for _, f := range fs {
				if f.Code == tt.code {
					got = true
					if f.File == "" || f.Line == 0 || f.Col == 0 || f.Message == "" {
						t.Errorf("finding without position or message: %+v", f)
					}
				}
			}
			if got != tt.want {
				t.Errorf("code %s reported = %v, want %v; findings:\n%v", tt.code, got, tt.want, fs)
			}
		})
	}
}

// TestLintNewChecks pins the findings of the range, manager, WSDLEPRPrefix
// and SvnUrl checks: severity, position and message.
func TestLintNewChecks(t *testing.T) {
	fs := lintCase(t, func(ns []nodeOpts, _ *string) []nodeOpts {
		ns[1].members = []string{"10.0.0.3:4300", "10.0.0.2-300:4100"}
		ns[1].wsdlPrefix = "http://w1.internal:8280"
		ns[1].svnURL = StockSvnURL
		return ns
	})
	var got []Finding
	for _, f := range fs {
		switch f.Code {
		case CodeWKABadRange, CodeWKANoManager, CodeWSDLEPRPrefix, CodeSvnURLMismatch:
			got = append(got, f)
		}
	}
	want := []Finding{
		{Error, CodeWSDLEPRPrefix, "w1/axis2.xml", 3, 59, "http WSDLEPRPrefix http://w1.internal:8280 names host w1.internal, not the balancer's (esb.wso2.com): set it to http://esb.wso2.com:80"},
		{Warning, CodeWKANoManager, "w1/axis2.xml", 14, 7, "the well-known members do not include the manager (10.0.0.1:4100): add it, since the deployment synchronizer finds the manager through them (seeds 000, 001)"},
		{Error, CodeWKABadRange, "w1/axis2.xml", 15, 7, `well-known member hostName "10.0.0.2-300": col 10: range end: 300 is more than 255`},
		{Error, CodeSvnURLMismatch, "w1/carbon.xml", 13, 9, `the deployment synchronizer checks out the stock "http://svnrepo.example.com/repos/" but mgr/carbon.xml commits to "http://svn.example.com/esb/": set <SvnUrl>http://svn.example.com/esb/</SvnUrl>`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestLintCodesDocumented(t *testing.T) {
	doc, err := readDoc()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range allCodes() {
		if !strings.Contains(doc, "`"+c+"`") {
			t.Errorf("code %s is not documented in docs/carbonconf.md", c)
		}
	}
}

func TestLintTestdata(t *testing.T) {
	// The real files lint without panicking, and their placeholders are
	// reported.
	var nodes []*Node
	for _, p := range testFiles(t, "axis2") {
		a, err := LoadAxis2(p)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &Node{Axis2: a})
	}
	for _, p := range testFiles(t, "carbon") {
		c, err := LoadCarbon(p)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &Node{Carbon: c})
	}
	for _, p := range testFiles(t, "catalina") {
		c, err := LoadCatalina(p)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &Node{Catalina: c})
	}
	placeholders := map[string]bool{}
	for _, p := range testFiles(t, "loadbalancer") {
		lb, err := LoadLBConf(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range Lint(nodes, lb) {
			if f.Code == CodeNotANumber {
				placeholders[f.Message[:strings.IndexByte(f.Message, ' ')]] = true
			}
		}
	}
	for _, want := range []string{"Ports/Offset", "http", "https", "localMemberPort"} {
		if !placeholders[want] {
			t.Errorf("placeholder in %s not reported; got %v", want, placeholders)
		}
	}
}

func readDoc() (string, error) {
	b, err := os.ReadFile("../docs/carbonconf.md")
	return string(b), err
}

func TestLintAxis2ProxyPort(t *testing.T) {
	// Seed 002 sets the balancer's ports as axis2.xml transportReceiver
	// proxyPort parameters: 8290 and 8243, the ELB's ports.
	const file = "w1/axis2.xml"
	tests := []struct {
		name      string
		listen    []int
		http      string
		https     string
		commented bool
		want      []Finding // the findings in file
	}{
		{name: "seed 002 behind the ELB", listen: []int{8290, 8243}, http: "8290", https: "8243"},
		{name: "commented out", listen: []int{80, 443}, http: "8290", https: "8243", commented: true},
		{name: "seed 002 behind a balancer on 80 and 443", listen: []int{80, 443}, http: "8290", https: "8243", want: []Finding{
			{Error, CodeProxyPortNotListened, file, 4, 5, "http transportReceiver proxyPort 8290 is not a port the balancer listens on (80, 443): set the parameter to the balancer's port for http, or make the balancer listen on 8290"},
			{Error, CodeProxyPortNotListened, file, 7, 5, "https transportReceiver proxyPort 8243 is not a port the balancer listens on (80, 443): set the parameter to the balancer's port for https, or make the balancer listen on 8243"},
		}},
		{name: "placeholder reported once", listen: []int{8290, 8243}, http: "PROXY_PORT_HTTP", https: "8243", want: []Finding{
			{Error, CodeNotANumber, file, 4, 5, `http transportReceiver proxyPort is "PROXY_PORT_HTTP", not a number: replace the placeholder with the port or offset`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, lb := goodCluster()
			for i := range ns {
				ns[i].proxyHTTP, ns[i].proxyHTTPS, ns[i].wsdlPrefix = "", "", ""
			}
			ns[1].axis2ProxyHTTP, ns[1].axis2ProxyHTTPS, ns[1].axis2ProxyCommented = tt.http, tt.https, tt.commented
			var nodes []*Node
			for _, o := range ns {
				nodes = append(nodes, o.build(t))
			}
			conf, err := parseLBConf("loadbalancer.conf", []byte(lb))
			if err != nil {
				t.Fatal(err)
			}
			conf.ListenPorts = tt.listen
			var got []Finding
			for _, f := range Lint(nodes, conf) {
				if f.File == file {
					got = append(got, f)
				} else {
					t.Errorf("unexpected finding: %s", f)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Lint() findings in %s mismatch (-want +got):\n%s", file, diff)
			}
		})
	}
}

// TestMemberRange reads both range forms of a well-known member's hostName
// and refuses malformed ones with the column in hostName.
func TestMemberRange(t *testing.T) {
	for _, tt := range []struct {
		in     string
		want   hostRange
		isRang bool
		err    string
	}{
		{"192.168.1.2-10", hostRange{"192.168.1.", 2, 10}, true, ""},
		{"192.168.1.[2-10]", hostRange{"192.168.1.", 2, 10}, true, ""},
		{"10.0.0.[ 7 - 7 ]", hostRange{"10.0.0.", 7, 7}, true, ""},
		{"10.0.0.4", hostRange{}, false, ""},
		{"gateway-worker", hostRange{}, false, ""},
		{"192.168.1.2-300", hostRange{}, true, "col 13: range end: 300 is more than 255"},
		{"192.168.1.10-2", hostRange{}, true, "col 11: range start 10 is greater than its end 2"},
		{"192.168.1-3.4", hostRange{}, true, "col 10: a range is only allowed in the last octet"},
		{"192.168.2-10", hostRange{}, true, "col 1: a range is only allowed in the last octet of an IPv4 address"},
		{"10.0.0.[1-10", hostRange{}, true, "col 13: a range must end the address"},
		{"10.0.0.[1]", hostRange{}, true, "col 9: want [first-last]"},
		{"10.300.0.1-2", hostRange{}, true, `col 4: octet 2: 300 is more than 255`},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, ok, err := memberRange(tt.in)
			if ok != tt.isRang || got != tt.want {
				t.Errorf("memberRange(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.isRang)
			}
			if (err == nil) != (tt.err == "") || err != nil && !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("memberRange(%q) error = %v, want %q", tt.in, err, tt.err)
			}
		})
	}
}

// FuzzMemberRange checks that memberRange never panics, that an error's
// column is inside the hostName, and that a range it accepts covers its
// first and last address.
func FuzzMemberRange(f *testing.F) {
	for _, s := range []string{"192.168.1.2-10", "10.0.0.[1-10]", "10.0.0.1", "host-name", "1-2", "1.2.3.4-", "[1-2]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r, ok, err := memberRange(h)
		if err != nil {
			var col int
			if _, scanErr := fmt.Sscanf(err.Error(), "col %d:", &col); scanErr != nil || col < 1 || col > len(h)+1 || !ok {
				t.Fatalf("memberRange(%q) error %q: column outside the input", h, err)
			}
			return
		}
		if !ok {
			return
		}
		first, last := r.prefix+strconv.Itoa(r.first), r.prefix+strconv.Itoa(r.last)
		if !matchesWKA(h+":4000", first, 4000) || !matchesWKA(h+":4000", last, 4000) {
			t.Fatalf("memberRange(%q) = %+v, which does not cover %s and %s", h, r, first, last)
		}
	})
}
