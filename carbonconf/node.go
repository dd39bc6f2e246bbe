package carbonconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/carbonlb/carbonlb/internal/atomicfile"
)

// Paths of the files LoadNode reads, relative to a product home.
const (
	Axis2Path    = "repository/conf/axis2/axis2.xml"
	CarbonPath   = "repository/conf/carbon.xml"
	CatalinaPath = "repository/conf/tomcat/catalina-server.xml"
)

// Node is one Carbon server: its product home and the configuration files
// read from it. Any of the documents may be nil when the file is absent. A
// Node is not safe for concurrent use.
type Node struct {
	Home     string // the product home, "" for nodes built in memory
	Axis2    *Axis2
	Carbon   *Carbon
	Catalina *Catalina

	// rename replaces a file by another in Save; nil means os.Rename.
	// Tests set it to fail one file of the node.
	rename func(oldpath, newpath string) error
}

// Identity is a node's effective cluster identity, in plain values, ready to
// fill a membership or balancer configuration.
type Identity struct {
	ClusteringEnabled bool
	MembershipScheme  string // "wka", "multicast", … as written
	Domain            string
	SubDomain         string // "worker", "mgt", or "" when unset
	LocalMemberHost   string
	LocalMemberPort   int      // 4000 when unset; never shifted by Offset
	WKA               []string // "host:port", ranges as written ("192.168.1.2-10:4000", "10.0.0.[1-10]:4000")
	Offset            int
	HTTPPort          int // servlet HTTP port after the offset
	HTTPSPort         int // servlet HTTPS port after the offset
	HTTPProxyPort     int // the balancer's port for HTTP, 0 when none is set
	HTTPSProxyPort    int // the balancer's port for HTTPS, 0 when none is set
	HostName          string
	MgtHostName       string
	JVMRoute          string            // catalina-server.xml's Engine jvmRoute, "" when unset
	Properties        map[string]string // the clustering member properties
}

// LoadNode reads repository/conf/axis2/axis2.xml, repository/conf/carbon.xml
// and repository/conf/tomcat/catalina-server.xml below productHome, those
// that exist. It fails with an error wrapping ErrNoFiles when none does, and
// with a *ParseError when one does not parse.
func LoadNode(productHome string) (*Node, error) {
	n := &Node{Home: productHome}
	found := 0
	load := func(rel string, fn func(path string) error) error {
		path := filepath.Join(productHome, filepath.FromSlash(rel))
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		found++
		return fn(path)
	}
	err := errors.Join(
		load(Axis2Path, func(p string) (err error) { n.Axis2, err = LoadAxis2(p); return }),
		load(CarbonPath, func(p string) (err error) { n.Carbon, err = LoadCarbon(p); return }),
		load(CatalinaPath, func(p string) (err error) { n.Catalina, err = LoadCatalina(p); return }),
	)
	if err != nil {
		return nil, err
	}
	if found == 0 {
		return nil, fmt.Errorf("carbonconf: %s: %w (looked for %s, %s, %s)", productHome, ErrNoFiles, Axis2Path, CarbonPath, CatalinaPath)
	}
	return n, nil
}

// Save writes every document of the node back to its file, all or nothing:
// it writes a temporary file for each first, then renames each over its
// file, and when any step fails it puts back the files already replaced, so
// that the node's files are either all new or all as they were. Each file
// is replaced atomically, a symbolic link is followed (its target is
// written, the link kept), and the mode, owner and group of each file are
// kept (the owner when the process may give files away, as root may). The
// error names the file that failed.
func (n *Node) Save() error {
	var cs []atomicfile.Change
	if n.Axis2 != nil {
		cs = append(cs, atomicfile.Change{Path: n.Axis2.File, Data: n.Axis2.doc.src})
	}
	if n.Carbon != nil {
		cs = append(cs, atomicfile.Change{Path: n.Carbon.File, Data: n.Carbon.doc.src})
	}
	if n.Catalina != nil {
		cs = append(cs, atomicfile.Change{Path: n.Catalina.File, Data: n.Catalina.doc.src})
	}
	return saveError(atomicfile.WriteAll(cs, atomicfile.Options{Rename: n.rename}))
}

// Name returns a short name for the node in messages: its home, or the
// first file it has.
func (n *Node) Name() string {
	switch {
	case n.Home != "":
		return n.Home
	case n.Axis2 != nil && n.Axis2.File != "":
		return n.Axis2.File
	case n.Carbon != nil && n.Carbon.File != "":
		return n.Carbon.File
	}
	return "node"
}

// Identity computes the node's effective identity. Values that cannot be
// used (a port or offset that is not a number, such as an installer
// placeholder) are left zero and reported in the error, which joins one
// *ValueError per value; the rest of the Identity is still filled in.
func (n *Node) Identity() (Identity, error) {
	id := Identity{LocalMemberPort: 4000, Properties: map[string]string{}}
	var errs []error
	num := func(f Field, file, name string, dst *int) {
		if !f.Set() || f.Value == "" {
			return
		}
		v, err := f.Int(file, name)
		if err != nil {
			errs = append(errs, err)
			return
		}
		*dst = v
	}
	if n.Axis2 != nil && n.Axis2.Clustering != nil {
		c := n.Axis2.Clustering
		id.ClusteringEnabled = c.Enabled
		id.MembershipScheme = c.MembershipScheme.Value
		id.Domain = c.Domain.Value
		id.LocalMemberHost = c.LocalMemberHost.Value
		num(c.LocalMemberPort, n.Axis2.File, "localMemberPort", &id.LocalMemberPort)
		for _, m := range c.Members {
			id.WKA = append(id.WKA, m.Addr())
		}
		for _, p := range c.Properties {
			id.Properties[p.Name] = p.Value
		}
		id.SubDomain = id.Properties["subDomain"]
	}
	if n.Carbon != nil {
		id.HostName = n.Carbon.HostName.Value
		id.MgtHostName = n.Carbon.MgtHostName.Value
		num(n.Carbon.Ports.Offset, n.Carbon.File, "Ports/Offset", &id.Offset)
	}
	id.HTTPPort, id.HTTPSPort = 9763, 9443
	if n.Catalina != nil {
		id.JVMRoute = n.Catalina.JVMRoute()
		if k, ok := n.Catalina.Connector("http"); ok {
			num(k.Port, n.Catalina.File, "http Connector port", &id.HTTPPort)
			num(k.ProxyPort, n.Catalina.File, "http Connector proxyPort", &id.HTTPProxyPort)
		}
		if k, ok := n.Catalina.Connector("https"); ok {
			num(k.Port, n.Catalina.File, "https Connector port", &id.HTTPSPort)
			num(k.ProxyPort, n.Catalina.File, "https Connector proxyPort", &id.HTTPSProxyPort)
		}
	}
	// Older products proxy through axis2.xml's servlet transports (seed 002).
	if n.Axis2 != nil {
		for _, t := range n.Axis2.Receivers {
			p, ok := t.Param("proxyPort")
			if !ok {
				continue
			}
			f := Field{Value: p.Value, Line: p.Line, Col: p.Col}
			switch {
			case t.Name == "http" && id.HTTPProxyPort == 0:
				num(f, n.Axis2.File, "http transportReceiver proxyPort", &id.HTTPProxyPort)
			case t.Name == "https" && id.HTTPSProxyPort == 0:
				num(f, n.Axis2.File, "https transportReceiver proxyPort", &id.HTTPSProxyPort)
			}
		}
	}
	id.HTTPPort += id.Offset
	id.HTTPSPort += id.Offset
	return id, errors.Join(errs...)
}

// Vars returns the variables Carbon expands in its configuration, from the
// node's identity: hostName (HostName, else localMemberHost), mgtHostName,
// httpPort, httpsPort (after the offset), portOffset, carbon.home and
// carbon.config.dir.path.
func (n *Node) Vars() map[string]string {
	id, _ := n.Identity()
	host := id.HostName
	if host == "" {
		host = id.LocalMemberHost
	}
	v := map[string]string{
		"hostName":   host,
		"httpPort":   strconv.Itoa(id.HTTPPort),
		"httpsPort":  strconv.Itoa(id.HTTPSPort),
		"portOffset": strconv.Itoa(id.Offset),
	}
	if id.MgtHostName != "" {
		v["mgtHostName"] = id.MgtHostName
	}
	if n.Home != "" {
		v["carbon.home"] = n.Home
		v["carbon.config.dir.path"] = filepath.Join(n.Home, "repository", "conf")
	}
	return v
}

// Expand replaces each ${name} in s with vars[name]. Names without a value
// are an error wrapping ErrUnknownVariable that lists them all.
func Expand(s string, vars map[string]string) (string, error) {
	var sb strings.Builder
	var unknown []string
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			sb.WriteString(rest)
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("carbonconf: expand %q: expected \"}\" after %q", s, rest[i:])
		}
		name := rest[i+2 : i+j]
		sb.WriteString(rest[:i])
		if v, ok := vars[name]; ok {
			sb.WriteString(v)
		} else {
			unknown = append(unknown, name)
		}
		rest = rest[i+j+1:]
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return "", fmt.Errorf("carbonconf: expand %q: %w: %s", s, ErrUnknownVariable, strings.Join(unknown, ", "))
	}
	return sb.String(), nil
}

// Expand expands s with the node's Vars, overridden by extra.
func (n *Node) Expand(s string, extra map[string]string) (string, error) {
	v := n.Vars()
	for k, x := range extra {
		v[k] = x
	}
	return Expand(s, v)
}
