package carbonconf

// Port is one port of a Carbon server and whether <Ports><Offset> shifts it.
type Port struct {
	Name   string // what listens, e.g. "servlet HTTPS"
	Port   int    // the port number (default, or after an offset)
	Offset bool   // true when the port offset applies to it
}

// DefaultPorts returns the default port table of a Carbon 4.x server and of
// the products built on it, as listed in the product documentation ("Default
// Ports of WSO2 Products", docs.wso2.com/display/Carbon4xx and
// docs.wso2.com/display/ADMIN44x). Every port but the clustering port is
// shifted by the port offset: "the port value will automatically be
// increased" (seed 000), while localMemberPort "is not affected by the port
// offset value" (seeds 000 and 001).
func DefaultPorts() []Port {
	return []Port{
		{Name: "servlet HTTP", Port: 9763, Offset: true},                  // catalina-server.xml http Connector
		{Name: "servlet HTTPS", Port: 9443, Offset: true},                 // catalina-server.xml https Connector, management console
		{Name: "JMX RMI registry", Port: 9999, Offset: true},              // carbon.xml Ports/JMX/RMIRegistryPort
		{Name: "JMX RMI server", Port: 11111, Offset: true},               // carbon.xml Ports/JMX/RMIServerPort
		{Name: "embedded LDAP", Port: 10389, Offset: true},                // carbon.xml Ports/EmbeddedLDAP/LDAPServerPort
		{Name: "embedded KDC", Port: 8000, Offset: true},                  // carbon.xml Ports/EmbeddedLDAP/KDCServerPort
		{Name: "Thrift entitlement", Port: 10500, Offset: true},           // carbon.xml Ports/ThriftEntitlementReceivePort
		{Name: "embedded Qpid broker", Port: 5672, Offset: true},          // carbon.xml Ports/EmbeddedQpid/BrokerPort
		{Name: "pass-through HTTP", Port: 8280, Offset: true},             // axis2.xml PassThroughHttpListener (ESB, ELB)
		{Name: "pass-through HTTPS", Port: 8243, Offset: true},            // axis2.xml PassThroughHttpSSLListener (ESB, ELB)
		{Name: "ELB HTTP proxy", Port: 8290, Offset: true},                // the ELB's http proxy port (seed 002)
		{Name: "clustering (localMemberPort)", Port: 4000, Offset: false}, // axis2.xml clustering localMemberPort
	}
}

// EffectivePorts returns DefaultPorts with offset added where it applies.
func EffectivePorts(offset int) []Port {
	ps := DefaultPorts()
	for i := range ps {
		if ps[i].Offset {
			ps[i].Port += offset
		}
	}
	return ps
}
