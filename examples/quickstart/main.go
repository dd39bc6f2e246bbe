// Command quickstart runs a whole WSO2-style worker/manager cluster behind a
// sticky, membership-aware load balancer on 127.0.0.1, and shows it work and
// heal:
//
//	go run ./examples/quickstart
//
// A manager (sub-domain mgt, port offset 1) and two workers (sub-domain
// worker, offsets 2 and 3) are stand-in Carbon nodes: HTTP servers that
// issue JSESSIONID as Tomcat does and say which node answered. Each joins
// the cluster wso2.esb.domain through well-known members (the manager and
// the first worker) on its localMemberPort (4100, 4200, 4300). The balancer
// is a member too, on port 4000 as the Elastic Load Balancer, and learns its
// pools from the cluster's events: mgt.localhost goes to the manager, every
// other host to the workers, and each session stays on its node.
//
// It prints the URLs, runs a short demonstration (stickiness, a worker
// crashing under load with no failed request, its return) and serves until
// Ctrl-C. With -once it exits after the demonstration, with status 0 only if
// every step held. A conventional port that is taken is replaced by a free
// one, and the output says so; -free-ports uses free ports throughout.
// quickstart -h prints the usage, signals and exit statuses.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/carbonlb/carbonlb/examples/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Exit("quickstart", os.Stderr, run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	stop()
	os.Exit(code)
}

// usage is the text of quickstart -h.
const usage = `Usage: quickstart [-once] [-free-ports] [-log-level LEVEL]

Runs a manager, two workers and a membership-aware balancer on 127.0.0.1,
prints their URLs, runs a demonstration of stickiness and fail-over, then
serves until interrupted.

Modes:
  quickstart        serve after the demonstration until SIGINT or SIGTERM
  quickstart -once  exit after the demonstration

Signals:
  SIGINT, SIGTERM  stop everything and exit

Exit status:
  0  done (with -once: every step of the demonstration held)
  1  a step failed, or the cluster could not start
  2  the command line is wrong
`

// errDemo is returned by run with -once when a step of the demonstration did
// not hold.
var errDemo = errors.New("the demonstration failed")

// run is the program: it parses args, starts the cluster, runs the
// demonstration and serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("quickstart", usage, stderr)
	once := fs.Bool("once", false, "exit after the demonstration, with status 0 only if every step held")
	free := fs.Bool("free-ports", false, "use free ports instead of the conventional ones (9764-9766, 4000-4300, 8290)")
	logFlags := cli.LogFlags(fs, "off")
	if err := fs.ParseArgs(args, stdout); err != nil {
		return err
	}
	logger, err := logFlags.Logger(stderr)
	if err != nil {
		return err
	}

	fmt.Fprintln(stdout, "Starting a manager, two workers and a balancer on 127.0.0.1 (cluster wso2.esb.domain)...")
	c, err := startCluster(ctx, options{freePorts: *free, logger: logger, notes: stdout})
	if err != nil {
		return err
	}
	defer c.close()
	fmt.Fprintf(stdout, `  manager   %-22s  cluster %-15s  sub-domain mgt
  worker-1  %-22s  cluster %-15s  sub-domain worker
  worker-2  %-22s  cluster %-15s  sub-domain worker
  balancer  %-22s  cluster %-15s  learned its pools from the cluster
Try:
  curl -H 'Host: %s' %s/
      the manager answers
  curl -c /tmp/jar -b /tmp/jar %s/
      a worker answers, the same one every time
  %s%s
      the balancer's status page
`,
		c.nodes["manager"].URL(), c.nodes["manager"].Member().Addr(),
		c.nodes["worker-1"].URL(), c.nodes["worker-1"].Member().Addr(),
		c.nodes["worker-2"].URL(), c.nodes["worker-2"].Member().Addr(),
		c.lbURL, c.member.Addr(), mgtHost, c.lbURL, c.lbURL, c.lbURL, statusPath)

	ok := demo(ctx, c, stdout)
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
