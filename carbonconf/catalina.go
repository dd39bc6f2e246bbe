package carbonconf

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Catalina is a parsed catalina-server.xml (the embedded Tomcat of a Carbon
// server). The exported fields model the services and connectors and are
// rebuilt after every edit; every other byte is kept. A Catalina is not safe
// for concurrent use.
type Catalina struct {
	// File names the file in errors and findings; LoadCatalina sets it.
	File     string
	Services []Service
	Secrets  []Secret
	doc      *xdoc
}

// Service is a <Service> element.
type Service struct {
	Name, ClassName string
	Connectors      []Connector
	Engine          Engine // the zero Engine when the service has none
	Line, Col       int
}

// Engine is a service's <Engine> element. JVMRoute is Tomcat's jvmRoute,
// which Tomcat appends to every session id it issues ("ABC123.node-a") so
// that a balancer can route the session by it (balancer.Backend.Route).
type Engine struct {
	Name, DefaultHost Field
	JVMRoute          Field
	Line, Col         int // 0 when the service has no Engine
}

// Connector is a <Connector> element. Fields are attributes as written; a
// zero Field means the attribute is absent.
type Connector struct {
	Protocol     Field
	Port         Field
	ProxyPort    Field // the port on the load balancer in front; may be a placeholder
	RedirectPort Field
	Scheme       Field
	Secure       Field
	SSLEnabled   Field
	KeystoreFile Field
	KeystorePass Field
	Line, Col    int
}

// TLS reports whether the connector serves HTTPS (SSLEnabled, secure or
// scheme="https").
func (c Connector) TLS() bool {
	return c.SSLEnabled.Bool() || c.Secure.Bool() || equalFold(c.Scheme.Value, "https")
}

// Connector returns the first connector of the first service that serves
// scheme ("http" or "https").
func (c *Catalina) Connector(scheme string) (Connector, bool) {
	for _, s := range c.Services {
		for _, k := range s.Connectors {
			if k.TLS() == (scheme == "https") {
				return k, true
			}
		}
	}
	return Connector{}, false
}

// ReadCatalina reads a catalina-server.xml. Malformed XML, or a root element
// other than <Server>, gives a *ParseError.
func ReadCatalina(r io.Reader) (*Catalina, error) {
	b, err := readAll(r)
	if err != nil {
		return nil, err
	}
	return parseCatalina("", b)
}

// LoadCatalina reads the catalina-server.xml at path.
func LoadCatalina(path string) (*Catalina, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("carbonconf: %w", err)
	}
	return parseCatalina(path, b)
}

func parseCatalina(file string, b []byte) (*Catalina, error) {
	d, err := parseXML(file, b)
	if err != nil {
		return nil, err
	}
	if err := expectRoot(d, "Server"); err != nil {
		return nil, err
	}
	c := &Catalina{File: file, doc: d}
	c.build()
	return c, nil
}

// WriteTo writes the document; an unedited document is written exactly as
// it was read.
func (c *Catalina) WriteTo(w io.Writer) (int64, error) { return writeBytes(w, c.doc.src) }

// Bytes returns a copy of the document's bytes.
func (c *Catalina) Bytes() []byte { return append([]byte(nil), c.doc.src...) }

// Save writes the document to path atomically, keeping the file's mode,
// owner and group; a symbolic link at path is followed and kept. On error
// the file is as it was. Node.Save writes a node's files all or nothing.
func (c *Catalina) Save(path string) error { return writeFileAtomic(path, c.doc.src) }

func (c *Catalina) build() {
	d := c.doc
	c.Services = nil
	for _, s := range elems(d.root, "Service") {
		svc := Service{}
		svc.Name, _ = d.attr(s, "name")
		svc.ClassName, _ = d.attr(s, "className")
		svc.Line, svc.Col = d.pos(s.start)
		if es := elems(s, "Engine"); len(es) > 0 {
			e := es[0]
			svc.Engine = Engine{Name: d.attrField(e, "name"), DefaultHost: d.attrField(e, "defaultHost"),
				JVMRoute: d.attrField(e, "jvmRoute")}
			svc.Engine.Line, svc.Engine.Col = d.pos(e.start)
		}
		for _, k := range elems(s, "Connector") {
			conn := Connector{
				Protocol:     d.attrField(k, "protocol"),
				Port:         d.attrField(k, "port"),
				ProxyPort:    d.attrField(k, "proxyPort"),
				RedirectPort: d.attrField(k, "redirectPort"),
				Scheme:       d.attrField(k, "scheme"),
				Secure:       d.attrField(k, "secure"),
				SSLEnabled:   d.attrField(k, "SSLEnabled"),
				KeystoreFile: d.attrField(k, "keystoreFile"),
				KeystorePass: d.attrField(k, "keystorePass"),
			}
			conn.Line, conn.Col = d.pos(k.start)
			svc.Connectors = append(svc.Connectors, conn)
		}
		c.Services = append(c.Services, svc)
	}
	c.Secrets = findSecrets(d)
}

// JVMRoute returns the jvmRoute of the first service's Engine, or "".
func (c *Catalina) JVMRoute() string {
	for _, s := range c.Services {
		if s.Engine.Line != 0 {
			return s.Engine.JVMRoute.Value
		}
	}
	return ""
}

// SetJVMRoute sets the jvmRoute attribute of the first service's Engine,
// in place, as Tomcat's own server.xml does for mod_jk: route then
// suffixes the node's session ids. An empty route removes nothing: it is
// refused, as is a route with a character a session id cannot carry.
func (c *Catalina) SetJVMRoute(route string) error {
	if route == "" || strings.ContainsAny(route, " \t\r\n;,=\"\\/?#") {
		return fmt.Errorf("carbonconf: jvmRoute %q: want a non-empty name without spaces or ;,=\"\\/?#", route)
	}
	c.doc.file = c.File
	err := c.doc.transact(func() error {
		d := c.doc
		for _, s := range elems(d.root, "Service") {
			if es := elems(s, "Engine"); len(es) > 0 {
				return d.setAttr(es[0], "jvmRoute", route)
			}
		}
		return fmt.Errorf("carbonconf: %s: no <Engine> element", displayName(d.file))
	})
	c.build()
	return err
}

// SetConnectorAttr sets an attribute of the first connector serving scheme
// ("http" or "https"), such as proxyPort. A new attribute goes after the
// last one, on its own line when the attributes are one per line.
func (c *Catalina) SetConnectorAttr(scheme, name, value string) error {
	if scheme != "http" && scheme != "https" {
		return fmt.Errorf("carbonconf: connector scheme %q: want http or https", scheme)
	}
	c.doc.file = c.File
	err := c.doc.transact(func() error {
		d := c.doc
		for _, s := range elems(d.root, "Service") {
			for _, k := range elems(s, "Connector") {
				ssl, _ := d.attr(k, "SSLEnabled")
				sec, _ := d.attr(k, "secure")
				sch, _ := d.attr(k, "scheme")
				tls := equalFold(ssl, "true") || equalFold(sec, "true") || equalFold(sch, "https")
				if tls == (scheme == "https") {
					return d.setAttr(k, name, value)
				}
			}
		}
		return fmt.Errorf("carbonconf: %s: no %s connector", displayName(d.file), scheme)
	})
	c.build()
	return err
}
