package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carbonlb/carbonlb/examples/internal/standin"
	"github.com/carbonlb/carbonlb/hosts"
)

const (
	demoUsers    = 6
	demoRequests = 6                    // per user and step, alternating instances
	loadAfter    = 6                    // requests per user after the stopped instance left DNS
	loadMax      = 20_000               // bound on requests per user under load
	loadPace     = 5 * time.Millisecond // between two requests of a user under load
)

// client is what a browser does with a name that has several addresses: it
// resolves the name (here through the deployment's DNS responder, with no
// cache, to follow it closely) and connects to the addresses in turn,
// moving on to the next when one refuses. Each request opens its own
// connection and starts from the next address, so a user's requests reach
// every instance.
type client struct {
	*http.Client
	resolver *hosts.Resolver
	next     atomic.Uint64
}

func newClient(dnsAddr string) (*client, error) {
	r, err := hosts.NewResolver(hosts.ResolverConfig{Servers: []string{dnsAddr}, MaxTTL: -1, MaxNegativeTTL: -1,
		Timeout: time.Second, Attempts: 3})
	if err != nil {
		return nil, err
	}
	c := &client{resolver: r}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: c.dial}
	c.Client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return c, nil
}

func (c *client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := c.resolver.LookupAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	first := int(c.next.Add(1))
	var d net.Dialer
	var errs []error
	for i := range addrs {
		a := addrs[(first+i)%len(addrs)]
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (c *client) close() {
	c.Transport.(*http.Transport).CloseIdleConnections()
	c.resolver.Close()
}

// demo runs the scripted demonstration, one line per step, every claim
// checked, and reports whether every step held.
func demo(ctx context.Context, d *deployment, out io.Writer) bool {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	failed := 0
	report := func(ok bool, format string, args ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(out, "  %s %s\n", mark, fmt.Sprintf(format, args...))
	}
	c, err := newClient(d.dnsAddr)
	if err != nil {
		report(false, "DNS client: %v", err)
		return false
	}
	defer c.close()
	siteURL := "http://" + net.JoinHostPort(siteName, strconv.Itoa(d.port))
	fmt.Fprintln(out, "Demonstration:")

	// 1. The name answers with both instances.
	addrs, err := c.resolver.LookupAddr(ctx, siteName)
	want := []netip.Addr{instances()[0].ip, instances()[1].ip}
	report(err == nil && slices.Equal(addrs, want), "%s resolves to %s", siteName, describeAddrs(addrs, err))

	// The names that follow membership: the balancer members and the app
	// servers.
	lbAddrs, err := c.resolver.LookupAddr(ctx, lbName)
	mgtAddrs, err2 := c.resolver.LookupAddr(ctx, mgtName)
	report(err == nil && err2 == nil && slices.Equal(lbAddrs, want) && slices.Equal(mgtAddrs, want[:1]),
		"%s resolves to the balancer members, %s; %s to the app servers' address, %s", lbName, describeAddrs(lbAddrs, err), mgtName, plainAddrs(mgtAddrs, err2))

	// 2. Each user's requests alternate between the instances and stay on
	// one app server.
	users := make([]*standin.Session, demoUsers)
	home := make([]string, demoUsers)
	perNode, perInstance := make(map[string]int), make(map[string]int)
	ok, why := true, ""
	for i := range users {
		users[i] = &standin.Session{Client: c.Client, URL: siteURL}
		for range demoRequests {
			r, err := users[i].Get(ctx, "/")
			if err != nil {
				ok, why = false, err.Error()
				break
			}
			if home[i] == "" {
				home[i] = r.Node
				perNode[r.Node]++
			}
			if r.Node != home[i] {
				ok, why = false, fmt.Sprintf("user %d moved from %s to %s (via %s)", i+1, home[i], r.Node, r.Balancer)
				break
			}
			perInstance[r.Balancer]++
		}
		if !ok {
			break
		}
	}
	if ok && (len(perInstance) != 2 || len(perNode) != 2) {
		ok, why = false, fmt.Sprintf("requests did not spread: instances %s, app servers %s", counts(perInstance), counts(perNode))
	}
	if ok {
		why = fmt.Sprintf("each stayed on its app server (%s) though its requests alternated between instances (%s)",
			counts(perNode), counts(perInstance))
	}
	report(ok, "%d users, %d requests each: %s", demoUsers, demoRequests, why)
	if !ok {
		return false
	}

	// 3. One instance stops under load.
	stopped, survivor := instances()[0], instances()[1]
	var stopErr, dnsErr error
	var dropped time.Duration
	res := underLoad(ctx, users, func() {
		t0 := time.Now()
		done := make(chan error, 1)
		go func() { done <- d.stopInstance(ctx, stopped.name) }()
		dnsErr = d.waitHealthy(ctx, 1)
		dropped = time.Since(t0)
		stopErr = <-done
	})
	total, errs, via := 0, 0, make(map[string]int)
	var firstErr error
	stayed := true
	for i, r := range res {
		total += r.requests
		errs += len(r.errs)
		if firstErr == nil && len(r.errs) > 0 {
			firstErr = r.errs[0]
		}
		stayed = stayed && len(r.nodes) == 1 && r.nodes[0] == home[i]
		for k, v := range r.after {
			via[k] += v
		}
	}
	ok = stopErr == nil && dnsErr == nil && errs == 0 && stayed && len(via) == 1 && via[survivor.name] > 0
	switch {
	case stopErr != nil:
		why = stopErr.Error()
	case dnsErr != nil:
		why = "DNS kept answering with it: " + dnsErr.Error()
	case errs > 0:
		why = fmt.Sprintf("%d of %d requests failed, first: %v", errs, total, firstErr)
	case !stayed:
		why = "a user changed app server"
	case !ok:
		why = fmt.Sprintf("requests after it left DNS went via %s", counts(via))
	default:
		why = fmt.Sprintf("%d requests, 0 failed; DNS dropped it in %v; every user stayed on its app server, now via %s",
			total, dropped.Round(time.Millisecond), survivor.name)
	}
	report(ok, "%s stopped under load: %s", stopped.name, why)
	if !ok {
		return false
	}
	// Its member left the cluster as it stopped: the name of the balancer
	// members follows.
	err = d.waitZone(ctx, 1)
	lbAddrs, err2 = c.resolver.LookupAddr(ctx, lbName)
	report(err == nil && err2 == nil && slices.Equal(lbAddrs, want[1:]), "%s left the cluster: %s resolves to %s", stopped.name, lbName, describeAddrs(lbAddrs, errors.Join(err, err2)))

	// 4. It comes back and honours every session at once: in learn mode it
	// fetched the other's sessions before its health check passed; in
	// insert mode it needs none.
	err = d.restartInstance(ctx, stopped.name)
	if err == nil {
		err = d.waitHealthy(ctx, 2)
	}
	if err == nil {
		err = d.waitZone(ctx, 2) // and back in lbName
	}
	ok, why = err == nil, ""
	if err != nil {
		why = err.Error()
	}
	viaBack := 0
	for i, u := range users {
		for j := 0; ok && j < demoRequests; j++ {
			r, err := u.Get(ctx, "/")
			switch {
			case err != nil:
				ok, why = false, err.Error()
			case r.Node != home[i]:
				ok, why = false, fmt.Sprintf("user %d moved from %s to %s via %s", i+1, home[i], r.Node, r.Balancer)
			case r.Balancer == stopped.name:
				viaBack++
			}
		}
	}
	if ok && viaBack == 0 {
		ok, why = false, "no request reached it"
	}
	if ok {
		why = fmt.Sprintf("%d requests reached it and every user stayed on its app server", viaBack)
	}
	state := "with no session state"
	if st := d.fronts[stopped.name].Sessions(); st != nil {
		state = fmt.Sprintf("with the %d sessions it fetched from %s", st.Stats().StateSessions, survivor.name)
	}
	report(ok, "%s restarted %s and is back in DNS (%s and %s): %s", stopped.name, state, siteName, lbName, why)

	if failed > 0 {
		fmt.Fprintf(out, "%d step(s) did not hold.\n", failed)
		return false
	}
	fmt.Fprintln(out, "Every step held.")
	return true
}

// loadResult is what one user saw under load.
type loadResult struct {
	requests int
	errs     []error
	nodes    []string       // app servers that answered, each once
	after    map[string]int // requests per instance after during returned
}

// underLoad runs every user's requests until during returns, then until
// each made loadAfter more, and returns what they saw.
func underLoad(ctx context.Context, users []*standin.Session, during func()) []loadResult {
	done := make(chan struct{})
	started := make(chan struct{}, len(users))
	res := make([]loadResult, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			r := &res[i]
			r.after = make(map[string]int)
			pace := time.NewTicker(loadPace)
			defer pace.Stop()
			post := 0
			for r.requests < loadMax && post < loadAfter && ctx.Err() == nil {
				isAfter := false
				select {
				case <-done:
					isAfter = true
					post++
				default:
				}
				rep, err := u.Get(ctx, "/")
				r.requests++
				if r.requests == 1 {
					started <- struct{}{}
				}
				if err != nil {
					r.errs = append(r.errs, err)
				} else {
					if !slices.Contains(r.nodes, rep.Node) {
						r.nodes = append(r.nodes, rep.Node)
					}
					if isAfter {
						r.after[rep.Balancer]++
					}
				}
				select {
				case <-pace.C:
				case <-ctx.Done():
				}
			}
		})
	}
	for range users {
		select {
		case <-started:
		case <-ctx.Done():
		}
	}
	during()
	close(done)
	wg.Wait()
	return res
}

func describeAddrs(addrs []netip.Addr, err error) string {
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, a := range addrs {
		name := "?"
		for _, in := range instances() {
			if in.ip == a {
				name = in.name
			}
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", a, name))
	}
	return strings.Join(parts, " and ")
}

// plainAddrs formats addresses, or err.
func plainAddrs(addrs []netip.Addr, err error) string {
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, a := range addrs {
		parts = append(parts, a.String())
	}
	return strings.Join(parts, " and ")
}

// counts formats a tally: "a: 2, b: 3".
func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
