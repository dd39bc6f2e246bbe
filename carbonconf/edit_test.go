package carbonconf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustAxis2(t *testing.T, s string) *Axis2 {
	t.Helper()
	a, err := ReadAxis2(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustCarbon(t *testing.T, s string) *Carbon {
	t.Helper()
	c, err := ReadCarbon(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCarbonSetEdits(t *testing.T) {
	tests := []struct {
		name, in, path, value, want string
	}{
		{"in place", "<Server>\n    <HostName>a</HostName>\n</Server>", "HostName", "b.example.com",
			"<Server>\n    <HostName>b.example.com</HostName>\n</Server>"},
		{"uncomment name-only comment", "<Server>\n    <!--HostName>www.wso2.org</HostName-->\n</Server>", "HostName", "esb.wso2.com",
			"<Server>\n    <HostName>esb.wso2.com</HostName>\n</Server>"},
		{"uncomment full comment", "<Server>\n    <!-- <MgtHostName>x</MgtHostName>-->\n</Server>", "MgtHostName", "mgt.esb.wso2.com",
			"<Server>\n    <MgtHostName>mgt.esb.wso2.com</MgtHostName>\n</Server>"},
		{"insert with sibling indentation", "<Server>\n\t<Name>x</Name>\n</Server>", "HostName", "h",
			"<Server>\n\t<Name>x</Name>\n\t<HostName>h</HostName>\n</Server>"},
		{"insert nested", "<Server>\n  <Name>x</Name>\n</Server>", "Ports/Offset", "2",
			"<Server>\n  <Name>x</Name>\n  <Ports>\n    <Offset>2</Offset>\n  </Ports>\n</Server>"},
		{"insert into empty element", "<Server>\n  <Ports>\n  </Ports>\n</Server>", "Ports/Offset", "2",
			"<Server>\n  <Ports>\n    <Offset>2</Offset>\n  </Ports>\n</Server>"},
		{"self-closing element", "<Server><HostName/></Server>", "HostName", "h",
			"<Server><HostName>h</HostName></Server>"},
		{"escaping", "<Server>\n <SvnPassword>x</SvnPassword>\n</Server>", "SvnPassword", `a<b&"c"`,
			"<Server>\n <SvnPassword>a&lt;b&amp;&quot;c&quot;</SvnPassword>\n</Server>"},
		{"CRLF and no trailing newline", "<Server>\r\n  <Name>x</Name>\r\n</Server>", "HostName", "h",
			"<Server>\r\n  <Name>x</Name>\r\n  <HostName>h</HostName>\r\n</Server>"},
		{"uncomments live block beside commented one", "<Server>\n  <!--<DeploymentSynchronizer>\n    <AutoCommit>false</AutoCommit>\n  </DeploymentSynchronizer>-->\n  <DeploymentSynchronizer>\n    <AutoCommit>false</AutoCommit>\n  </DeploymentSynchronizer>\n</Server>",
			"DeploymentSynchronizer/AutoCommit", "true",
			"<Server>\n  <!--<DeploymentSynchronizer>\n    <AutoCommit>false</AutoCommit>\n  </DeploymentSynchronizer>-->\n  <DeploymentSynchronizer>\n    <AutoCommit>true</AutoCommit>\n  </DeploymentSynchronizer>\n</Server>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCarbon(t, tt.in)
			if err := c.Set(tt.path, tt.value); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(c.Bytes())); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// Setting it again changes nothing.
			before := c.Bytes()
			if err := c.Set(tt.path, tt.value); err != nil || !bytes.Equal(before, c.Bytes()) {
				t.Errorf("second set changed the document (err %v)", err)
			}
		})
	}
}

func TestCommentedElementsAreNotLive(t *testing.T) {
	c := mustCarbon(t, `<Server xmlns="http://wso2.org/projects/carbon/carbon.xml">
    <!--HostName>www.wso2.org</HostName-->
    <!-- <MgtHostName>mgt.wso2.org</MgtHostName>-->
    <!--<DeploymentSynchronizer>
        <AutoCommit>true</AutoCommit>
    </DeploymentSynchronizer>-->
</Server>`)
	if c.HostName.Set() || c.MgtHostName.Set() || c.DeploymentSynchronizer != nil {
		t.Errorf("commented elements read as live: %+v %+v %+v", c.HostName, c.MgtHostName, c.DeploymentSynchronizer)
	}
	if c.Namespace != "http://wso2.org/projects/carbon/carbon.xml" {
		t.Errorf("namespace = %q", c.Namespace)
	}
}

func TestLatin1(t *testing.T) {
	in := "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<Server>\n  <Name>Caf\xe9</Name>\n</Server>"
	c := mustCarbon(t, in)
	if c.Name.Value != "Café" {
		t.Errorf("Name = %q, want Café", c.Name.Value)
	}
	if err := c.SetHostName("hôte"); err != nil {
		t.Fatal(err)
	}
	got := string(c.Bytes())
	if !strings.Contains(got, "<HostName>h&#xF4;te</HostName>") || !strings.Contains(got, "Caf\xe9") {
		t.Errorf("latin-1 document after edit:\n%q", got)
	}
	c2 := mustCarbon(t, got)
	if c2.HostName.Value != "hôte" {
		t.Errorf("re-read HostName = %q", c2.HostName.Value)
	}
}

const clusteringDoc = `<axisconfig>
    <clustering class="org.apache.axis2.clustering.tribes.TribesClusteringAgent" enable="false">
        <parameter name="membershipScheme">multicast</parameter>
        <!--parameter name="localMemberHost">127.0.0.1</parameter-->
        <parameter name="localMemberPort">4000</parameter>
        <parameter name="properties">
            <property name="backendServerURL" value="https://${hostName}:${httpsPort}/services/"/>
            <!--property name="subDomain" value="mgt"/-->
        </parameter>
        <members>
            <member>
                <hostName>127.0.0.1</hostName>
                <port>4000</port>
            </member>
        </members>
        <groupManagement enable="false"/>
    </clustering>
</axisconfig>`

func TestAxis2Setters(t *testing.T) {
	a := mustAxis2(t, clusteringDoc)
	steps := []func() error{
		func() error { return a.SetClusteringEnabled(true) },
		func() error { return a.SetClusteringParameter("membershipScheme", "wka") },
		func() error { return a.SetClusteringParameter("localMemberHost", "10.0.0.1") },
		func() error { return a.SetClusteringParameter("domain", "wso2.esb.domain") },
		func() error { return a.SetProperty("subDomain", "worker") },
		func() error { return a.SetProperty("mgtConsoleURL", "https://${hostName}:${httpsPort}/") },
		func() error { return a.AddMember("10.0.0.[1-10]", 4000) },
		func() error { _, err := a.RemoveMember("127.0.0.1", 4000); return err },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := `<axisconfig>
    <clustering class="org.apache.axis2.clustering.tribes.TribesClusteringAgent" enable="true">
        <parameter name="membershipScheme">wka</parameter>
        <parameter name="localMemberHost">10.0.0.1</parameter>
        <parameter name="localMemberPort">4000</parameter>
        <parameter name="properties">
            <property name="backendServerURL" value="https://${hostName}:${httpsPort}/services/"/>
            <property name="subDomain" value="worker"/>
            <property name="mgtConsoleURL" value="https://${hostName}:${httpsPort}/"/>
        </parameter>
        <parameter name="domain">wso2.esb.domain</parameter>
        <members>
            <member>
                <hostName>10.0.0.[1-10]</hostName>
                <port>4000</port>
            </member>
        </members>
        <groupManagement enable="false"/>
    </clustering>
</axisconfig>`
	if diff := cmp.Diff(want, string(a.Bytes())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	a2 := mustAxis2(t, string(a.Bytes()))
	c := a2.Clustering
	if !c.Enabled || c.MembershipScheme.Value != "wka" || c.Domain.Value != "wso2.esb.domain" || len(c.Members) != 1 || c.Members[0].Addr() != "10.0.0.[1-10]:4000" {
		t.Errorf("re-read clustering = %+v", c)
	}
	if removed, err := a.RemoveMember("10.9.9.9", 4000); removed || err != nil {
		t.Errorf("RemoveMember of absent member = %v, %v", removed, err)
	}
}

func TestAxis2InsertsClusteringAndMembers(t *testing.T) {
	a := mustAxis2(t, "<axisconfig>\n  <transportReceiver name=\"http\" class=\"x\"/>\n</axisconfig>\n")
	if err := a.SetMembers([]string{"10.0.0.1:4100", "10.0.0.2:4200"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetClusteringEnabled(true); err != nil {
		t.Fatal(err)
	}
	want := "<axisconfig>\n  <transportReceiver name=\"http\" class=\"x\"/>\n  <clustering class=\"" + HazelcastAgent + "\" enable=\"true\">\n" +
		"    <members>\n      <member>\n        <hostName>10.0.0.1</hostName>\n        <port>4100</port>\n      </member>\n" +
		"      <member>\n        <hostName>10.0.0.2</hostName>\n        <port>4200</port>\n      </member>\n    </members>\n  </clustering>\n</axisconfig>\n"
	if diff := cmp.Diff(want, string(a.Bytes())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSetterErrorsLeaveDocumentUnchanged(t *testing.T) {
	a := mustAxis2(t, clusteringDoc)
	before := a.Bytes()
	errs := []error{
		a.SetReceiverParameter("https", "WSDLEPRPrefix", "x"),
		a.SetClusteringParameter("properties", "x"),
		a.SetClusteringParameter("domain", "bad\x01"),
		a.AddMember("", 4000),
		a.AddMember("h", 0),
		a.SetMembers([]string{"nohost"}),
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
	if !bytes.Equal(before, a.Bytes()) {
		t.Error("failed setters changed the document")
	}
	c := mustCarbon(t, "<Server><Ports/></Server>")
	if err := c.SetOffset(-1); err == nil {
		t.Error("negative offset accepted")
	}
	if err := c.Set("Ports/Offset", "bad\x01"); err == nil {
		t.Error("control character accepted")
	}
	if got := string(c.Bytes()); got != "<Server><Ports/></Server>" {
		t.Errorf("document changed to %q", got)
	}
}

func TestReceiverParameter(t *testing.T) {
	in := `<axisconfig>
    <transportReceiver name="http" class="org.apache.synapse.transport.passthru.PassThroughHttpListener">
        <parameter name="port" locked="false">8280</parameter>
        <!--parameter name="WSDLEPRPrefix" locked="false">https://apachehost:port/somepath</parameter-->
    </transportReceiver>
    <transportReceiver name="https" class="org.apache.synapse.transport.passthru.PassThroughHttpSSLListener">
        <parameter name="port" locked="false">8243</parameter>
        <parameter name="keystore" locked="false">
            <KeyStore>
                <Password>wso2carbon</Password>
            </KeyStore>
        </parameter>
    </transportReceiver>
</axisconfig>`
	a := mustAxis2(t, in)
	if err := a.SetReceiverParameter("PassThroughHttpListener", "WSDLEPRPrefix", "http://esb.wso2.com:80"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetReceiverParameter("https", "WSDLEPRPrefix", "https://esb.wso2.com:443"); err != nil {
		t.Fatal(err)
	}
	got := string(a.Bytes())
	for _, want := range []string{
		"\n        <parameter name=\"WSDLEPRPrefix\" locked=\"false\">http://esb.wso2.com:80</parameter>\n    </transportReceiver>",
		"        </parameter>\n        <parameter name=\"WSDLEPRPrefix\" locked=\"false\">https://esb.wso2.com:443</parameter>\n    </transportReceiver>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	p, _ := a.Receivers[1].Param("keystore")
	if len(p.Nested) != 1 || p.Nested[0].Path != "KeyStore/Password" || p.Nested[0].Value != "wso2carbon" {
		t.Errorf("keystore nested = %+v", p.Nested)
	}
	if len(a.Secrets) != 1 || a.Secrets[0].Name != "KeyStore/Password" {
		t.Errorf("secrets = %+v", a.Secrets)
	}
}

func TestCatalinaProxyPort(t *testing.T) {
	c, err := ReadCatalina(strings.NewReader(`<Server>
  <Service name="Catalina">
    <Connector protocol="HTTP/1.1"
               port="9763"
               redirectPort="9443"/>
    <Connector protocol="HTTP/1.1" port="9443" SSLEnabled="true"/>
  </Service>
</Server>`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetConnectorAttr("http", "proxyPort", "80"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetConnectorAttr("https", "proxyPort", "443"); err != nil {
		t.Fatal(err)
	}
	want := `<Server>
  <Service name="Catalina">
    <Connector protocol="HTTP/1.1"
               port="9763"
               redirectPort="9443"
               proxyPort="80"/>
    <Connector protocol="HTTP/1.1" port="9443" SSLEnabled="true" proxyPort="443"/>
  </Service>
</Server>`
	if diff := cmp.Diff(want, string(c.Bytes())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := c.SetConnectorAttr("ajp", "proxyPort", "1"); err == nil {
		t.Error("scheme ajp accepted")
	}
}

func TestSaveAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "carbon.xml")
	if err := os.WriteFile(path, []byte("<Server><HostName>a</HostName></Server>"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCarbon(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetHostName("b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "<Server><HostName>b</HostName></Server>" {
		t.Errorf("saved %q", got)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(ents))
	}
	// A save into a missing directory fails and leaves nothing behind.
	if err := c.Save(filepath.Join(dir, "missing", "carbon.xml")); err == nil {
		t.Error("save into a missing directory succeeded")
	}
}

func TestLoadNodeErrors(t *testing.T) {
	if _, err := LoadNode(t.TempDir()); !errors.Is(err, ErrNoFiles) {
		t.Errorf("empty home: %v, want ErrNoFiles", err)
	}
	home := t.TempDir()
	p := filepath.Join(home, CarbonPath)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("<Server>\n  <HostName>x</Host>\n</Server>"), 0o644)
	_, err := LoadNode(home)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != p || pe.Line != 2 || pe.Col != 14 {
		t.Errorf("LoadNode = %v, want a ParseError at %s:2:14", err, p)
	}
}

func TestIdentityPlaceholders(t *testing.T) {
	home := makeHome(t, "stratos-installer-is-axis2.xml", "stratos-installer-sm-carbon.xml", "stratos-installer-is-catalina-server.xml")
	n, err := LoadNode(home)
	if err != nil {
		t.Fatal(err)
	}
	id, err := n.Identity()
	if !errors.Is(err, ErrNotNumber) {
		t.Fatalf("err = %v, want ErrNotNumber", err)
	}
	var names []string
	for _, e := range unwrapJoin(err) {
		var ve *ValueError
		if errors.As(e, &ve) {
			names = append(names, ve.Name+"="+ve.Value)
		}
	}
	want := []string{"localMemberPort=IS_LOCAL_MEMBER_PORT", "Ports/Offset=SC_PORT_OFFSET",
		"http Connector proxyPort=PROXY_PORT_HTTP", "https Connector proxyPort=PROXY_PORT_HTTPS"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if id.Domain != "IS_CLUSTERING_DOMAIN" || id.HTTPSPort != 9443 || len(id.WKA) != 1 {
		t.Errorf("identity = %+v", id)
	}
}

func TestIdentityOffset(t *testing.T) {
	home := makeHome(t, "docker-ei-p10-integrator1-axis2.xml", "docker-ei-p10-integrator1-carbon.xml", "docker-apim-p1-gateway-manager-catalina-server.xml")
	n, err := LoadNode(home)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Carbon.SetOffset(2); err != nil {
		t.Fatal(err)
	}
	id, err := n.Identity()
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{ClusteringEnabled: true, MembershipScheme: "wka", Domain: "wso2.integrator.domain",
		LocalMemberHost: "integrator1", LocalMemberPort: 4000, WKA: []string{"integrator2:4000"}, Offset: 2,
		HTTPPort: 9765, HTTPSPort: 9445, HTTPProxyPort: 80, HTTPSProxyPort: 443,
		HostName: "integrator.wso2.com", MgtHostName: "ui.integrator.wso2.com",
		Properties: map[string]string{
			"backendServerURL": "https://${hostName}:${httpsPort}/services/",
			"mgtConsoleURL":    "https://${hostName}:${httpsPort}/",
		}}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got, err := n.Expand(id.Properties["backendServerURL"], nil)
	if err != nil || got != "https://integrator.wso2.com:9445/services/" {
		t.Errorf("Expand = %q, %v", got, err)
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"hostName": "h", "httpsPort": "9443", "carbon.home": "/opt/c"}
	tests := []struct {
		in, want, err string
	}{
		{"https://${hostName}:${httpsPort}/", "https://h:9443/", ""},
		{"${carbon.home}/repository", "/opt/c/repository", ""},
		{"no variables", "no variables", ""},
		{"${a}${hostName}${b}", "", "unknown variable: a, b"},
		{"${open", "", `expected "}"`},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in, vars)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Expand(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			if strings.Contains(tt.err, "unknown") && !errors.Is(err, ErrUnknownVariable) {
				t.Errorf("Expand(%q) error does not wrap ErrUnknownVariable", tt.in)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEffectivePorts(t *testing.T) {
	ps := EffectivePorts(2)
	byName := map[string]int{}
	for _, p := range ps {
		byName[p.Name] = p.Port
	}
	want := map[string]int{"servlet HTTP": 9765, "servlet HTTPS": 9445, "JMX RMI registry": 10001,
		"JMX RMI server": 11113, "pass-through HTTP": 8282, "pass-through HTTPS": 8245, "ELB HTTP proxy": 8292,
		"clustering (localMemberPort)": 4000}
	for k, v := range want {
		if byName[k] != v {
			t.Errorf("%s = %d, want %d", k, byName[k], v)
		}
	}
}

// Seed 002: an older product's servlet transports proxied by the ELB's
// 8290/8243, the commented proxyPort parameters uncommented in place.
func TestSeed002ReceiverProxyPorts(t *testing.T) {
	a, err := LoadAxis2(filepath.Join("testdata", "axis2", "carbon-kernel-4.4.x-axis2.xml"))
	if err != nil {
		t.Fatal(err)
	}
	before := a.Bytes()
	if err := a.SetReceiverParameter("http", "proxyPort", "8290"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetReceiverParameter("https", "proxyPort", "8243"); err != nil {
		t.Fatal(err)
	}
	got := unifiedDiff("axis2.xml", before, a.Bytes())
	want := "--- a/axis2.xml\n+++ b/axis2.xml\n" +
		"@@ -246,7 +246,7 @@\n        Uncomment the following to enable any proxy like Apache2 mod_proxy or any load balancer. The port on the proxy server like Apache is 80\r\n        in this case.\r\n         -->\r\n-        <!--<parameter name=\"proxyPort\">80</parameter>-->\r\n+        <parameter name=\"proxyPort\">8290</parameter>\r\n     </transportReceiver>\r\n \r\n     <!--Please uncomment this in Multiple Instance Scenario if you want to use NIO Transport Recievers and \r\n" +
		"@@ -289,7 +289,7 @@\n        Uncomment the following to enable any proxy like Apache2 mod_proxy or any load balancer. The port on a proxy server like Apache is 443\r\n        in this case.\r\n         -->\r\n-        <!--<parameter name=\"proxyPort\">443</parameter>-->\r\n+        <parameter name=\"proxyPort\">8243</parameter>\r\n     </transportReceiver>\r\n \r\n     <!--\r\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	id, err := (&Node{Axis2: a}).Identity()
	if err != nil || id.HTTPProxyPort != 8290 || id.HTTPSProxyPort != 8243 {
		t.Errorf("proxy ports = %d, %d (%v)", id.HTTPProxyPort, id.HTTPSProxyPort, err)
	}
}

// An empty-element tag (<Ports/>, <members/>, <parameter name="properties"/>)
// that must take a child is expanded into a start tag, the child on a line
// of its own one indentation step deeper, and an end tag.
func TestInsertIntoEmptyElementTag(t *testing.T) {
	tests := []struct {
		name string
		in   string
		edit func(t *testing.T, in string) (out []byte, err error)
		want string
		// check re-reads want and reports what is wrong with it.
		check func(t *testing.T, out string)
	}{
		{
			name: "Carbon.Set into <Ports/>",
			in:   "<Server>\n    <Name>x</Name>\n    <Ports/>\n</Server>\n",
			edit: carbonEdit(func(c *Carbon) error { return c.SetOffset(2) }),
			want: "<Server>\n    <Name>x</Name>\n    <Ports>\n        <Offset>2</Offset>\n    </Ports>\n</Server>\n",
			check: func(t *testing.T, out string) {
				if c := mustCarbon(t, out); c.Ports.Offset.Value != "2" || c.Name.Value != "x" || len(c.Ports.All) != 0 {
					t.Errorf("re-read Ports = %+v, Name %q", c.Ports, c.Name.Value)
				}
			},
		},
		{
			name: "Carbon.Set nested into <DeploymentSynchronizer/> with attributes, tabs",
			in:   "<Server>\n\t<Name>x</Name>\n\t<DeploymentSynchronizer a=\"1\" />\n</Server>",
			edit: carbonEdit(func(c *Carbon) error { return c.Set("DeploymentSynchronizer/Svn/Url", "u") }),
			want: "<Server>\n\t<Name>x</Name>\n\t<DeploymentSynchronizer a=\"1\">\n\t\t<Svn>\n\t\t\t<Url>u</Url>\n\t\t</Svn>\n\t</DeploymentSynchronizer>\n</Server>",
			check: func(t *testing.T, out string) {
				c := mustCarbon(t, out)
				if c.DeploymentSynchronizer == nil {
					t.Fatal("no DeploymentSynchronizer")
				}
				if got := c.doc.text(elem(elem(elem(c.doc.root, "DeploymentSynchronizer"), "Svn"), "Url")); got != "u" {
					t.Errorf("re-read Svn/Url = %q", got)
				}
			},
		},
		{
			name: "Carbon.Set into <Ports/> on a line shared with its parent, CRLF",
			in:   "<Server>\r\n  <Name>x</Name>\r\n  <A><Ports/></A>\r\n</Server>",
			edit: carbonEdit(func(c *Carbon) error { return c.Set("A/Ports/Offset", "1") }),
			want: "<Server>\r\n  <Name>x</Name>\r\n  <A><Ports>\r\n    <Offset>1</Offset>\r\n  </Ports></A>\r\n</Server>",
		},
		{
			name: "SetHostName into <Server/>",
			in:   "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\r\n<Server xmlns=\"http://wso2.org/projects/carbon/carbon.xml\"/>",
			edit: carbonEdit(func(c *Carbon) error { return c.SetHostName("esb.wso2.com") }),
			want: "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\r\n<Server xmlns=\"http://wso2.org/projects/carbon/carbon.xml\">\r\n    <HostName>esb.wso2.com</HostName>\r\n</Server>",
			check: func(t *testing.T, out string) {
				if c := mustCarbon(t, out); c.HostName.Value != "esb.wso2.com" || c.Namespace != "http://wso2.org/projects/carbon/carbon.xml" {
					t.Errorf("re-read HostName %q, namespace %q", c.HostName.Value, c.Namespace)
				}
			},
		},
		{
			name: "SetProperty into <clustering/>",
			in:   "<axisconfig>\n  <clustering class=\"c\" enable=\"true\"/>\n</axisconfig>",
			edit: axis2Edit(func(a *Axis2) error { return a.SetProperty("subDomain", "mgt") }),
			want: "<axisconfig>\n  <clustering class=\"c\" enable=\"true\">\n    <parameter name=\"properties\">\n      <property name=\"subDomain\" value=\"mgt\"/>\n    </parameter>\n  </clustering>\n</axisconfig>",
			check: func(t *testing.T, out string) {
				if p, ok := mustAxis2(t, out).Clustering.Property("subDomain"); !ok || p.Value != "mgt" {
					t.Errorf("re-read subDomain = %+v", p)
				}
			},
		},
		{
			name: "SetProperty into <parameter name=\"properties\"/>",
			in:   "<axisconfig>\n    <clustering class=\"c\" enable=\"true\">\n        <parameter name=\"domain\">d</parameter>\n        <parameter name=\"properties\"/>\n    </clustering>\n</axisconfig>",
			edit: axis2Edit(func(a *Axis2) error { return a.SetProperty("subDomain", "worker") }),
			want: "<axisconfig>\n    <clustering class=\"c\" enable=\"true\">\n        <parameter name=\"domain\">d</parameter>\n        <parameter name=\"properties\">\n            <property name=\"subDomain\" value=\"worker\"/>\n        </parameter>\n    </clustering>\n</axisconfig>",
			check: func(t *testing.T, out string) {
				c := mustAxis2(t, out).Clustering
				if p, ok := c.Property("subDomain"); !ok || p.Value != "worker" || len(c.Properties) != 1 || c.Domain.Value != "d" {
					t.Errorf("re-read clustering = %+v", c)
				}
			},
		},
		{
			name: "AddMember into <members/>",
			in:   "<axisconfig>\n  <clustering class=\"c\" enable=\"true\">\n    <members/>\n  </clustering>\n</axisconfig>\n",
			edit: axis2Edit(func(a *Axis2) error { return a.AddMember("10.0.0.1", 4100) }),
			want: "<axisconfig>\n  <clustering class=\"c\" enable=\"true\">\n    <members>\n      <member>\n        <hostName>10.0.0.1</hostName>\n        <port>4100</port>\n      </member>\n    </members>\n  </clustering>\n</axisconfig>\n",
			check: func(t *testing.T, out string) {
				c := mustAxis2(t, out).Clustering
				if len(c.Members) != 1 || c.Members[0].Addr() != "10.0.0.1:4100" {
					t.Errorf("re-read members = %+v", c.Members)
				}
			},
		},
		{
			name: "SetMembers into <members/>",
			in:   "<axisconfig>\n  <clustering class=\"c\" enable=\"true\">\n    <members/>\n  </clustering>\n</axisconfig>\n",
			edit: axis2Edit(func(a *Axis2) error { return a.SetMembers([]string{"a:1", "b:2"}) }),
			want: "<axisconfig>\n  <clustering class=\"c\" enable=\"true\">\n    <members>\n      <member>\n        <hostName>a</hostName>\n        <port>1</port>\n      </member>\n      <member>\n        <hostName>b</hostName>\n        <port>2</port>\n      </member>\n    </members>\n  </clustering>\n</axisconfig>\n",
			check: func(t *testing.T, out string) {
				c := mustAxis2(t, out).Clustering
				if len(c.Members) != 2 || c.Members[0].Addr() != "a:1" || c.Members[1].Addr() != "b:2" {
					t.Errorf("re-read members = %+v", c.Members)
				}
			},
		},
		{
			name: "SetClusteringParameter into <clustering/>",
			in:   "<axisconfig>\n    <transportReceiver name=\"http\" class=\"x\"/>\n    <clustering class=\"c\" enable=\"true\"/>\n</axisconfig>",
			edit: axis2Edit(func(a *Axis2) error { return a.SetClusteringParameter("domain", "wso2.esb.domain") }),
			want: "<axisconfig>\n    <transportReceiver name=\"http\" class=\"x\"/>\n    <clustering class=\"c\" enable=\"true\">\n        <parameter name=\"domain\">wso2.esb.domain</parameter>\n    </clustering>\n</axisconfig>",
			check: func(t *testing.T, out string) {
				a := mustAxis2(t, out)
				if a.Clustering.Domain.Value != "wso2.esb.domain" || len(a.Clustering.Parameters) != 1 || len(a.Receivers) != 1 {
					t.Errorf("re-read = %+v", a)
				}
			},
		},
		{
			name: "SetMembers into <clustering/>",
			in:   "<axisconfig>\n    <clustering class=\"c\" enable=\"true\"/>\n</axisconfig>",
			edit: axis2Edit(func(a *Axis2) error { return a.SetMembers([]string{"a:1"}) }),
			want: "<axisconfig>\n    <clustering class=\"c\" enable=\"true\">\n        <members>\n            <member>\n                <hostName>a</hostName>\n                <port>1</port>\n            </member>\n        </members>\n    </clustering>\n</axisconfig>",
		},
		{
			name: "SetReceiverParameter into <transportReceiver/>",
			in:   "<axisconfig>\n  <transportReceiver name=\"http\" class=\"x.PassThroughHttpListener\"/>\n</axisconfig>",
			edit: axis2Edit(func(a *Axis2) error {
				return a.SetReceiverParameter("PassThroughHttpListener", "WSDLEPRPrefix", "http://esb.wso2.com:80")
			}),
			want: "<axisconfig>\n  <transportReceiver name=\"http\" class=\"x.PassThroughHttpListener\">\n    <parameter name=\"WSDLEPRPrefix\" locked=\"false\">http://esb.wso2.com:80</parameter>\n  </transportReceiver>\n</axisconfig>",
			check: func(t *testing.T, out string) {
				a := mustAxis2(t, out)
				if p, ok := a.Receivers[0].Param("WSDLEPRPrefix"); !ok || p.Value != "http://esb.wso2.com:80" || len(a.Receivers[0].Parameters) != 1 {
					t.Errorf("re-read receiver = %+v", a.Receivers)
				}
			},
		},
		{
			name: "SetClusteringEnabled into <axisconfig/>",
			in:   "<?xml version=\"1.0\"?>\n<axisconfig/>\n",
			edit: axis2Edit(func(a *Axis2) error { return a.SetClusteringEnabled(true) }),
			want: "<?xml version=\"1.0\"?>\n<axisconfig>\n    <clustering class=\"" + HazelcastAgent + "\" enable=\"true\">\n    </clustering>\n</axisconfig>\n",
			check: func(t *testing.T, out string) {
				if c := mustAxis2(t, out).Clustering; c == nil || !c.Enabled || c.Class != HazelcastAgent {
					t.Errorf("re-read clustering = %+v", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.edit(t, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(out)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tt.check != nil {
				tt.check(t, string(out))
			}
			// The same edit again changes nothing.
			again, err := tt.edit(t, string(out))
			if err != nil || !bytes.Equal(again, out) {
				t.Errorf("second edit: %v, changed:\n%s", err, again)
			}
		})
	}
}

func carbonEdit(fn func(*Carbon) error) func(*testing.T, string) ([]byte, error) {
	return func(t *testing.T, in string) ([]byte, error) {
		c := mustCarbon(t, in)
		err := fn(c)
		return c.Bytes(), err
	}
}

func axis2Edit(fn func(*Axis2) error) func(*testing.T, string) ([]byte, error) {
	return func(t *testing.T, in string) ([]byte, error) {
		a := mustAxis2(t, in)
		err := fn(a)
		return a.Bytes(), err
	}
}

// ConfigureManager on an axis2.xml whose properties parameter is an
// empty-element tag fills it in.
func TestConfigureEmptyPropertiesParameter(t *testing.T) {
	home := makeHome(t, "carbon-kernel-4.4.x-axis2.xml", "carbon-kernel-4.4.x-carbon.xml", "carbon-kernel-4.4.x-catalina-server.xml")
	p := filepath.Join(home, Axis2Path)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	src := regexp.MustCompile(`(?s)<parameter name="properties">.*?</parameter>`).ReplaceAll(b, []byte(`<parameter name="properties"/>`))
	if err := os.WriteFile(p, src, 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := LoadNode(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.ConfigureManager(seedSetup()); err != nil {
		t.Fatal(err)
	}
	id, err := (&Node{Axis2: mustAxis2(t, string(n.Axis2.Bytes()))}).Identity()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"subDomain":        RoleManager,
		"backendServerURL": "https://${hostName}:${httpsPort}/services/",
		"mgtConsoleURL":    "https://${hostName}:${httpsPort}/",
	}
	if diff := cmp.Diff(want, id.Properties); diff != "" {
		t.Errorf("properties (-want +got):\n%s", diff)
	}
}
