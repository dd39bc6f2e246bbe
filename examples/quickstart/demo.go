package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/standin"
)

// The demonstration's sizes: enough to show each behaviour, small enough to
// read.
const (
	demoSessions = 4                    // users on the worker host
	demoRequests = 5                    // requests per user and step
	loadAfter    = 5                    // requests per user after the crashed worker left the pool
	loadMax      = 20_000               // bound on requests per user under load
	loadPace     = 5 * time.Millisecond // between two requests of a user under load
)

// demo runs the scripted demonstration against c, writing one line per step
// to out: every claim a line makes was checked. It reports whether every
// step held.
func demo(ctx context.Context, c *cluster, out io.Writer) bool {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: demoSessions * 2}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	newSession := func(host string) *standin.Session {
		return &standin.Session{Client: client, URL: c.lbURL, Host: host}
	}
	failed := 0
	report := func(ok bool, format string, args ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(out, "  %s %s\n", mark, fmt.Sprintf(format, args...))
	}

	fmt.Fprintln(out, "Demonstration:")
	// 1. The management host goes to the manager.
	mgt := newSession(mgtHost)
	nodes, err := repeat(ctx, mgt, demoRequests)
	report(err == nil && only(nodes, "manager"), "%s goes to the manager: %s", mgtHost, describe(nodes, err))

	// 2. Each user's session stays on one worker; users spread over both.
	users := make([]*standin.Session, demoSessions)
	home := make([]string, demoSessions) // the worker each user is on
	perWorker := make(map[string]int)
	ok, why := true, ""
	for i := range users {
		users[i] = newSession(workerHost)
		nodes, err := repeat(ctx, users[i], demoRequests)
		if err != nil || len(nodes) != 1 || !strings.HasPrefix(nodes[0], "worker-") {
			ok, why = false, fmt.Sprintf("user %d: %s", i+1, describe(nodes, err))
			break
		}
		home[i] = nodes[0]
		perWorker[nodes[0]]++
	}
	if ok && len(perWorker) != 2 {
		ok, why = false, "all users on one worker"
	}
	if why == "" {
		why = fmt.Sprintf("each stayed on its worker for %d requests (%s)", demoRequests, counts(perWorker))
	}
	report(ok, "%d users on %s: %s", demoSessions, workerHost, why)
	if !ok {
		return false // the next steps build on this one
	}

	// 3. The first user's worker crashes under load.
	victim := home[0]
	survivor := "worker-1"
	if victim == survivor {
		survivor = "worker-2"
	}
	removed := make(chan struct{})
	started := make(chan struct{}, len(users))
	results := make([]loadResult, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() { results[i] = load(ctx, u, started, removed) })
	}
	for range users {
		select {
		case <-started:
		case <-ctx.Done():
		}
	}
	t0 := time.Now()
	killErr := c.kill(victim)
	waitErr := c.feed.Wait(ctx, func(p map[string][]balancer.Backend) bool {
		return !slices.ContainsFunc(p[domain+"/worker"], func(b balancer.Backend) bool { return b.ID == victim })
	})
	seen := time.Since(t0)
	close(removed)
	wg.Wait()
	total, errs, moved, stayed := 0, 0, 0, true
	var firstErr error
	for i, r := range results {
		total += r.requests
		errs += len(r.errs)
		if firstErr == nil && len(r.errs) > 0 {
			firstErr = r.errs[0]
		}
		switch home[i] {
		case victim:
			moved++
			stayed = stayed && only(r.after, survivor)
		case survivor:
			stayed = stayed && only(r.during, survivor)
		}
	}
	ok = killErr == nil && waitErr == nil && errs == 0 && stayed
	switch {
	case killErr != nil:
		why = killErr.Error()
	case waitErr != nil:
		why = "the balancer never dropped it from its pool: " + waitErr.Error()
	case errs > 0:
		why = fmt.Sprintf("%d of %d requests failed, first: %v", errs, total, firstErr)
	case !stayed:
		why = "sessions did not settle on " + survivor
	default:
		why = fmt.Sprintf("%d requests, 0 failed; the cluster saw it fail in %v; its %d users moved to %s and stayed there, %s's never moved",
			total, seen.Round(time.Millisecond), moved, survivor, survivor)
	}
	report(ok, "%s crashed under load: %s", victim, why)
	if !ok {
		return false
	}

	// 4. It comes back, rejoins, and takes new users; moved users stay.
	t0 = time.Now()
	err = c.startNode(ctx, spec(victim))
	if err == nil {
		err = c.feed.Wait(ctx, func(p map[string][]balancer.Backend) bool {
			return slices.ContainsFunc(p[domain+"/worker"], func(b balancer.Backend) bool { return b.ID == victim })
		})
	}
	rejoined := time.Since(t0)
	ok, why = err == nil, ""
	for i, u := range users {
		if !ok || home[i] != victim {
			continue
		}
		nodes, err := repeat(ctx, u, demoRequests)
		if err != nil || !only(nodes, survivor) {
			ok, why = false, fmt.Sprintf("a moved user: %s", describe(nodes, err))
		}
	}
	back := 0
	for i := 0; ok && i < demoSessions; i++ {
		r, err := newSession(workerHost).Get(ctx, "/")
		if err != nil {
			ok, why = false, "a new user: "+err.Error()
		} else if r.Node == victim {
			back++
		}
	}
	switch {
	case err != nil:
		why = err.Error()
	case ok && back == 0:
		ok, why = false, fmt.Sprintf("no new user reached it (%d tried)", demoSessions)
	case ok:
		why = fmt.Sprintf("in %v: %d of %d new users reach it, moved users stay on %s", rejoined.Round(time.Millisecond), back, demoSessions, survivor)
	}
	report(ok, "%s restarted and rejoined the cluster %s", victim, why)

	if failed > 0 {
		fmt.Fprintf(out, "%d step(s) did not hold.\n", failed)
		return false
	}
	fmt.Fprintln(out, "Every step held.")
	return true
}

// repeat sends n requests for s and returns the nodes that answered, each
// once, in order of first answer.
func repeat(ctx context.Context, s *standin.Session, n int) ([]string, error) {
	var nodes []string
	for range n {
		r, err := s.Get(ctx, "/")
		if err != nil {
			return nodes, err
		}
		if !slices.Contains(nodes, r.Node) {
			nodes = append(nodes, r.Node)
		}
	}
	return nodes, nil
}

// loadResult is what one user saw under load.
type loadResult struct {
	requests int
	errs     []error
	during   []string // nodes that answered, each once
	after    []string // nodes that answered after the crashed worker left the pool
}

// load sends requests for s until loadAfter of them were sent after removed
// is closed (or loadMax in all, or ctx ends). It signals started after the
// first answer.
func load(ctx context.Context, s *standin.Session, started chan<- struct{}, removed <-chan struct{}) loadResult {
	var res loadResult
	post := 0
	pace := time.NewTicker(loadPace) // a steady load that leaves the cluster's probes some CPU
	defer pace.Stop()
	for res.requests < loadMax && post < loadAfter && ctx.Err() == nil {
		if res.requests > 0 {
			select {
			case <-pace.C:
			case <-ctx.Done():
				return res
			}
		}
		isAfter := false
		select {
		case <-removed:
			isAfter = true
			post++
		default:
		}
		r, err := s.Get(ctx, "/")
		res.requests++
		if res.requests == 1 {
			started <- struct{}{}
		}
		if err != nil {
			res.errs = append(res.errs, err)
			continue
		}
		if !slices.Contains(res.during, r.Node) {
			res.during = append(res.during, r.Node)
		}
		if isAfter && !slices.Contains(res.after, r.Node) {
			res.after = append(res.after, r.Node)
		}
	}
	return res
}

// only reports whether nodes is exactly [want].
func only(nodes []string, want string) bool {
	return len(nodes) == 1 && nodes[0] == want
}

// describe says which nodes answered, or what failed.
func describe(nodes []string, err error) string {
	if err != nil {
		return err.Error()
	}
	switch len(nodes) {
	case 0:
		return "no answer"
	case 1:
		return "every request answered by " + nodes[0]
	}
	return "answered by " + strings.Join(nodes, ", then ")
}

// counts formats users per worker: "worker-1: 2, worker-2: 2".
func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
