// Command sessionsync measures the sharing of learned sessions between
// balancer instances (carbonlb.SessionSync over membership on loopback):
//
//	go run ./docs/bench/sessionsync
//
// Three instances join one cluster (encrypted, as in production). For each
// rate of new sessions (-rates, per second, for -duration each), the
// sessions are learned round robin on the three instances, the way a
// balancer learns them (SessionTable.Pin on the request's goroutine), and
// every other instance records when each arrives. It prints, per rate, the
// replication lag (p50, p99, max), the sessions that never arrived, the
// changes shed, the bytes sent on the wire per session (every instance's
// UDP bytes less those of an idle cluster over the same time), and the
// time Pin took on the request's goroutine (p50, p99), beside the same Pin
// into a table shared with nobody. Then a fourth
// instance joins while the others hold -table sessions, and it prints how
// long the newcomer took to hold 99% and all of them.
//
// Figures from one machine go to docs/balancer.md; rerun it to compare.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/membership"
)

const (
	pool = "wso2.as.domain/worker"
	ttl  = 30 * time.Minute
)

var key = []byte("0123456789abcdef0123456789abcdef")

// instance is one balancer instance's share of the cluster.
type instance struct {
	name string
	sync *carbonlb.SessionSync
	node *membership.Node
	stop context.CancelFunc
	done chan error

	mu      sync.Mutex
	arrived map[string]time.Duration // session id → lag, this run
}

func (in *instance) applied(c balancer.SessionChange, fromState bool) {
	if fromState {
		return
	}
	// The id carries the time it was learned at, in ns since the epoch.
	sent, err := strconv.ParseInt(strings.TrimPrefix(c.ID, "S"), 10, 64)
	if err != nil {
		return
	}
	lag := time.Duration(time.Now().UnixNano() - sent)
	in.mu.Lock()
	if in.arrived != nil {
		in.arrived[c.ID] = lag
	}
	in.mu.Unlock()
}

func start(name string, wka []string, maxSessions int) (*instance, error) {
	in := &instance{name: name}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("SESSIONSYNC_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	in.sync = carbonlb.NewSessionSync(carbonlb.SessionSyncConfig{MaxSessions: maxSessions, Applied: in.applied, Logger: logger})
	mc := membership.DefaultLocalConfig("sessions.bench")
	mc.Name, mc.WKA, mc.Messages, mc.SecretKey = name, wka, in.sync, key
	mc.Timing = membership.LANTiming()
	mc.Logger = logger
	var err error
	if in.node, err = membership.Join(context.Background(), mc); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.stop, in.done = cancel, make(chan error, 1)
	go func() { in.done <- in.sync.Run(ctx, in.node) }()
	return in, nil
}

func (in *instance) close() {
	in.node.Close()
	in.stop()
	<-in.done
}

func packetBytes(ins []*instance) int64 {
	var n int64
	for _, in := range ins {
		n += in.node.Health().PacketBytes
	}
	return n
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func main() {
	rates := flag.String("rates", "100,1000,10000,100000", "new sessions per second, one run each ('': none)")
	duration := flag.Duration("duration", 5*time.Second, "how long each rate runs")
	table := flag.Int("table", 100000, "sessions the instances hold when a new one joins (0: skip)")
	flag.Parse()
	log.SetFlags(0)

	var ins []*instance
	for i := range 3 {
		var wka []string
		if i > 0 {
			wka = []string{ins[0].node.Addr().String()}
		}
		in, err := start(fmt.Sprintf("lb-%d", i+1), wka, 0)
		if err != nil {
			log.Fatal(err)
		}
		defer in.close()
		ins = append(ins, in)
	}
	for _, in := range ins {
		for len(in.node.MessagePeers()) != 2 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	fmt.Printf("3 instances on loopback, encrypted; %v per rate\n", *duration)

	// What an idle cluster sends (probes, gossip) over the same time.
	before := packetBytes(ins)
	time.Sleep(*duration)
	idle := packetBytes(ins) - before

	fmt.Printf("%8s %10s %10s %10s %9s %8s %12s %12s %12s %12s %12s\n", "rate/s", "lag p50", "lag p99", "lag max", "missing", "shed", "bytes/sess", "Pin p50", "Pin p99", "alone p50", "alone p99")
	for _, f := range strings.Split(*rates, ",") {
		if strings.TrimSpace(f) == "" {
			continue // -rates '' measures the join alone
		}
		rate, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || rate <= 0 {
			log.Fatalf("-rates: %q", f)
		}
		run(ins, rate, *duration, idle)
	}

	if *table > 0 {
		joinTime(ins, *table)
	}
}

// run learns rate sessions per second for d, round robin on ins, and
// prints what the others received.
func run(ins []*instance, rate int, d time.Duration, idle int64) {
	for _, in := range ins {
		in.mu.Lock()
		in.arrived = make(map[string]time.Duration)
		in.mu.Unlock()
	}
	shedBefore := uint64(0)
	for _, in := range ins {
		shedBefore += in.sync.Stats().Shed
	}
	bytesBefore := packetBytes(ins)
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	pins := make([]time.Duration, 0, n)
	alone := balancer.NewSessionTable(0, nil) // the same Pin, shared with nobody
	pinsAlone := make([]time.Duration, 0, n)
	startAt := time.Now()
	for i := range n {
		// Pace by the schedule, not by sleeps per session: late sessions
		// go at once, so the rate holds on average.
		if wait := time.Until(startAt.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		in := ins[i%len(ins)]
		t0 := time.Now()
		id, be := "S"+strconv.FormatInt(t0.UnixNano(), 10), fmt.Sprintf("10.0.0.%d:9763", i%4+1)
		in.sync.Table().Pin(pool, id, be, ttl)
		pins = append(pins, time.Since(t0))
		t1 := time.Now()
		alone.Pin(pool, id, be, ttl)
		pinsAlone = append(pinsAlone, time.Since(t1))
	}
	elapsed := time.Since(startAt)
	// Give the last datagrams time to land before counting.
	time.Sleep(500 * time.Millisecond)
	var lags []time.Duration
	missing := 0
	for _, in := range ins {
		in.mu.Lock()
		for _, l := range in.arrived {
			lags = append(lags, l)
		}
		in.mu.Unlock()
	}
	missing = 2*n - len(lags)
	shed := uint64(0)
	for _, in := range ins {
		shed += in.sync.Stats().Shed
	}
	slices.Sort(lags)
	slices.SortFunc(pins, cmp.Compare)
	slices.SortFunc(pinsAlone, cmp.Compare)
	sent := packetBytes(ins) - bytesBefore - int64(float64(idle)*(elapsed+500*time.Millisecond).Seconds()/d.Seconds())
	fmt.Printf("%8d %10v %10v %10v %9d %8d %12.1f %12v %12v %12v %12v\n", rate,
		pct(lags, 0.50).Round(time.Microsecond), pct(lags, 0.99).Round(time.Microsecond), pct(lags, 1).Round(time.Microsecond),
		missing, shed-shedBefore, float64(sent)/float64(n), pct(pins, 0.50), pct(pins, 0.99), pct(pinsAlone, 0.50), pct(pinsAlone, 0.99))
}

// joinTime fills the instances with table sessions and times a fourth
// instance that joins until it holds 99% and all of them.
func joinTime(ins []*instance, table int) {
	for i := range table {
		// Applied on every instance without replication, as if learned
		// long ago.
		c := balancer.SessionChange{Pool: pool, ID: fmt.Sprintf("%032X.node-%d", i, i%4), Backend: fmt.Sprintf("10.0.0.%d:9763", i%4+1), TTL: ttl}
		for _, in := range ins {
			in.sync.Table().Apply(c)
		}
	}
	live := ins[0].sync.Table().Len() // with those of the rate runs
	var held atomic.Int64
	t0 := time.Now()
	nc, err := start("lb-new", []string{ins[0].node.Addr().String()}, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.close()
	joined := time.Since(t0)
	var at99, atAll time.Duration
	for time.Since(t0) < 2*time.Minute {
		n := nc.sync.Table().Len()
		held.Store(int64(n))
		if at99 == 0 && n >= live*99/100 {
			at99 = time.Since(t0)
		}
		if n >= live {
			atAll = time.Since(t0)
			break
		}
		time.Sleep(time.Millisecond)
	}
	<-nc.sync.Ready()
	st := nc.sync.Stats()
	fmt.Printf("a new instance joined in %v; held 99%% of %d live sessions after %v, all after %v (%d pieces, %d sessions received)\n",
		joined.Round(time.Millisecond), live, at99.Round(time.Millisecond), atAll.Round(time.Millisecond), st.StatePieces, st.StateSessions)
	if atAll == 0 {
		fmt.Fprintf(os.Stderr, "the new instance held only %d of %d sessions after 2 minutes\n", held.Load(), live)
	}
}
