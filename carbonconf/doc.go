// Package carbonconf reads, edits without losing a byte, and validates the
// configuration files of a WSO2 Carbon cluster: axis2.xml (clustering and
// transports), carbon.xml (host names, port offset, deployment
// synchronizer), catalina-server.xml (connectors and proxy ports) and the
// Elastic Load Balancer's loadbalancer.conf.
//
// Each reader (ReadAxis2, ReadCarbon, ReadCatalina, ReadLBConf, and the
// Load* functions that take a path) keeps the file's bytes and models what
// it names; everything else — unknown elements and keys, comments, layout,
// CRLF line endings, a missing final newline, an ISO-8859-1 declaration — is
// kept as it is, and WriteTo of an unedited document is byte-identical to
// its input. Commented-out configuration is never taken for live values.
// Setters change values in place, uncomment a commented-out element when the
// file has one, or insert a new element with the indentation of its
// siblings (expanding an empty-element tag such as <Ports/> that must take
// a child); LBConf.Set, LBConf.Remove and LBConf.AddDomain do the same for
// loadbalancer.conf entries and domains. A setter that fails leaves the
// document unchanged, and Save replaces a file atomically, keeping its
// mode, owner and group and following a symbolic link. Malformed input is a
// *ParseError with file, line, column and what was expected; so are bytes
// outside the declared encoding (ErrEncoding), references to undeclared
// entities (ErrUndefinedEntity) and characters XML forbids
// (ErrForbiddenChar), and elements nested deeper than MaxDepth
// (ErrTooDeep). Reading, linting and editing take time and memory linear
// in a file's size, whatever its shape. ReadLBConf accepts blocks left open
// at end of file with one warning; ReadLBConfStrict refuses them
// (ErrUnclosedBlock), for programs that apply what they read.
//
// A Node is one server's product home. LoadNode reads its files, and
// Node.Identity gives the plain values a membership or balancer
// configuration needs (domain, sub-domain, member host and port, WKA list,
// ports after the offset, proxy ports, host names):
//
//	n, err := carbonconf.LoadNode("/opt/wso2esb-worker1")
//	if err != nil { … }
//	id, err := n.Identity() // err reports placeholders such as SC_PORT_OFFSET
//	cfg.Domain, cfg.SubDomain, cfg.WKA = id.Domain, id.SubDomain, id.WKA
//
// Node.ConfigureManager and Node.ConfigureWorker carry out the clustering
// procedures of a worker/manager separated cluster on a node's files and
// return the unified diff; Node.Save writes them, all of the node's files
// or, when one cannot be written, none. Lint checks a whole
// cluster and its loadbalancer.conf before anything starts and returns
// Findings with stable codes (documented in docs/carbonconf.md).
//
// Values are not safe for concurrent use; each document belongs to the
// goroutine that edits it. The package holds no global state and does no
// logging.
package carbonconf
