package carbonconf

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Carbon is a parsed carbon.xml (namespace
// http://wso2.org/projects/carbon/carbon.xml, kept as written). The exported
// fields model what the file says and are rebuilt after every edit; every
// other byte is kept. A Carbon is not safe for concurrent use.
type Carbon struct {
	// File names the file in errors and findings; LoadCarbon sets it.
	File string

	Namespace   string // the root's default namespace, "" when none
	Name        Field  // server name
	Version     Field  // server version
	HostName    Field  // zero when absent or only commented out
	MgtHostName Field

	Ports                  CarbonPorts
	DeploymentSynchronizer *DeploymentSynchronizer // nil when there is no live one

	// Secrets lists every password in the file.
	Secrets []Secret

	doc       *xdoc
	line, col int // where <Server> starts
}

// CarbonPorts is the <Ports> element.
type CarbonPorts struct {
	Offset          Field // may hold an installer placeholder; see Field.Int
	RMIRegistryPort Field // JMX/RMIRegistryPort
	RMIServerPort   Field // JMX/RMIServerPort
	// All lists every leaf under <Ports> except Offset, by path
	// ("JMX/RMIRegistryPort", "EmbeddedLDAP/LDAPServerPort", …). Each is
	// shifted by the offset at run time.
	All []Setting
}

// DeploymentSynchronizer is the live <DeploymentSynchronizer> element. Seeds
// 000 and 001: AutoCommit is true on the manager only; workers only check
// out.
type DeploymentSynchronizer struct {
	Enabled              Field
	AutoCommit           Field
	AutoCheckout         Field
	RepositoryType       Field
	SvnURL               Field // <SvnUrl>
	SvnUser              Field
	SvnPassword          Field
	SvnURLAppendTenantID Field // <SvnUrlAppendTenantId>
	Line, Col            int
}

// ReadCarbon reads a carbon.xml. Malformed XML, or a root element other than
// <Server>, gives a *ParseError.
func ReadCarbon(r io.Reader) (*Carbon, error) {
	b, err := readAll(r)
	if err != nil {
		return nil, err
	}
	return parseCarbon("", b)
}

// LoadCarbon reads the carbon.xml at path.
func LoadCarbon(path string) (*Carbon, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("carbonconf: %w", err)
	}
	return parseCarbon(path, b)
}

func parseCarbon(file string, b []byte) (*Carbon, error) {
	d, err := parseXML(file, b)
	if err != nil {
		return nil, err
	}
	if err := expectRoot(d, "Server"); err != nil {
		return nil, err
	}
	c := &Carbon{File: file, doc: d}
	c.build()
	return c, nil
}

// WriteTo writes the document; an unedited document is written exactly as
// it was read.
func (c *Carbon) WriteTo(w io.Writer) (int64, error) { return writeBytes(w, c.doc.src) }

// Bytes returns a copy of the document's bytes.
func (c *Carbon) Bytes() []byte { return append([]byte(nil), c.doc.src...) }

// Save writes the document to path atomically, keeping the file's mode,
// owner and group; a symbolic link at path is followed and kept. On error
// the file is as it was. Node.Save writes a node's files all or nothing.
func (c *Carbon) Save(path string) error { return writeFileAtomic(path, c.doc.src) }

func (c *Carbon) build() {
	d := c.doc
	r := d.root
	c.Namespace = ""
	for _, a := range r.attrs {
		if a.name == "xmlns" {
			c.Namespace = d.decode(d.src[a.valStart:a.valEnd])
		}
	}
	c.line, c.col = d.pos(r.start)
	c.Name = d.field(elem(r, "Name"))
	c.Version = d.field(elem(r, "Version"))
	c.HostName = d.field(elem(r, "HostName"))
	c.MgtHostName = d.field(elem(r, "MgtHostName"))
	c.Ports = CarbonPorts{}
	if p := elem(r, "Ports"); p != nil {
		c.Ports.Offset = d.field(elem(p, "Offset"))
		c.Ports.RMIRegistryPort = d.field(elem(elem(p, "JMX"), "RMIRegistryPort"))
		c.Ports.RMIServerPort = d.field(elem(elem(p, "JMX"), "RMIServerPort"))
		for _, s := range leaves(d, p) {
			if s.Path != "Offset" {
				c.Ports.All = append(c.Ports.All, s)
			}
		}
	}
	c.DeploymentSynchronizer = nil
	if ds := elem(r, "DeploymentSynchronizer"); ds != nil {
		x := &DeploymentSynchronizer{
			Enabled:              d.field(elem(ds, "Enabled")),
			AutoCommit:           d.field(elem(ds, "AutoCommit")),
			AutoCheckout:         d.field(elem(ds, "AutoCheckout")),
			RepositoryType:       d.field(elem(ds, "RepositoryType")),
			SvnURL:               d.field(elem(ds, "SvnUrl")),
			SvnUser:              d.field(elem(ds, "SvnUser")),
			SvnPassword:          d.field(elem(ds, "SvnPassword")),
			SvnURLAppendTenantID: d.field(elem(ds, "SvnUrlAppendTenantId")),
		}
		x.Line, x.Col = d.pos(ds.start)
		c.DeploymentSynchronizer = x
	}
	c.Secrets = findSecrets(d)
}

func (c *Carbon) edit(fn func(d *xdoc) error) error {
	c.doc.file = c.File
	err := c.doc.transact(func() error { return fn(c.doc) })
	c.build()
	return err
}

// Set sets the text of the element at path, slash-separated below <Server>
// ("HostName", "Ports/Offset", "DeploymentSynchronizer/AutoCommit"). Each
// missing element on the way is uncommented when the file has it commented
// out, or added after its last sibling with their indentation.
func (c *Carbon) Set(path, value string) error {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for _, s := range segs {
		if s == "" {
			return fmt.Errorf("carbonconf: set %q: empty path element", path)
		}
	}
	return c.edit(func(d *xdoc) error { return d.setPath(segs, value) })
}

// SetHostName sets <HostName>.
func (c *Carbon) SetHostName(name string) error { return c.Set("HostName", name) }

// SetMgtHostName sets <MgtHostName>.
func (c *Carbon) SetMgtHostName(name string) error { return c.Set("MgtHostName", name) }

// SetOffset sets <Ports><Offset>.
func (c *Carbon) SetOffset(offset int) error {
	if offset < 0 || offset > 65535 {
		return fmt.Errorf("carbonconf: port offset %d out of range", offset)
	}
	return c.Set("Ports/Offset", strconv.Itoa(offset))
}

func (d *xdoc) setPath(segs []string, value string) error {
	parent := d.root
	for i, seg := range segs {
		child := elem(parent, seg)
		if child == nil {
			ppath := nodePath(parent)
			ok, err := d.uncomment(parent, func(_ *xdoc, n *xnode) bool { return localName(n.name) == seg })
			if err != nil {
				return err
			}
			parent = d.follow(ppath)
			if !ok {
				return d.insertChild(parent, nil, d.chain(segs[i:], value))
			}
			child = elem(parent, seg)
		}
		parent = child
	}
	return d.setText(parent, value)
}

// chain builds nested elements for segs with value in the innermost.
func (d *xdoc) chain(segs []string, value string) string {
	if len(segs) == 1 {
		return fmt.Sprintf("<%s>%s</%s>", segs[0], d.encode(value), segs[0])
	}
	inner := strings.ReplaceAll(d.chain(segs[1:], value), "\n", "\n"+d.indentUnit())
	return fmt.Sprintf("<%s>\n%s%s\n</%s>", segs[0], d.indentUnit(), inner, segs[0])
}
