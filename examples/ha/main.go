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
// Sessions stay on their app server whichever instance a request reaches:
// the instances set their own signed cookie naming the app server (sticky
// insert mode) and share the key that signs it, so either one reads the
// other's cookies and no session table needs sharing. Learning JSESSIONID
// instead would pin each session in one instance's memory only.
//
// It prints the addresses and a demonstration: each user's requests
// alternate between the instances yet stay on one app server; one instance
// stops under load with no failed request and no session moved; it comes
// back with no state and honours every session. Then it serves until Ctrl-C,
// or with -once exits, with status 0 only if every step held.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "ha:", err)
		os.Exit(1)
	}
}

// errDemo is returned by run with -once when a step did not hold.
var errDemo = errors.New("the demonstration failed")

// run is the program.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ha", flag.ContinueOnError)
	fs.SetOutput(stderr)
	once := fs.Bool("once", false, "exit after the demonstration, with status 0 only if every step held")
	free := fs.Bool("free-ports", false, "use free ports instead of the conventional ones (8290, 8053, 9764-9765, 4000-4200)")
	keyHex := fs.String("sticky-key", "", "hex key (16 bytes or more) the instances sign their cookie with (default: random)")
	interval := fs.Duration("check-interval", 200*time.Millisecond, "how often the DNS responder checks each instance's /healthz")
	logLevel := fs.String("log", "", "log on stderr from this level: debug, info, warn or error (default: no log)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *interval <= 0 {
		return errors.New("-check-interval must be positive")
	}
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand documents it)
	if *keyHex != "" {
		var err error
		if key, err = hex.DecodeString(*keyHex); err != nil || len(key) < 16 {
			return fmt.Errorf("-sticky-key: want at least 16 bytes in hex")
		}
	}
	logger := slog.New(slog.DiscardHandler)
	if *logLevel != "" {
		var level slog.Level
		if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
			return fmt.Errorf("-log: %w", err)
		}
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	}

	fmt.Fprintln(stdout, "Starting two app servers, two balancer instances and a DNS responder on loopback...")
	d, err := startDeployment(ctx, options{freePorts: *free, stickyKey: key, checkInterval: *interval, logger: logger, notes: stdout})
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
		fmt.Fprintf(stdout, "  %-12s http://%-15s cluster %s, sticky insert with the shared key\n", in.name, f.Addr(), f.Member().Addr())
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
