// Command ha makes the load balancer itself highly available, as seed 004
// does with two WSO2 ELB instances behind an Amazon ELB, without a cloud
// balancer:
//
//	go run ./examples/ha
//
// Two app servers (stand-in Carbon nodes of wso2.appserver.domain,
// sub-domain mgt) form a WKA cluster. Two balancer instances, elb01 on
// 127.0.0.1 and elb02 on 127.0.0.2 (the same port on two addresses, as on two
// hosts), are members of the cluster and learn the app servers from it.
// A DNS responder (hosts.Server) answers the site's one stable name,
// management.appserver.localhost, with the instances whose /healthz passes.
// It is a cluster member too, and a carbonlb.Zone keeps two more names equal
// to the live members, in place of host entries edited on every node:
// lb.appserver.localhost answers with the balancer instances and
// mgt.appserver.localhost with the app servers.
//
// Sessions stay on their app server whichever instance a request reaches.
// By default the instances learn the app servers' JSESSIONID (sticky learn
// mode) and share what they learn over the cluster (carbonlb.SessionSync):
// each broadcasts the sessions it learns to the other, and an instance that
// starts fetches the other's table before it reports itself healthy. With
// -sticky insert they set their own signed cookie naming the app server
// instead, and share the key that signs it, so either one reads the other's
// cookies and no state is shared at run time.
//
// It prints the addresses and a demonstration: each user's requests
// alternate between the instances yet stay on one app server; one instance
// stops under load with no failed request and no session moved; it comes
// back and honours every session. Then it serves until Ctrl-C, or with
// -once exits, with status 0 only if every step held. The shared cookie key
// of -sticky insert comes from -sticky-key-file or $CARBONLB_STICKY_KEY,
// never from the command line, where ps would show it. ha -h prints the
// usage, signals and exit statuses.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Exit("ha", os.Stderr, run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	stop()
	os.Exit(code)
}

// usage is the text of ha -h.
const usage = `Usage: ha [-once] [-free-ports] [-sticky learn|insert] [-sticky-key-file FILE] [-check-interval D] [-log-level LEVEL]

Runs two app servers, two balancer instances and a DNS responder on
loopback, prints their addresses, runs a demonstration of the balancer's
high availability, then serves until interrupted.

Modes:
  ha          serve after the demonstration until SIGINT or SIGTERM
  ha -once    exit after the demonstration

Signals:
  SIGINT, SIGTERM  stop everything and exit

Environment:
  CARBONLB_STICKY_KEY  the cookie key of -sticky insert (at least 16
                       bytes), when no -sticky-key-file is given

Exit status:
  0  done (with -once: every step of the demonstration held)
  1  a step failed, or the deployment could not start
  2  the command line is wrong
`

// errDemo is returned by run with -once when a step did not hold.
var errDemo = errors.New("the demonstration failed")

// run is the program.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("ha", usage, stderr)
	once := fs.Bool("once", false, "exit after the demonstration, with status 0 only if every step held")
	free := fs.Bool("free-ports", false, "use free ports instead of the conventional ones (8290, 8053, 9764-9765, 4000-4200)")
	sticky := fs.String("sticky", "learn", "learn: JSESSIONID, the learned sessions shared between the instances; insert: the instances' own cookie, signed with a shared key")
	keyFile := fs.String("sticky-key-file", "", "with -sticky insert: file whose bytes (at least 16) sign the instances' cookie (default: $CARBONLB_STICKY_KEY, else a random key)")
	interval := fs.Duration("check-interval", 200*time.Millisecond, "how often the DNS responder checks each instance's /healthz")
	logFlags := cli.LogFlags(fs, "off")
	if err := fs.ParseArgs(args, stdout); err != nil {
		return err
	}
	if *interval <= 0 {
		return cli.Usagef("-check-interval must be positive")
	}
	var mode balancer.StickyMode
	switch *sticky {
	case "learn":
		mode = balancer.StickyLearn
	case "insert":
		mode = balancer.StickyInsert
	default:
		return cli.Usagef("-sticky %q: want learn or insert", *sticky)
	}
	if *keyFile != "" && mode != balancer.StickyInsert {
		return cli.Usagef("-sticky-key-file signs the cookie of -sticky insert")
	}
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand documents it)
	switch env := os.Getenv("CARBONLB_STICKY_KEY"); {
	case *keyFile != "":
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("-sticky-key-file: %w", err)
		}
		if len(b) < 16 {
			return cli.Usagef("-sticky-key-file %s: %d bytes, want at least 16", *keyFile, len(b))
		}
		key = b
	case env != "":
		if len(env) < 16 {
			return cli.Usagef("CARBONLB_STICKY_KEY: %d bytes, want at least 16", len(env))
		}
		key = []byte(env)
	}
	logger, err := logFlags.Logger(stderr)
	if err != nil {
		return err
	}

	fmt.Fprintln(stdout, "Starting two app servers, two balancer instances and a DNS responder on loopback...")
	d, err := startDeployment(ctx, options{freePorts: *free, sticky: mode, stickyKey: key, checkInterval: *interval, logger: logger, notes: stdout})
	if err != nil {
		return err
	}
	defer d.close()
	for _, a := range appServers() {
		s := d.nodes[a.name]
		fmt.Fprintf(stdout, "  %-12s %-22s cluster %s\n", a.name, s.URL(), s.Member().Addr())
	}
	for _, in := range instances() {
		f := d.fronts[in.name]
		how := "sticky learn, sessions shared over the cluster"
		if mode == balancer.StickyInsert {
			how = "sticky insert with the shared key"
		}
		fmt.Fprintf(stdout, "  %-12s http://%-15s cluster %s, %s\n", in.name, f.Addr(), f.Member().Addr(), how)
	}
	fmt.Fprintf(stdout, `  DNS          %s answers %s with the healthy instances,
               %s with the balancer members and %s with the app servers
Try:
  dig -p %s @%s %s
  curl -c /tmp/jar -b /tmp/jar --resolve %s:%d:127.0.0.2 http://%s:%d/
`, d.dnsAddr, siteName, lbName, mgtName, portOf(d.dnsAddr), hostOf(d.dnsAddr), siteName, siteName, d.port, siteName, d.port)

	ok := demo(ctx, d, stdout)
	if *once {
		if !ok {
			return errDemo
		}
		return nil
	}
	fmt.Fprintln(stdout, "Serving until Ctrl-C.")
	<-ctx.Done()
	return nil
}
