// Command measure times cluster convergence, failure detection and gossip
// traffic of package membership, over real UDP/TCP on 127.0.0.1 and over the
// in-memory membertest network.
//
// For each network and node count, each trial starts every node at once, all
// joining through the same two well-known members, and measures
//
//   - convergence: from the start until every node lists every other;
//   - failure detection: from closing one node without Leave until no
//     other node lists it;
//   - gossip traffic (first trial only): bytes sent as packets and on
//     streams, per node per second, over a window after the cluster settled.
//
// Every trial is bounded by -timeout. Usage:
//
//	go run ./membership/internal/measure -net udp,mem -nodes 10,50,200 -trials 3
//	go run ./membership/internal/measure -net udp -nodes 50 -trials 20 -bytes 0
//	go run ./membership/internal/measure -profile raw ...   # memberlist's LAN timing, no rejoin loop, no syncs
//	go run ./membership/internal/measure -net udp -nodes 200 -trials 1 -cpuprofile cpu.prof
//	go run ./membership/internal/measure -probe 1s -probetimeout 500ms -suspicion 3 ...   # another timing
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/membership/membertest"
)

func main() {
	var (
		nets     = flag.String("net", "udp,mem", "networks to measure: udp (real sockets on 127.0.0.1), mem (membertest)")
		counts   = flag.String("nodes", "10,50", "comma-separated node counts")
		trials   = flag.Int("trials", 3, "trials per network and node count")
		timeout  = flag.Duration("timeout", 60*time.Second, "bound on each phase of a trial")
		profile  = flag.String("profile", "lan", "timing: lan (the package default), local (LocalTiming), raw (memberlist's LAN defaults, no rejoin loop, no syncs)")
		fail     = flag.Bool("fail", true, "measure failure detection")
		window   = flag.Duration("bytes", 5*time.Second, "window for gossip bytes per node per second in the first trial (0: skip)")
		settle   = flag.Duration("settle", 6*time.Second, "wait after convergence before the gossip window")
		basePort = flag.Int("port", 24000, "first UDP/TCP port on 127.0.0.1; node i uses port+i")
		logLevel = flag.String("log", "", "log level of the nodes (debug, info, warn, error); empty: none")
		trace    = flag.Bool("trace", false, "print when each decile of nodes had a complete list")
		syncs    = flag.String("sync", "", "override Timing.SyncAfterJoin: comma-separated durations, or none")
		suspMult = flag.Int("suspicion", 0, "override Timing.SuspicionMult (0: the profile's)")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		probe    = flag.Duration("probe", 0, "override Timing.ProbeInterval (0: the profile's)")
		probeTO  = flag.Duration("probetimeout", 0, "override Timing.ProbeTimeout (0: the profile's)")
	)
	flag.Parse()
	logger := slog.New(slog.DiscardHandler)
	if *logLevel != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(*logLevel)); err != nil {
			fatalf("-log: %v", err)
		}
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	}
	var ns []int
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 3 || *basePort+n > 65535 {
			fatalf("-nodes: %q is not a node count of at least 3 that fits above -port", s)
		}
		ns = append(ns, n)
	}
	var syncList []time.Duration
	if *syncs != "" && *syncs != "none" {
		for _, s := range strings.Split(*syncs, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil || d <= 0 {
				fatalf("-sync: %q is not a positive duration", s)
			}
			syncList = append(syncList, d)
		}
	}
	if *syncs == "none" {
		syncList = []time.Duration{}
	}
	if *trials < 1 {
		fatalf("-trials must be at least 1")
	}
	if *suspMult < 0 {
		fatalf("-suspicion must be 0 (the profile's) or a positive multiplier")
	}
	if *probe < 0 || *probeTO < 0 {
		fatalf("-probe and -probetimeout must be 0 (the profile's) or positive")
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fatalf("-cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("-cpuprofile: %v", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "measure: -cpuprofile: %v\n", err)
			}
		}()
	}
	fmt.Printf("load average at start: %s\n", loadavg())
	defer func() { fmt.Printf("load average at end: %s\n", loadavg()) }()
	for _, network := range strings.Split(*nets, ",") {
		if network != "udp" && network != "mem" {
			fatalf("-net: unknown network %q", network)
		}
		for _, n := range ns {
			var conv, det []time.Duration
			for trial := 1; trial <= *trials; trial++ {
				r := run(runConfig{
					network: network, nodes: n, profile: *profile, timeout: *timeout,
					fail: *fail, window: *window, settle: *settle, basePort: *basePort,
					bytes: trial == 1 && *window > 0, logger: logger, trace: *trace, syncs: syncList,
					suspicion: *suspMult, probe: *probe, probeTimeout: *probeTO,
				})
				fmt.Printf("%s n=%d %s trial %d/%d: %s\n", network, n, *profile, trial, *trials, r)
				if r.converge > 0 {
					conv = append(conv, r.converge)
				}
				if r.detect > 0 {
					det = append(det, r.detect)
				}
			}
			fmt.Printf("%s n=%d %s: converge %s; failure detection %s\n", network, n, *profile, summary(conv, *trials), summary(det, *trials))
		}
	}
}

// loadavg returns the first three fields of /proc/loadavg, or "unknown":
// the machine may be shared, and load skews the figures.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "measure: "+format+"\n", args...)
	os.Exit(2)
}

func summary(ds []time.Duration, trials int) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	s := fmt.Sprintf("min %.2fs median %.2fs max %.2fs", ds[0].Seconds(), ds[len(ds)/2].Seconds(), ds[len(ds)-1].Seconds())
	if len(ds) < trials {
		s += fmt.Sprintf(" (%d of %d trials)", len(ds), trials)
	}
	return s
}

type runConfig struct {
	network        string
	nodes          int
	profile        string
	timeout        time.Duration
	fail, bytes    bool
	window, settle time.Duration
	basePort       int
	logger         *slog.Logger
	trace          bool
	syncs          []time.Duration // nil: the profile's
	suspicion      int             // 0: the profile's SuspicionMult
	probe          time.Duration   // 0: the profile's ProbeInterval
	probeTimeout   time.Duration   // 0: the profile's ProbeTimeout
}

type result struct {
	converge, detect time.Duration
	bytesPerNodeSec  float64
	err              error
}

func (r result) String() string {
	var b strings.Builder
	if r.converge > 0 {
		fmt.Fprintf(&b, "converge %.3fs", r.converge.Seconds())
	}
	if r.bytesPerNodeSec > 0 {
		fmt.Fprintf(&b, "; gossip %.0f B/node/s", r.bytesPerNodeSec)
	}
	if r.detect > 0 {
		fmt.Fprintf(&b, "; failure detection %.3fs", r.detect.Seconds())
	}
	if r.err != nil {
		fmt.Fprintf(&b, "; %v", r.err)
	}
	return b.String()
}

// rawTiming is memberlist's DefaultLANConfig timing, for comparison.
func rawTiming() membership.Timing {
	return membership.Timing{
		ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond, IndirectChecks: 3,
		SuspicionMult: 4, SuspicionMaxTimeoutMult: 6, GossipInterval: 200 * time.Millisecond,
		GossipNodes: 3, RetransmitMult: 4, GossipToTheDeadTime: 30 * time.Second,
		PushPullInterval: 30 * time.Second, TCPTimeout: 10 * time.Second,
	}
}

// view tracks, from a node's events, which members it lists.
type view struct {
	mu      sync.Mutex // protects the fields below
	members map[string]bool
	full    time.Time // when members first held every node
	ok      bool      // meets the tracker's condition; guarded by tracker.mu too
}

// tracker signals when every tracked view lists want members and not gone.
// Each event updates one view and a count, so a check costs O(1).
type tracker struct {
	mu      sync.Mutex // protects the fields below and view.ok
	tracked map[*view]bool
	want    int
	gone    string
	okCount int
	done    chan struct{} // closed once the condition holds
	fired   bool
}

// update re-evaluates v after a change; v.mu must be held.
func (t *tracker) update(v *view) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.tracked[v] {
		return
	}
	ok := len(v.members) == t.want && (t.gone == "" || !v.members[t.gone])
	if ok != v.ok {
		v.ok = ok
		if ok {
			t.okCount++
		} else {
			t.okCount--
		}
	}
	if !t.fired && t.okCount == len(t.tracked) {
		t.fired = true
		close(t.done)
	}
}

// arm sets a new condition over views and returns its channel.
func (t *tracker) arm(views []*view, want int, gone string) <-chan struct{} {
	for _, v := range views {
		v.mu.Lock()
	}
	defer func() {
		for _, v := range views {
			v.mu.Unlock()
		}
	}()
	t.mu.Lock()
	t.tracked = make(map[*view]bool)
	t.want, t.gone, t.okCount = want, gone, 0
	t.done, t.fired = make(chan struct{}), false
	for _, v := range views {
		t.tracked[v] = true
		v.ok = false
	}
	t.mu.Unlock()
	for _, v := range views {
		t.update(v)
	}
	return t.done
}

func run(rc runConfig) (res result) {
	var network membertest.Network
	addr := func(i int) netip.AddrPort {
		if rc.network == "mem" {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 4000)
		}
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(rc.basePort+i))
	}
	wka := []string{addr(1).String(), addr(2).String()}
	cfgFor := func(i int) membership.Config {
		cfg := membership.DefaultConfig("measure.domain")
		switch rc.profile {
		case "local":
			cfg = membership.DefaultLocalConfig("measure.domain")
		case "raw":
			cfg.Timing = rawTiming()
			cfg.RejoinInterval = -1
		case "lan":
		default:
			fatalf("-profile: unknown profile %q", rc.profile)
		}
		if rc.syncs != nil {
			cfg.Timing.SyncAfterJoin = rc.syncs
		}
		if rc.suspicion > 0 {
			cfg.Timing.SuspicionMult = rc.suspicion
		}
		if rc.probe > 0 {
			cfg.Timing.ProbeInterval = rc.probe
		}
		if rc.probeTimeout > 0 {
			cfg.Timing.ProbeTimeout = rc.probeTimeout
		}
		a := addr(i)
		cfg.BindAddr = a.Addr().String()
		cfg.Port = int(a.Port())
		cfg.PortRetries = 0
		cfg.WKA = wka
		cfg.SubDomain = membership.SubDomainWorker
		cfg.Properties = map[string]string{membership.PropHTTPPort: "9763", membership.PropHTTPSPort: "9443"}
		cfg.Logger = rc.logger.With("node", i)
		if rc.network == "mem" {
			cfg.Transport = network.Bind
		}
		return cfg
	}

	tr := &tracker{}
	var views []*view
	for range rc.nodes {
		views = append(views, &view{members: make(map[string]bool)})
	}
	converged := tr.arm(views, rc.nodes, "")
	nodes := make([]*membership.Node, rc.nodes)
	ctx, cancel := context.WithCancel(context.Background())
	var watchers sync.WaitGroup
	defer func() {
		cancel()
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
		watchers.Wait()
	}()

	start := time.Now()
	var joins sync.WaitGroup
	errs := make([]error, rc.nodes)
	for i := range rc.nodes {
		joins.Go(func() {
			n, err := membership.Join(ctx, cfgFor(i+1))
			if err != nil {
				errs[i] = err
				return
			}
			nodes[i] = n
			v := views[i]
			watchers.Go(func() {
				n.Watch(ctx, func(e membership.Event) {
					v.mu.Lock()
					switch e.Type {
					case membership.Joined, membership.Updated:
						v.members[e.Member.Name] = true
					case membership.Left, membership.Failed:
						delete(v.members, e.Member.Name)
					case membership.Resync:
						clear(v.members)
						for _, m := range n.Members() {
							v.members[m.Name] = true
						}
					}
					if len(v.members) == rc.nodes && v.full.IsZero() {
						v.full = time.Now()
					}
					tr.update(v)
					v.mu.Unlock()
				})
			})
		})
	}
	joins.Wait()
	if rc.trace {
		fmt.Printf("  every Join returned at %.2fs\n", time.Since(start).Seconds())
	}
	if err := errors.Join(errs...); err != nil {
		res.err = err
		return res
	}
	bound := time.NewTimer(rc.timeout)
	defer bound.Stop()
	select {
	case <-converged:
		res.converge = time.Since(start)
		if rc.trace {
			var ds []time.Duration
			for _, v := range views {
				v.mu.Lock()
				ds = append(ds, v.full.Sub(start))
				v.mu.Unlock()
			}
			slices.Sort(ds)
			fmt.Printf("  nodes complete at: 10%% %.2fs 50%% %.2fs 90%% %.2fs 100%% %.2fs\n", ds[len(ds)/10].Seconds(), ds[len(ds)/2].Seconds(), ds[len(ds)*9/10].Seconds(), ds[len(ds)-1].Seconds())
		}
	case <-bound.C:
		res.err = fmt.Errorf("not converged within %v: %d of %d nodes list everyone; members listed×nodes: %s", rc.timeout, complete(views, rc.nodes), rc.nodes, sizes(views))
		return res
	}

	if rc.bytes {
		pause := time.NewTimer(rc.settle)
		<-pause.C
		total := func() (sum int64) {
			for _, n := range nodes {
				h := n.Health()
				sum += h.PacketBytes + h.StreamBytes
			}
			return sum
		}
		before, t0 := total(), time.Now()
		pause.Reset(rc.window)
		<-pause.C
		res.bytesPerNodeSec = float64(total()-before) / float64(rc.nodes) / time.Since(t0).Seconds()
	}

	if rc.fail {
		victim := rc.nodes - 1 // a node that is not a well-known member
		name := nodes[victim].Name()
		detected := tr.arm(slices.Delete(slices.Clone(views), victim, victim+1), rc.nodes-1, name)
		t1 := time.Now()
		nodes[victim].Close()
		nodes[victim] = nil
		bound.Reset(rc.timeout)
		select {
		case <-detected:
			res.detect = time.Since(t1)
		case <-bound.C:
			rest := slices.Delete(slices.Clone(views), victim, victim+1)
			still := 0
			for _, v := range rest {
				v.mu.Lock()
				if v.members[name] {
					still++
				}
				v.mu.Unlock()
			}
			res.err = fmt.Errorf("stopped node still listed by %d nodes after %v; members listed×nodes: %s", still, rc.timeout, sizes(rest))
		}
	}
	return res
}

// sizes returns how many views hold each number of members, as "size×count".
func sizes(views []*view) string {
	h := map[int]int{}
	for _, v := range views {
		v.mu.Lock()
		h[len(v.members)]++
		v.mu.Unlock()
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(h)) {
		out = append(out, fmt.Sprintf("%d×%d", k, h[k]))
	}
	return strings.Join(out, " ")
}

func complete(views []*view, n int) int {
	c := 0
	for _, v := range views {
		v.mu.Lock()
		if len(v.members) == n {
			c++
		}
		v.mu.Unlock()
	}
	return c
}
