package carbonconf

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// HazelcastAgent is the clustering agent class the Carbon 4.x clustering
// guides enable.
const HazelcastAgent = "org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent"

// Axis2 is a parsed axis2.xml. The exported fields are a model of what the
// file says, rebuilt after every edit; everything else in the file (unknown
// elements, comments, layout) is kept byte for byte. An Axis2 is not safe for
// concurrent use.
type Axis2 struct {
	// File names the file in errors and findings. LoadAxis2 sets it to the
	// path; ReadAxis2 leaves it empty.
	File string

	// Clustering is the live <clustering> element, nil when the file has
	// none (a commented-out one does not count).
	Clustering *Clustering

	// Receivers and Senders are the live <transportReceiver> and
	// <transportSender> elements in file order.
	Receivers []Transport
	Senders   []Transport

	// Secrets lists every password in the file (keystore and truststore
	// passwords of the transports, among others).
	Secrets []Secret

	doc *xdoc
}

// Clustering is the model of axis2.xml's <clustering> element.
type Clustering struct {
	Class   string // the agent class attribute
	Enable  Field  // the enable attribute as written
	Enabled bool   // enable="true"

	// The well-known parameters; a zero Field means the parameter is absent.
	MembershipScheme       Field // wka, multicast, or others, kept as written
	Domain                 Field
	LocalMemberHost        Field
	LocalMemberBindAddress Field
	LocalMemberPort        Field // not shifted by the port offset

	Parameters      []Parameter      // every <parameter>, in file order
	Properties      []Property       // the properties parameter's <property> children
	Members         []Member         // <members><member>: the well-known members
	GroupManagement *GroupManagement // nil when absent
	Line, Col       int              // where <clustering> starts
}

// Property is one <property name value/> of the clustering properties.
type Property struct {
	Name, Value string
	Line, Col   int
}

// Member is one well-known member. HostName may be an address range in the
// last octet, as the Carbon and Hazelcast guides write it, 192.168.1.2-10
// (2 to 10), or 10.0.0.[1-10].
type Member struct {
	HostName  string
	Port      string // as written; see Addr
	Line, Col int
}

// Addr returns "hostName:port", the form WKA lists use.
func (m Member) Addr() string { return net.JoinHostPort(m.HostName, m.Port) }

// GroupManagement is the <groupManagement> element.
type GroupManagement struct {
	Enable  string
	Domains []ApplicationDomain
}

// ApplicationDomain is one <applicationDomain> of groupManagement.
type ApplicationDomain struct {
	Name, Description, Agent, SubDomain, Port string
	Line, Col                                 int
}

// Parameter is one <parameter name locked> element. Value is its text;
// parameters that hold XML (keystore, truststore) have their leaf values in
// Nested instead.
type Parameter struct {
	Name      string
	Value     string
	Locked    string    // the locked attribute, "" when absent
	Nested    []Setting // leaf elements inside, by slash-separated path
	Line, Col int
}

// Setting is a leaf value found by its path below some element. Leaves
// whose path would be longer than 1,024 bytes are not listed (see
// docs/carbonconf.md, Limits).
type Setting struct {
	Path string // e.g. "KeyStore/Password"
	Field
}

// Transport is a <transportReceiver> or <transportSender>.
type Transport struct {
	Name       string
	Class      string
	Parameters []Parameter
	Line, Col  int
}

// Param returns the transport's parameter with this name.
func (t Transport) Param(name string) (Parameter, bool) {
	return findParam(t.Parameters, name)
}

// Param returns the clustering parameter with this name.
func (c *Clustering) Param(name string) (Parameter, bool) {
	return findParam(c.Parameters, name)
}

// Property returns the value of the clustering property with this name.
func (c *Clustering) Property(name string) (Property, bool) {
	for _, p := range c.Properties {
		if p.Name == name {
			return p, true
		}
	}
	return Property{}, false
}

func findParam(ps []Parameter, name string) (Parameter, bool) {
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return Parameter{}, false
}

// ReadAxis2 reads an axis2.xml. Malformed XML, or a root element other than
// <axisconfig>, gives a *ParseError.
func ReadAxis2(r io.Reader) (*Axis2, error) {
	b, err := readAll(r)
	if err != nil {
		return nil, err
	}
	return parseAxis2("", b)
}

// LoadAxis2 reads the axis2.xml at path.
func LoadAxis2(path string) (*Axis2, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("carbonconf: %w", err)
	}
	return parseAxis2(path, b)
}

func parseAxis2(file string, b []byte) (*Axis2, error) {
	d, err := parseXML(file, b)
	if err != nil {
		return nil, err
	}
	if err := expectRoot(d, "axisconfig"); err != nil {
		return nil, err
	}
	a := &Axis2{File: file, doc: d}
	a.build()
	return a, nil
}

func expectRoot(d *xdoc, name string) error {
	if localName(d.root.name) != name {
		l, c := d.pos(d.root.start)
		return &ParseError{File: d.file, Line: l, Col: c, Err: fmt.Errorf("expected root element <%s>, found <%s>", name, d.root.name)}
	}
	return nil
}

// WriteTo writes the document. An unedited document is written exactly as
// it was read.
func (a *Axis2) WriteTo(w io.Writer) (int64, error) { return writeBytes(w, a.doc.src) }

// Bytes returns a copy of the document's bytes.
func (a *Axis2) Bytes() []byte { return append([]byte(nil), a.doc.src...) }

// Save writes the document to path atomically, keeping the file's mode,
// owner and group; a symbolic link at path is followed and kept. On error
// the file is as it was. Node.Save writes a node's files all or nothing.
func (a *Axis2) Save(path string) error { return writeFileAtomic(path, a.doc.src) }

func (a *Axis2) build() {
	d := a.doc
	a.Clustering, a.Receivers, a.Senders = nil, nil, nil
	if c := elem(d.root, "clustering"); c != nil {
		a.Clustering = buildClustering(d, c)
	}
	for _, t := range elems(d.root, "transportReceiver") {
		a.Receivers = append(a.Receivers, buildTransport(d, t))
	}
	for _, t := range elems(d.root, "transportSender") {
		a.Senders = append(a.Senders, buildTransport(d, t))
	}
	a.Secrets = findSecrets(d)
}

func buildParam(d *xdoc, p *xnode) Parameter {
	name, _ := d.attr(p, "name")
	locked, _ := d.attr(p, "locked")
	l, c := d.pos(p.start)
	out := Parameter{Name: name, Locked: locked, Line: l, Col: c}
	if p.hasElements() {
		out.Nested = leaves(d, p)
	} else {
		out.Value = d.text(p)
	}
	return out
}

// maxNamePath is the longest Setting.Path (and parent part of a
// Secret.Name) built, in bytes. Each leaf's path repeats its ancestors'
// names, so without a bound a few long names above many leaves would cost
// memory in the square of the file's size. Carbon's paths are under 64
// bytes.
const maxNamePath = 1024

// leaves lists the leaf elements below n with their paths, in document
// order. A leaf whose path would be longer than maxNamePath is left out.
// The path is built in one buffer as the walk goes down and shrunk as it
// comes up, and a string is made only for a leaf listed, so the cost is
// linear in the size of what is listed.
func leaves(d *xdoc, n *xnode) []Setting {
	var out []Setting
	var buf []byte
	var walk func(n *xnode)
	walk = func(n *xnode) {
		for _, c := range n.children {
			if c.kind != xElement {
				continue
			}
			mark := len(buf)
			if mark > 0 {
				buf = append(buf, '/')
			}
			if len(buf) <= maxNamePath {
				buf = append(buf, localName(c.name)...)
			} else {
				buf = append(buf, '.') // too long to list: any byte holds the place
			}
			if c.hasElements() {
				walk(c)
			} else if len(buf) <= maxNamePath {
				out = append(out, Setting{Path: string(buf), Field: d.field(c)})
			}
			buf = buf[:mark]
		}
	}
	walk(n)
	return out
}

func buildTransport(d *xdoc, t *xnode) Transport {
	name, _ := d.attr(t, "name")
	class, _ := d.attr(t, "class")
	l, c := d.pos(t.start)
	out := Transport{Name: name, Class: class, Line: l, Col: c}
	for _, p := range elems(t, "parameter") {
		out.Parameters = append(out.Parameters, buildParam(d, p))
	}
	return out
}

func buildClustering(d *xdoc, n *xnode) *Clustering {
	c := &Clustering{}
	c.Line, c.Col = d.pos(n.start)
	c.Class, _ = d.attr(n, "class")
	c.Enable = d.attrField(n, "enable")
	c.Enabled = c.Enable.Bool()
	for _, p := range elems(n, "parameter") {
		name, _ := d.attr(p, "name")
		c.Parameters = append(c.Parameters, buildParam(d, p))
		var f *Field
		switch name {
		case "membershipScheme":
			f = &c.MembershipScheme
		case "domain":
			f = &c.Domain
		case "localMemberHost":
			f = &c.LocalMemberHost
		case "localMemberBindAddress":
			f = &c.LocalMemberBindAddress
		case "localMemberPort":
			f = &c.LocalMemberPort
		case "properties":
			for _, pr := range elems(p, "property") {
				pn, _ := d.attr(pr, "name")
				pv, _ := d.attr(pr, "value")
				l, col := d.pos(pr.start)
				c.Properties = append(c.Properties, Property{Name: pn, Value: pv, Line: l, Col: col})
			}
		}
		if f != nil && !f.Set() {
			*f = d.field(p)
		}
	}
	if ms := elem(n, "members"); ms != nil {
		for _, m := range elems(ms, "member") {
			l, col := d.pos(m.start)
			c.Members = append(c.Members, Member{
				HostName: d.text(elem(m, "hostName")),
				Port:     d.text(elem(m, "port")),
				Line:     l, Col: col,
			})
		}
	}
	if gm := elem(n, "groupManagement"); gm != nil {
		g := &GroupManagement{}
		g.Enable, _ = d.attr(gm, "enable")
		for _, ad := range elems(gm, "applicationDomain") {
			l, col := d.pos(ad.start)
			x := ApplicationDomain{Line: l, Col: col}
			x.Name, _ = d.attr(ad, "name")
			x.Description, _ = d.attr(ad, "description")
			x.Agent, _ = d.attr(ad, "agent")
			x.SubDomain, _ = d.attr(ad, "subDomain")
			x.Port, _ = d.attr(ad, "port")
			g.Domains = append(g.Domains, x)
		}
		c.GroupManagement = g
	}
	return c
}

// edit runs fn as one transaction on the document and rebuilds the model.
func (a *Axis2) edit(fn func(d *xdoc) error) error {
	a.doc.file = a.File
	err := a.doc.transact(func() error { return fn(a.doc) })
	a.build()
	return err
}

// clustering returns the live <clustering> element, uncommenting a
// commented-out one, or inserting an empty one at the end of the document.
func (d *xdoc) clusteringNode() (*xnode, error) {
	if c := elem(d.root, "clustering"); c != nil {
		return c, nil
	}
	ok, err := d.uncomment(d.root, func(_ *xdoc, n *xnode) bool { return localName(n.name) == "clustering" })
	if err != nil {
		return nil, err
	}
	if !ok {
		markup := fmt.Sprintf("<clustering class=%q enable=\"false\">\n</clustering>", HazelcastAgent)
		if err := d.insertChild(d.root, nil, markup); err != nil {
			return nil, err
		}
	}
	return elem(d.root, "clustering"), nil
}

// SetClusteringEnabled sets <clustering enable>. When the file has no live
// <clustering> element, a commented-out one is uncommented, or a new one is
// added.
func (a *Axis2) SetClusteringEnabled(on bool) error {
	return a.edit(func(d *xdoc) error {
		c, err := d.clusteringNode()
		if err != nil {
			return err
		}
		return d.setAttr(c, "enable", strconv.FormatBool(on))
	})
}

// SetClusteringClass sets the clustering agent class.
func (a *Axis2) SetClusteringClass(class string) error {
	return a.edit(func(d *xdoc) error {
		c, err := d.clusteringNode()
		if err != nil {
			return err
		}
		return d.setAttr(c, "class", class)
	})
}

// SetClusteringParameter sets a clustering <parameter name> to value: in
// place when it is live, by uncommenting it when it is commented out, or by
// adding it after the last parameter.
func (a *Axis2) SetClusteringParameter(name, value string) error {
	if name == "properties" {
		return fmt.Errorf("carbonconf: the properties parameter holds elements; use SetProperty")
	}
	return a.edit(func(d *xdoc) error {
		c, err := d.clusteringNode()
		if err != nil {
			return err
		}
		return d.setParameter(c, name, value, "")
	})
}

// setParameter sets <parameter name> below parent (live, commented, or new).
func (d *xdoc) setParameter(parent *xnode, name, value, locked string) error {
	isParam := func(fd *xdoc, n *xnode) bool {
		v, _ := fd.attr(n, "name")
		return localName(n.name) == "parameter" && v == name && !n.hasElements()
	}
	find := func() *xnode {
		for _, p := range elems(parent, "parameter") {
			if isParam(d, p) {
				return p
			}
		}
		return nil
	}
	path := nodePath(parent)
	if p := find(); p != nil {
		return d.setText(p, value)
	}
	ok, err := d.uncomment(parent, isParam)
	if err != nil {
		return err
	}
	parent = d.follow(path)
	if ok {
		return d.setText(find(), value)
	}
	attrs := fmt.Sprintf("name=%q", d.encode(name))
	if locked != "" {
		attrs += fmt.Sprintf(" locked=%q", locked)
	}
	markup := fmt.Sprintf("<parameter %s>%s</parameter>", attrs, d.encode(value))
	return d.insertChild(parent, firstNonParameter(parent), markup)
}

// firstNonParameter returns the first element child after the parameters,
// so new parameters go with the others.
func firstNonParameter(n *xnode) *xnode {
	seen := false
	for _, c := range elems(n, "") {
		if localName(c.name) == "parameter" {
			seen = true
			continue
		}
		if seen {
			return c
		}
	}
	return nil
}

// SetProperty sets a clustering member property (subDomain,
// backendServerURL, mgtConsoleURL, …) in <parameter name="properties">,
// creating that parameter when needed.
func (a *Axis2) SetProperty(name, value string) error {
	return a.edit(func(d *xdoc) error {
		c, err := d.clusteringNode()
		if err != nil {
			return err
		}
		cpath := nodePath(c)
		props := propertiesNode(d, c)
		if props == nil {
			if err := d.insertChild(c, firstNonParameter(c), `<parameter name="properties">`+"\n</parameter>"); err != nil {
				return err
			}
			props = propertiesNode(d, d.follow(cpath))
		}
		isProp := func(fd *xdoc, n *xnode) bool {
			v, _ := fd.attr(n, "name")
			return localName(n.name) == "property" && v == name
		}
		for _, p := range elems(props, "property") {
			if isProp(d, p) {
				return d.setAttr(p, "value", value)
			}
		}
		ppath := nodePath(props)
		ok, err := d.uncomment(props, isProp)
		if err != nil {
			return err
		}
		props = d.follow(ppath)
		if ok {
			for _, p := range elems(props, "property") {
				if isProp(d, p) {
					return d.setAttr(p, "value", value)
				}
			}
		}
		return d.insertChild(props, nil, fmt.Sprintf("<property name=%q value=%q/>", d.encode(name), d.encode(value)))
	})
}

func propertiesNode(d *xdoc, c *xnode) *xnode {
	for _, p := range elems(c, "parameter") {
		if v, _ := d.attr(p, "name"); v == "properties" {
			return p
		}
	}
	return nil
}

// AddMember adds a well-known member unless it is already listed. host may
// be a range such as 192.168.1.2-10 or 10.0.0.[1-10].
func (a *Axis2) AddMember(host string, port int) error {
	if host == "" || port <= 0 || port > 65535 {
		return fmt.Errorf("carbonconf: add member %q:%d: want a host and a port in 1-65535", host, port)
	}
	return a.edit(func(d *xdoc) error { return d.addMember(host, strconv.Itoa(port)) })
}

// membersNode returns the live <members> element, uncommenting a
// commented-out one or adding an empty one before groupManagement.
func (d *xdoc) membersNode() (*xnode, error) {
	c, err := d.clusteringNode()
	if err != nil {
		return nil, err
	}
	if ms := elem(c, "members"); ms != nil {
		return ms, nil
	}
	cpath := nodePath(c)
	ok, err := d.uncomment(c, func(_ *xdoc, n *xnode) bool { return localName(n.name) == "members" })
	if err != nil {
		return nil, err
	}
	c = d.follow(cpath)
	if !ok {
		if err := d.insertChild(c, elem(c, "groupManagement"), "<members>\n</members>"); err != nil {
			return nil, err
		}
		c = d.follow(cpath)
	}
	return elem(c, "members"), nil
}

func (d *xdoc) addMember(host, port string) error {
	ms, err := d.membersNode()
	if err != nil {
		return err
	}
	for _, m := range elems(ms, "member") {
		if d.text(elem(m, "hostName")) == host && d.text(elem(m, "port")) == port {
			return nil
		}
	}
	return d.insertChild(ms, nil, memberMarkup(d, d.indentUnit(), host, port))
}

// memberMarkup is a <member> element, its children indented by unit.
func memberMarkup(d *xdoc, unit, host, port string) string {
	return fmt.Sprintf("<member>\n%s<hostName>%s</hostName>\n%s<port>%s</port>\n</member>", unit, d.encode(host), unit, d.encode(port))
}

// RemoveMember removes the well-known member host:port. It reports whether
// the member was listed.
func (a *Axis2) RemoveMember(host string, port int) (bool, error) {
	removed := false
	err := a.edit(func(d *xdoc) error {
		ms := elem(elem(d.root, "clustering"), "members")
		for _, m := range elems(ms, "member") {
			if d.text(elem(m, "hostName")) == host && d.text(elem(m, "port")) == strconv.Itoa(port) {
				removed = true
				return d.removeNode(m)
			}
		}
		return nil
	})
	return removed, err
}

// SetMembers makes the well-known members exactly addrs ("host:port" each):
// members not listed are removed, missing ones are added after the others.
// Nothing changes when the list already matches.
func (a *Axis2) SetMembers(addrs []string) error {
	type hp struct{ host, port string }
	want := make([]hp, 0, len(addrs))
	for _, s := range addrs {
		h, p, err := splitHostPort(s)
		if err != nil {
			return err
		}
		want = append(want, hp{h, strconv.Itoa(p)})
	}
	return a.edit(func(d *xdoc) error {
		keep := map[hp]bool{}
		for _, w := range want {
			keep[w] = true
		}
		if _, err := d.membersNode(); err != nil {
			return err
		}
		// Every member to drop goes in one edit, and every member to add
		// in another: an edit parses the document again, and one per
		// member would cost time quadratic in a long list.
		var drop []*xnode
		have := map[hp]bool{}
		for _, m := range elems(elem(elem(d.root, "clustering"), "members"), "member") {
			k := hp{d.text(elem(m, "hostName")), d.text(elem(m, "port"))}
			if !keep[k] {
				drop = append(drop, m)
				continue
			}
			have[k] = true
		}
		if err := d.removeNodes(drop); err != nil {
			return err
		}
		var add []string
		u := d.indentUnit()
		for _, w := range want {
			if have[w] {
				continue
			}
			have[w] = true
			add = append(add, memberMarkup(d, u, w.host, w.port))
		}
		if len(add) == 0 {
			return nil
		}
		ms, err := d.membersNode()
		if err != nil {
			return err
		}
		return d.insertChild(ms, nil, strings.Join(add, "\n"))
	})
}

// splitHostPort splits "host:port" where host may be a range like
// 192.168.1.2-10 or 10.0.0.[1-10].
func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("carbonconf: member %q: want host:port", s)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s[:i], "["), "]")
	if strings.Contains(s[:i], "[") && !strings.HasPrefix(s, "[") {
		host = s[:i] // an address range, not a bracketed IPv6 address
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("carbonconf: member %q: want a port in 1-65535", s)
	}
	return host, p, nil
}

// SetReceiverParameter sets a parameter of the one live transportReceiver
// whose name or class is transport (a class may be given by its simple
// name, such as PassThroughHttpSSLListener). A commented-out parameter is
// uncommented; a missing one is added with locked="false".
func (a *Axis2) SetReceiverParameter(transport, name, value string) error {
	return a.edit(func(d *xdoc) error {
		var found []*xnode
		for _, t := range elems(d.root, "transportReceiver") {
			if transportMatches(d, t, transport) {
				found = append(found, t)
			}
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("carbonconf: %s: no live transportReceiver %q", displayName(d.file), transport)
		case 1:
		default:
			return fmt.Errorf("carbonconf: %s: %d live transportReceivers match %q; name the class", displayName(d.file), len(found), transport)
		}
		return d.setParameter(found[0], name, value, "false")
	})
}

func transportMatches(d *xdoc, t *xnode, want string) bool {
	name, _ := d.attr(t, "name")
	class, _ := d.attr(t, "class")
	return name == want || class == want || strings.HasSuffix(class, "."+want)
}

// HasReceiver reports whether a live transportReceiver's name or class
// matches transport (as in SetReceiverParameter).
func (a *Axis2) HasReceiver(transport string) bool {
	for _, t := range elems(a.doc.root, "transportReceiver") {
		if transportMatches(a.doc, t, transport) {
			return true
		}
	}
	return false
}
