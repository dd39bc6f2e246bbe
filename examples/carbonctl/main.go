// Command carbonctl checks and edits the configuration of a WSO2 Carbon
// worker/manager cluster with package carbonconf, and the hosts files of its
// nodes with package hosts.
//
//	carbonctl lint [--lb loadbalancer.conf [--listen 80,443]] PRODUCT_HOME...
//	carbonctl show FILE
//	carbonctl setup --role manager|worker [flags] PRODUCT_HOME
//	carbonctl hosts --lb-addr IP[,IP] [--lb loadbalancer.conf] [--map NAME=IP]... [--hosts-file PATH] [--write] PRODUCT_HOME...
//	carbonctl ports --offset N
//	carbonctl help [COMMAND]
//
// lint prints one finding per line as file:line:col: severity: code:
// message, severity being error or warning, and exits 1 when any finding
// is an error. show prints the model of one file as JSON. setup prints the
// unified diff that applies the clustering procedure for the role, and
// applies it with --write: to all of the node's files or, when one cannot
// be written, to none (carbonconf.Node.Save), each keeping its owner and
// mode and a symbolic link its target. hosts prints the unified diff that
// maps the host names the nodes and the balancer serve (carbon.xml
// HostName and MgtHostName, the loadbalancer.conf hosts) to the balancer's
// addresses in a hosts file, with more entries given by --map, and applies
// it with --write, losslessly and atomically; a second run prints nothing. A file that does not read
// (malformed XML, bytes outside its encoding, an undefined entity, a
// character XML forbids) is an error naming file:line:col. ports prints
// the default port table shifted by an offset. help lists every command's
// flags.
//
// Exit status: 0 done (setup and hosts: nothing to change, or written with
// --write); 1 lint found an error, or setup or hosts without --write
// printed a diff (changes pending); 2 the command line is wrong; 3 a file
// could not be read or written.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/carbonlb/carbonlb/carbonconf"
	"github.com/carbonlb/carbonlb/examples/internal/cli"
	"github.com/carbonlb/carbonlb/hosts"
)

// exitFiles is carbonctl's status for a file that could not be read or
// written; 1 is kept for lint's findings.
const exitFiles = 3

const usage = `usage:
  carbonctl lint [--lb loadbalancer.conf [--listen 80,443]] PRODUCT_HOME...
  carbonctl show FILE
  carbonctl setup --role manager|worker [flags] PRODUCT_HOME
  carbonctl hosts --lb-addr IP[,IP] [--lb loadbalancer.conf] [--map NAME=IP]... [--hosts-file PATH] [--write] PRODUCT_HOME...
  carbonctl ports --offset N
  carbonctl help [COMMAND]

Flags may come before, between or after the arguments. setup and hosts
print the diff of their changes and write them with --write.

Environment:
  CARBONLB_SVN_PASSWORD  setup's SVN password, when --svn-password-file is
                         not given (a password is never an argument, which
                         ps would show)

Exit status:
  0  done; setup and hosts: nothing to change, or written with --write
  1  lint found an error; setup or hosts without --write: the diff printed
     is not empty (changes pending)
  2  the command line is wrong
  3  a file could not be read or written
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: its synopsis, and its flag set bound to the
// values it runs with.
type command struct {
	synopsis string
	flags    func(stderr io.Writer) (*cli.FlagSet, func(pos []string, stdout, stderr io.Writer) (int, error))
}

// commands returns the subcommands by name.
func commands() map[string]command {
	return map[string]command{
		"lint":  {"lint [--lb loadbalancer.conf [--listen 80,443]] PRODUCT_HOME...", lintCmd},
		"show":  {"show FILE", showCmd},
		"setup": {"setup --role manager|worker [flags] PRODUCT_HOME", setupCmd},
		"hosts": {"hosts --lb-addr IP[,IP] [--lb loadbalancer.conf] [--map NAME=IP]... [--hosts-file PATH] [--write] PRODUCT_HOME...", hostsCmd},
		"ports": {"ports --offset N", portsCmd},
	}
}

// order is the order help lists the commands in.
var order = []string{"lint", "show", "setup", "hosts", "ports"}

// run executes one command and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	status, err := dispatch(args, stdout, stderr)
	if err == nil {
		return status
	}
	var ue *cli.UsageError
	var ex *cli.Exited
	if errors.As(err, &ue) || errors.As(err, &ex) {
		return cli.Exit("carbonctl", stderr, err)
	}
	fmt.Fprintf(stderr, "carbonctl: %v\n", err)
	return exitFiles
}

func dispatch(args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		return 0, cli.Usagef("give a command\n%s", usage)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		return 0, help(args[1:], stdout)
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, "carbonctl", cli.Version())
		return 0, nil
	}
	c, ok := commands()[args[0]]
	if !ok {
		return 0, cli.Usagef("unknown command %q\n%s", args[0], usage)
	}
	fs, do := c.flags(stderr)
	pos, err := parse(fs, args[1:], stdout)
	if err != nil {
		return 0, err
	}
	return do(pos, stdout, stderr)
}

// help prints the usage and every command's flags, or one command's.
func help(args []string, stdout io.Writer) error {
	names := order
	if len(args) > 0 {
		if _, ok := commands()[args[0]]; !ok {
			return cli.Usagef("help: unknown command %q", args[0])
		}
		names = args[:1]
	} else {
		fmt.Fprint(stdout, usage)
	}
	for _, name := range names {
		c := commands()[name]
		fs, _ := c.flags(io.Discard)
		fmt.Fprintf(stdout, "\ncarbonctl %s\n", c.synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}
	return nil
}

// parse parses flags that may come before, between or after the
// positional arguments, and returns the positional ones. After -h or
// -version, or a bad flag (reported once by the flag package), it returns
// a *cli.Exited.
func parse(fs *cli.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if exit, code := fs.Parse(args, stdout); exit {
			return nil, &cli.Exited{Code: code}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func lintCmd(stderr io.Writer) (*cli.FlagSet, func([]string, io.Writer, io.Writer) (int, error)) {
	fs := cli.NewFlagSet("carbonctl lint", "usage: carbonctl lint [--lb loadbalancer.conf [--listen 80,443]] PRODUCT_HOME...", stderr)
	lbPath := fs.String("lb", "", "the balancer's loadbalancer.conf, checked against the nodes")
	listen := fs.String("listen", "", "comma-separated ports the balancer listens on (needs --lb; default 80,443,8280,8290,8243)")
	return fs, func(homes []string, stdout, _ io.Writer) (int, error) {
		if len(homes) == 0 {
			return 0, cli.Usagef("lint: give at least one PRODUCT_HOME")
		}
		if *listen != "" && *lbPath == "" {
			return 0, cli.Usagef("lint: --listen needs --lb: the listen ports are the balancer's, checked with its loadbalancer.conf")
		}
		var ports []int
		if *listen != "" {
			for _, s := range strings.Split(*listen, ",") {
				p, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || p <= 0 || p > 65535 {
					return 0, cli.Usagef("lint: --listen %q: %q is not a port", *listen, s)
				}
				ports = append(ports, p)
			}
		}
		nodes, err := loadNodes(homes)
		if err != nil {
			return 0, err
		}
		var lb *carbonconf.LBConf
		if *lbPath != "" {
			if lb, err = carbonconf.LoadLBConf(*lbPath); err != nil {
				return 0, err
			}
			lb.ListenPorts = ports
		}
		status := 0
		for _, f := range carbonconf.Lint(nodes, lb) {
			fmt.Fprintf(stdout, "%s:%d:%d: %s: %s: %s\n", f.File, f.Line, f.Col, f.Severity, f.Code, f.Message)
			if f.Severity == carbonconf.Error {
				status = 1
			}
		}
		return status, nil
	}
}

func loadNodes(homes []string) ([]*carbonconf.Node, error) {
	var nodes []*carbonconf.Node
	for _, h := range homes {
		n, err := carbonconf.LoadNode(h)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func showCmd(stderr io.Writer) (*cli.FlagSet, func([]string, io.Writer, io.Writer) (int, error)) {
	fs := cli.NewFlagSet("carbonctl show", "usage: carbonctl show FILE", stderr)
	return fs, func(files []string, stdout, _ io.Writer) (int, error) {
		if len(files) != 1 {
			return 0, cli.Usagef("show: give one FILE")
		}
		v, err := readAny(files[0])
		if err != nil {
			return 0, err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return 0, enc.Encode(v)
	}
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

func setupCmd(stderr io.Writer) (*cli.FlagSet, func([]string, io.Writer, io.Writer) (int, error)) {
	fs := cli.NewFlagSet("carbonctl setup", "usage: carbonctl setup --role manager|worker [flags] PRODUCT_HOME", stderr)
	role := fs.String("role", "", "manager or worker")
	domain := fs.String("domain", "", "clustering domain, e.g. wso2.esb.domain")
	host := fs.String("member-host", "", "localMemberHost: the address (or host name) this node advertises")
	port := fs.Int("member-port", 0, "localMemberPort, e.g. 4100 (not shifted by the offset)")
	wka := fs.String("wka", "", "comma-separated well-known members host:port (ranges like 192.168.1.2-10:4000 or 10.0.0.[1-10]:4000 allowed)")
	hostName := fs.String("hostname", "", "carbon.xml HostName, e.g. esb.wso2.com")
	mgtHostName := fs.String("mgt-hostname", "", "carbon.xml MgtHostName, e.g. mgt.esb.wso2.com (manager)")
	offset := fs.Int("offset", -1, "carbon.xml Ports/Offset; -1 leaves it")
	svnURL := fs.String("svn-url", "", "deployment synchronizer SVN URL (a worker's must be the manager's)")
	manager := fs.String("manager", "", "worker: the manager's PRODUCT_HOME, whose SvnUrl the worker checks out when --svn-url is not given")
	svnUser := fs.String("svn-user", "", "deployment synchronizer SVN user")
	svnPasswordFile := fs.String("svn-password-file", "", "file holding the deployment synchronizer SVN password (default: $CARBONLB_SVN_PASSWORD)")
	httpProxy := fs.Int("http-proxy-port", 80, "the balancer's HTTP port (catalina proxyPort)")
	httpsProxy := fs.Int("https-proxy-port", 443, "the balancer's HTTPS port (catalina proxyPort)")
	class := fs.String("class", "", "clustering agent class (default the Hazelcast agent)")
	write := fs.Bool("write", false, "write the changes (default: only print the diff)")
	return fs, func(homes []string, stdout, stderr io.Writer) (int, error) {
		if len(homes) != 1 {
			return 0, cli.Usagef("setup: give one PRODUCT_HOME")
		}
		isManager := false
		switch *role {
		case "manager", "mgt":
			isManager = true
		case "worker":
		default:
			return 0, cli.Usagef("setup: --role %q: want manager or worker", *role)
		}
		if *manager != "" && isManager {
			return 0, cli.Usagef("setup: --manager is for workers")
		}
		svnPassword := os.Getenv("CARBONLB_SVN_PASSWORD")
		if *svnPasswordFile != "" {
			b, err := os.ReadFile(*svnPasswordFile)
			if err != nil {
				return 0, fmt.Errorf("setup: --svn-password-file: %w", err)
			}
			svnPassword = strings.TrimRight(string(b), "\r\n")
		}
		s := carbonconf.Setup{
			Domain: *domain, LocalMemberHost: *host, LocalMemberPort: *port,
			HostName: *hostName, MgtHostName: *mgtHostName,
			SvnURL: *svnURL, SvnUser: *svnUser, SvnPassword: svnPassword,
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
		if *manager != "" && s.SvnURL == "" {
			m, err := carbonconf.LoadNode(*manager)
			if err != nil {
				return 0, err
			}
			if m.Carbon == nil || m.Carbon.DeploymentSynchronizer == nil || m.Carbon.DeploymentSynchronizer.SvnURL.Value == "" {
				return 0, fmt.Errorf("setup: --manager %s: its carbon.xml has no DeploymentSynchronizer SvnUrl", *manager)
			}
			s.SvnURL = m.Carbon.DeploymentSynchronizer.SvnURL.Value
		}
		n, err := carbonconf.LoadNode(homes[0])
		if err != nil {
			return 0, err
		}
		var diff string
		if isManager {
			diff, err = n.ConfigureManager(s)
		} else {
			diff, err = n.ConfigureWorker(s)
		}
		if err != nil {
			return 0, cli.Usagef("%v", err)
		}
		fmt.Fprint(stdout, diff)
		if ds := n.Carbon.DeploymentSynchronizer; !isManager && s.SvnURL == "" && ds != nil && ds.SvnURL.Value == carbonconf.StockSvnURL {
			fmt.Fprintf(stderr, "carbonctl: the worker keeps the stock SvnUrl %s; give --svn-url with the manager's SvnUrl, or --manager MANAGER_HOME, so that it checks out what the manager commits\n", carbonconf.StockSvnURL)
		}
		if *write && diff != "" {
			if err := n.Save(); err != nil {
				return 0, err
			}
			fmt.Fprintf(stderr, "carbonctl: wrote %s\n", homes[0])
		}
		return pending(*write, diff), nil
	}
}

func hostsCmd(stderr io.Writer) (*cli.FlagSet, func([]string, io.Writer, io.Writer) (int, error)) {
	fs := cli.NewFlagSet("carbonctl hosts", "usage: carbonctl hosts --lb-addr IP[,IP] [--lb loadbalancer.conf] [--map NAME=IP]... [--hosts-file PATH] [--write] PRODUCT_HOME...", stderr)
	lbAddr := fs.String("lb-addr", "", "comma-separated addresses of the balancer (two or more for balancers made highly available, seed 004); required")
	lbPath := fs.String("lb", "", "the balancer's loadbalancer.conf, whose hosts are mapped too")
	file := fs.String("hosts-file", "/etc/hosts", "the hosts file to edit")
	write := fs.Bool("write", false, "write the changes (default: only print the diff)")
	var extra []hostName // --map entries
	extraAddrs := map[string][]netip.Addr{}
	fs.Func("map", "one more `NAME=IP[,IP]` entry, such as the database server of seed 000 step 6; repeatable", func(v string) error {
		name, list, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return errors.New("want NAME=IP[,IP]")
		}
		for _, s := range strings.Split(list, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("%q is not an IP address", s)
			}
			extraAddrs[strings.ToLower(name)] = append(extraAddrs[strings.ToLower(name)], a)
		}
		extra = append(extra, hostName{name, "--map " + v})
		return nil
	})
	return fs, func(homes []string, stdout, stderr io.Writer) (int, error) {
		if *lbAddr == "" {
			return 0, cli.Usagef("hosts: give --lb-addr, the balancer's address the names map to")
		}
		var addrs []netip.Addr
		for _, s := range strings.Split(*lbAddr, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil {
				return 0, cli.Usagef("hosts: --lb-addr %q: %q is not an IP address", *lbAddr, s)
			}
			addrs = append(addrs, a)
		}
		if len(homes) == 0 && *lbPath == "" {
			return 0, cli.Usagef("hosts: give PRODUCT_HOME... or --lb")
		}
		nodes, err := loadNodes(homes)
		if err != nil {
			return 0, err
		}
		var lb *carbonconf.LBConf
		if *lbPath != "" {
			if lb, err = carbonconf.LoadLBConf(*lbPath); err != nil {
				return 0, err
			}
		}
		names := hostNames(nodes, lb)
		f, err := hosts.Load(*file)
		if errors.Is(err, os.ErrNotExist) {
			f, err = hosts.Parse(strings.NewReader(""))
		}
		if err != nil {
			return 0, err
		}
		before := f.Bytes()
		for _, nm := range names {
			if extraAddrs[strings.ToLower(nm.name)] != nil {
				continue // --map says otherwise
			}
			if err := f.Set(nm.name, addrs...); err != nil {
				return 0, fmt.Errorf("hosts: %s: %w", nm.from, err)
			}
		}
		for _, nm := range extra {
			if err := f.Set(nm.name, extraAddrs[strings.ToLower(nm.name)]...); err != nil {
				return 0, cli.Usagef("hosts: %s: %v", nm.from, err)
			}
		}
		diff := carbonconf.Diff(strings.TrimPrefix(filepath.ToSlash(*file), "/"), before, f.Bytes())
		fmt.Fprint(stdout, diff)
		if *write && diff != "" {
			if err := f.Save(*file); err != nil {
				return 0, err
			}
			fmt.Fprintf(stderr, "carbonctl: wrote %s\n", *file)
		}
		return pending(*write, diff), nil
	}
}

// pending is the exit status of a command that prints a diff: 1 when it
// was not written and is not empty (changes pending, as diff(1) says), 0
// otherwise.
func pending(written bool, diff string) int {
	if !written && diff != "" {
		return 1
	}
	return 0
}

// hostName is a name a node needs in its hosts file, and where it is
// configured.
type hostName struct{ name, from string }

// hostNames returns the names the cluster serves through the balancer,
// sorted, each once (case folded): every node's carbon.xml HostName and
// MgtHostName, and every host of loadbalancer.conf.
func hostNames(nodes []*carbonconf.Node, lb *carbonconf.LBConf) []hostName {
	seen := map[string]bool{}
	var out []hostName
	add := func(name, from string) {
		key := strings.ToLower(strings.TrimSuffix(name, "."))
		if name == "" || seen[key] {
			return
		}
		seen[key] = true
		out = append(out, hostName{name, from})
	}
	for _, n := range nodes {
		if c := n.Carbon; c != nil {
			add(c.HostName.Value, fmt.Sprintf("%s:%d: HostName", c.File, c.HostName.Line))
			add(c.MgtHostName.Value, fmt.Sprintf("%s:%d: MgtHostName", c.File, c.MgtHostName.Line))
		}
	}
	if lb != nil {
		for _, s := range lb.Services {
			for _, h := range s.Hosts {
				add(h, fmt.Sprintf("%s:%d: service %s hosts", lb.File, s.Line, s.Name))
			}
			for _, d := range s.Domains {
				for _, h := range d.Hosts {
					add(h, fmt.Sprintf("%s:%d: domain %s hosts", lb.File, d.Line, d.Domain))
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b hostName) int { return strings.Compare(strings.ToLower(a.name), strings.ToLower(b.name)) })
	return out
}

func portsCmd(stderr io.Writer) (*cli.FlagSet, func([]string, io.Writer, io.Writer) (int, error)) {
	fs := cli.NewFlagSet("carbonctl ports", "usage: carbonctl ports --offset N", stderr)
	offset := fs.Int("offset", 0, "the port offset (carbon.xml Ports/Offset)")
	return fs, func(rest []string, stdout, _ io.Writer) (int, error) {
		if len(rest) != 0 || *offset < 0 {
			return 0, cli.Usagef("ports: usage: carbonctl ports --offset N (N >= 0)")
		}
		tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "PORT\tNAME\tOFFSET APPLIES")
		for _, p := range carbonconf.EffectivePorts(*offset) {
			fmt.Fprintf(tw, "%d\t%s\t%v\n", p.Port, p.Name, p.Offset)
		}
		return 0, tw.Flush()
	}
}
