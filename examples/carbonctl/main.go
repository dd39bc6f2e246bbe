// Command carbonctl checks and edits the configuration of a WSO2 Carbon
// worker/manager cluster with package carbonconf.
//
//	carbonctl lint PRODUCT_HOME... [--lb loadbalancer.conf] [--listen 80,443]
//	carbonctl show FILE
//	carbonctl setup --role manager|worker [flags] PRODUCT_HOME
//	carbonctl ports --offset N
//
// lint prints one finding per line as file:line:col: code: message and
// exits 1 when any finding is an error. show prints the model of one file
// as JSON. setup prints the unified diff that applies the clustering
// procedure for the role, and applies it with --write: to all of the node's
// files or, when one cannot be written, to none (carbonconf.Node.Save),
// each keeping its owner and mode and a symbolic link its target. A file
// that does not read (malformed XML, bytes outside its encoding, an
// undefined entity, a character XML forbids) is an error naming
// file:line:col. ports prints the default port table shifted by an offset.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/carbonlb/carbonlb/carbonconf"
)

const usage = `usage:
  carbonctl lint PRODUCT_HOME... [--lb loadbalancer.conf] [--listen 80,443]
  carbonctl show FILE
  carbonctl setup --role manager|worker [flags] PRODUCT_HOME
  carbonctl ports --offset N
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the exit status: 0 success, 1 lint
// errors found, 2 bad usage or a failure.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	status := 0
	switch args[0] {
	case "lint":
		status, err = lint(args[1:], stdout, stderr)
	case "show":
		err = show(args[1:], stdout, stderr)
	case "setup":
		err = setup(args[1:], stdout, stderr)
	case "ports":
		err = ports(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "carbonctl:", err)
		}
		return 2
	}
	return status
}

// parse parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func lint(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("lint", stderr)
	lbPath := fs.String("lb", "", "the balancer's loadbalancer.conf")
	listen := fs.String("listen", "", "comma-separated ports the balancer listens on (default 80,443,8280,8290,8243)")
	homes, err := parse(fs, args)
	if err != nil {
		return 2, err
	}
	if len(homes) == 0 {
		return 2, errors.New("lint: give at least one PRODUCT_HOME")
	}
	var nodes []*carbonconf.Node
	for _, h := range homes {
		n, err := carbonconf.LoadNode(h)
		if err != nil {
			return 2, err
		}
		nodes = append(nodes, n)
	}
	var lb *carbonconf.LBConf
	if *lbPath != "" {
		if lb, err = carbonconf.LoadLBConf(*lbPath); err != nil {
			return 2, err
		}
		if *listen != "" {
			for _, s := range strings.Split(*listen, ",") {
				p, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || p <= 0 || p > 65535 {
					return 2, fmt.Errorf("lint: --listen %q: %q is not a port", *listen, s)
				}
				lb.ListenPorts = append(lb.ListenPorts, p)
			}
		}
	}
	status := 0
	for _, f := range carbonconf.Lint(nodes, lb) {
		fmt.Fprintln(stdout, f)
		if f.Severity == carbonconf.Error {
			status = 1
		}
	}
	return status, nil
}

func show(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("show", stderr)
	files, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return errors.New("show: give one FILE")
	}
	v, err := readAny(files[0])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// lbView is loadbalancer.conf as JSON. Each warning encodes as
// {"File", "Line", "Col", "Err"} (carbonconf.ParseError.MarshalJSON).
type lbView struct {
	File         string
	LoadBalancer map[string]string
	Defaults     map[string]string
	Services     []carbonconf.LBService
	Warnings     []*carbonconf.ParseError
}

// readAny reads a file by its name (axis2.xml, carbon.xml,
// catalina-server.xml, *.conf) or, failing that, by its content.
func readAny(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(path)
	lbconf := func() (any, error) {
		c, err := carbonconf.LoadLBConf(path)
		if err != nil {
			return nil, err
		}
		return lbView{File: c.File, LoadBalancer: c.LoadBalancer, Defaults: c.Defaults, Services: c.Services, Warnings: c.Warnings}, nil
	}
	switch {
	case base == "axis2.xml":
		return carbonconf.LoadAxis2(path)
	case base == "carbon.xml":
		return carbonconf.LoadCarbon(path)
	case base == "catalina-server.xml":
		return carbonconf.LoadCatalina(path)
	case strings.HasSuffix(base, ".conf"):
		return lbconf()
	case strings.Contains(string(b), "<axisconfig"):
		return carbonconf.LoadAxis2(path)
	case strings.Contains(string(b), "wso2.org/projects/carbon/carbon.xml"):
		return carbonconf.LoadCarbon(path)
	case strings.Contains(string(b), "<Connector"):
		return carbonconf.LoadCatalina(path)
	}
	return lbconf()
}

func setup(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("setup", stderr)
	role := fs.String("role", "", "manager or worker")
	domain := fs.String("domain", "", "clustering domain, e.g. wso2.esb.domain")
	host := fs.String("member-host", "", "localMemberHost: the address this node advertises")
	port := fs.Int("member-port", 0, "localMemberPort, e.g. 4100 (not shifted by the offset)")
	wka := fs.String("wka", "", "comma-separated well-known members host:port (ranges like 10.0.0.[1-10]:4000 allowed)")
	hostName := fs.String("hostname", "", "carbon.xml HostName, e.g. esb.wso2.com")
	mgtHostName := fs.String("mgt-hostname", "", "carbon.xml MgtHostName, e.g. mgt.esb.wso2.com (manager)")
	offset := fs.Int("offset", -1, "carbon.xml Ports/Offset; -1 leaves it")
	svnURL := fs.String("svn-url", "", "deployment synchronizer SVN URL")
	svnUser := fs.String("svn-user", "", "deployment synchronizer SVN user")
	svnPassword := fs.String("svn-password", "", "deployment synchronizer SVN password")
	httpProxy := fs.Int("http-proxy-port", 80, "the balancer's HTTP port (catalina proxyPort)")
	httpsProxy := fs.Int("https-proxy-port", 443, "the balancer's HTTPS port (catalina proxyPort)")
	class := fs.String("class", "", "clustering agent class (default the Hazelcast agent)")
	write := fs.Bool("write", false, "write the changes (default: only print the diff)")
	homes, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(homes) != 1 {
		return errors.New("setup: give one PRODUCT_HOME")
	}
	s := carbonconf.Setup{
		Domain: *domain, LocalMemberHost: *host, LocalMemberPort: *port,
		HostName: *hostName, MgtHostName: *mgtHostName,
		SvnURL: *svnURL, SvnUser: *svnUser, SvnPassword: *svnPassword,
		HTTPProxyPort: *httpProxy, HTTPSProxyPort: *httpsProxy, ClusteringClass: *class,
	}
	for _, m := range strings.Split(*wka, ",") {
		if m = strings.TrimSpace(m); m != "" {
			s.WKA = append(s.WKA, m)
		}
	}
	if *offset >= 0 {
		s.Offset = offset
	}
	n, err := carbonconf.LoadNode(homes[0])
	if err != nil {
		return err
	}
	var diff string
	switch *role {
	case "manager", "mgt":
		diff, err = n.ConfigureManager(s)
	case "worker":
		diff, err = n.ConfigureWorker(s)
	default:
		return fmt.Errorf("setup: --role %q: want manager or worker", *role)
	}
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, diff)
	if *write && diff != "" {
		if err := n.Save(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "carbonctl: wrote %s\n", homes[0])
	}
	return nil
}

func ports(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ports", stderr)
	offset := fs.Int("offset", 0, "the port offset (carbon.xml Ports/Offset)")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 || *offset < 0 {
		return errors.New("ports: usage: carbonctl ports --offset N (N >= 0)")
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tNAME\tOFFSET APPLIES")
	for _, p := range carbonconf.EffectivePorts(*offset) {
		fmt.Fprintf(tw, "%d\t%s\t%v\n", p.Port, p.Name, p.Offset)
	}
	return tw.Flush()
}
