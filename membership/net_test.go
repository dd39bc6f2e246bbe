package membership_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

// waitGoroutines waits until no more than n goroutines run, or fails after
// five seconds: memberlist's probe goroutines wait out their timeouts after
// Shutdown.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines outlive Close, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}

func localConfig(t *testing.T, wka ...string) membership.Config {
	cfg := membership.DefaultLocalConfig(testDomain)
	cfg.WKA = wka
	cfg.Logger = testLogger(t)
	return cfg
}

func TestRealUDPFiveNodes(t *testing.T) {
	before := runtime.NumGoroutine()
	c := newCluster(t)
	first := c.join(1, localConfig(t))
	if !first.Addr().Addr().IsLoopback() || first.Addr().Port() == 0 {
		t.Fatalf("Addr() = %v, want a loopback address with a port", first.Addr())
	}
	for i := 2; i <= 5; i++ {
		c.join(i, localConfig(t, first.Addr().String()))
	}
	d := c.waitUntil(10*time.Second, "5 nodes converge over UDP/TCP", func() bool { return c.converged(seq(1, 5)...) })
	t.Logf("converged in %v", d)

	c.stop(3)
	d = c.waitUntil(10*time.Second, "stopped node gone", func() bool { return c.converged(1, 2, 4, 5) })
	t.Logf("stopped node gone in %v", d)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.nodes[5].Leave(ctx); err != nil {
		t.Errorf("Leave: %v", err)
	}
	delete(c.nodes, 5)
	c.waitUntil(10*time.Second, "left node gone", func() bool { return c.converged(1, 2, 4) })
	if h := c.nodes[2].Health(); h.PacketBytes == 0 || h.StreamBytes == 0 || h.Members != 3 {
		t.Errorf("Health() = %+v, want bytes counted and 3 members", h)
	}
	c.close()
	waitGoroutines(t, before)
}

func TestPortAutoIncrement(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			// Hold a port with another socket.
			var held netip.AddrPort
			if proto == "tcp" {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				held = l.Addr().(*net.TCPAddr).AddrPort()
			} else {
				l, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				held = l.LocalAddr().(*net.UDPAddr).AddrPort()
			}
			if held.Port() > 65000 {
				t.Skipf("port %d leaves no room for retries", held.Port())
			}
			cfg := localConfig(t)
			cfg.Port = int(held.Port())
			cfg.PortRetries = 10
			n, err := membership.Join(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Join: %v", err)
			}
			defer n.Close()
			if p := n.Addr().Port(); p <= held.Port() || p > held.Port()+10 {
				t.Errorf("Addr().Port() = %d, want one of the %d ports after %d", p, cfg.PortRetries, held.Port())
			}
			cfg.PortRetries = 0
			if n2, err := membership.Join(context.Background(), cfg); !errors.Is(err, syscall.EADDRINUSE) {
				if n2 != nil {
					n2.Close()
				}
				t.Errorf("Join on a held port without retries = %v, want EADDRINUSE", err)
			}
		})
	}
}

func TestAdvertiseTemplate(t *testing.T) {
	cfg := localConfig(t)
	cfg.BindAddr = `{{ GetAllInterfaces | include "name" "lo" | include "type" "IPv4" | attr "address" }}`
	n, err := membership.Join(context.Background(), cfg)
	if err != nil {
		t.Skipf("no IPv4 interface lo: %v", err)
	}
	defer n.Close()
	if got := n.Addr().Addr(); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Addr() = %v, want 127.0.0.1", got)
	}
}

func TestResolveHook(t *testing.T) {
	c := newCluster(t)
	defer c.close()
	first := c.join(1, localConfig(t))
	asked := make(chan string, 10)
	cfg := localConfig(t, "mgr.esb.example.com:"+strconv.Itoa(int(first.Addr().Port())))
	cfg.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
		select {
		case asked <- host:
		default:
		}
		return []netip.Addr{first.Addr().Addr()}, nil
	}
	c.join(2, cfg)
	c.waitUntil(10*time.Second, "joined through a resolved name", func() bool { return c.converged(1, 2) })
	if got := <-asked; got != "mgr.esb.example.com" {
		t.Errorf("Resolve asked for %q", got)
	}
}

// TestForeignPacketsLogAggregated floods a node on 127.0.0.1, labelled with
// its domain and encrypting with a key, from one UDP socket with 5,000
// packets memberlist cannot read (no label, another label, a truncated
// label, the right label with a payload that does not decrypt) and with a
// few TCP connections of the same kinds. memberlist writes one Error line
// for each; the node's log must hold at most one line per
// ForeignLogInterval for that source, at Warn, whose counts add up to every
// packet and connection memberlist read.
//
// The count is exact because the test knows what memberlist read: the
// node's transport is a real NetTransport whose packets pass through a tap
// that reports each one memberlist takes, and the flood keeps at most 64
// packets in flight, so that the kernel's socket buffer never overflows
// (memberlist itself drops nothing it has read; a datagram the kernel
// dropped would never reach it and the tap would show it missing). A last
// packet from 127.0.0.2 is taken only once memberlist has finished with
// every packet before it, which orders the flood before Close; Close logs
// the counts still pending.
func TestForeignPacketsLogAggregated(t *testing.T) {
	sentinel, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.2:0")))
	if err != nil {
		t.Skipf("no 127.0.0.2 to send the last packet from: %v", err)
	}
	defer sentinel.Close()
	src, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	before := runtime.NumGoroutine()

	const interval = 50 * time.Millisecond
	rec := &recorder{}
	cfg := membership.DefaultLocalConfig(testDomain)
	cfg.SecretKey = bytes.Repeat([]byte{7}, 32)
	cfg.Logger = slog.New(rec)
	cfg.ForeignLogInterval = interval
	cfg.Port = freePort(t)
	var tap *tapTransport
	cfg.Transport = func(a netip.AddrPort) (memberlist.NodeAwareTransport, error) {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{a.Addr().String()},
			BindPort:  int(a.Port()),
			Logger:    log.New(io.Discard, "", 0),
		})
		if err != nil {
			return nil, err
		}
		tap = newTap(nt)
		return tap, nil
	}
	n, err := membership.Join(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	defer n.Close()
	to := net.UDPAddrFromAddrPort(n.Addr())

	garbage := func(i int) []byte {
		p := fmt.Appendf(nil, "xyzzy %d", i) // 'x' is neither a label header nor an encryption version
		switch i % 4 {
		case 1:
			p, _ = memberlist.AddLabelHeaderToPacket(p, "other.domain")
		case 2:
			p, _ = memberlist.AddLabelHeaderToPacket(p, testDomain) // does not decrypt
		case 3:
			p = []byte{244, 200, 'a'} // a label header of 200 bytes, cut short
		}
		return p
	}
	const packets, window = 5000, 64
	taken := map[netip.Addr]int{}
	wait := func(from netip.Addr) {
		t.Helper()
		timeout := time.After(10 * time.Second) // a failure, not a pace: nothing is lost on loopback below the window
		for {
			select {
			case a := <-tap.taken:
				taken[a]++
				if a == from {
					return
				}
			case <-timeout:
				t.Fatalf("memberlist took %v of %d packets", taken, packets)
			}
		}
	}
	start := time.Now()
	self := netip.MustParseAddr("127.0.0.1")
	for i := range packets {
		if i >= window {
			wait(self)
		}
		if _, err := src.WriteToUDP(garbage(i), to); err != nil {
			t.Fatal(err)
		}
	}
	for taken[self] < packets {
		wait(self)
	}
	if _, err := sentinel.WriteToUDP([]byte("last"), to); err != nil {
		t.Fatal(err)
	}
	wait(netip.MustParseAddr("127.0.0.2"))

	streams := []func(c net.Conn) error{
		func(c net.Conn) error { return nil }, // connect and close, as a port scan
		func(c net.Conn) error { _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); return err },
		func(c net.Conn) error {
			if err := memberlist.AddLabelHeaderToStream(c, "other.domain"); err != nil {
				return err
			}
			_, err := io.WriteString(c, "GET / HTTP/1.1\r\n\r\n")
			return err
		},
		func(c net.Conn) error {
			if err := memberlist.AddLabelHeaderToStream(c, testDomain); err != nil {
				return err
			}
			_, err := io.WriteString(c, "GET / HTTP/1.1\r\n\r\n") // not encrypted
			return err
		},
	}
	for i, write := range streams {
		c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(n.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		if err := write(c); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		c.CloseWrite()
		// memberlist logs, answers (or not) and closes: reading to the end
		// orders its line before Close.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		c.Close()
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	elapsed := time.Since(start)

	var lines, gotPackets, gotStreams int
	var errorLines []string
	for _, r := range rec.records() {
		if r.Level >= slog.LevelError {
			errorLines = append(errorLines, r.Message)
		}
		a := attrs(r)
		if r.Message != "membership: dropped unreadable cluster messages" || a["from"] != "127.0.0.1" {
			continue
		}
		if r.Level != slog.LevelWarn || a["reason"] == "" {
			t.Errorf("level %v reason %q, want Warn and a reason", r.Level, a["reason"])
		}
		lines++
		p, _ := strconv.Atoi(a["packets"])
		s, _ := strconv.Atoi(a["streams"])
		gotPackets += p
		gotStreams += s
	}
	if len(errorLines) > 0 {
		t.Errorf("%d lines at Error, want none; the first: %q", len(errorLines), errorLines[0])
	}
	if diff := cmp.Diff([]int{packets, len(streams)}, []int{gotPackets, gotStreams}); diff != "" {
		t.Errorf("counted packets, streams mismatch (-want +got):\n%s", diff)
	}
	// One line per interval that had packets, and one from Close.
	if most := int(elapsed/interval) + 1; lines < 1 || lines > most {
		t.Errorf("%d lines for 127.0.0.1 in %v, want 1 to %d", lines, elapsed, most)
	}
	t.Logf("%d packets and %d streams from 127.0.0.1 in %v: %d lines at Warn, %d records in all",
		gotPackets, gotStreams, elapsed.Round(time.Millisecond), lines, len(rec.records()))
	waitGoroutines(t, before)
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1 a moment
// ago.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			t.Fatal(err)
		}
		ap := l.Addr().(*net.TCPAddr).AddrPort()
		u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		l.Close()
		if err == nil {
			u.Close()
			return int(ap.Port())
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// tapTransport passes a NetTransport's packets to memberlist one at a time
// and reports the source of each as memberlist takes it. memberlist reads
// packets in one goroutine and finishes with one before it takes the next.
type tapTransport struct {
	*memberlist.NetTransport
	packets chan *memberlist.Packet // unbuffered: a send completes when memberlist takes the packet
	taken   chan netip.Addr         // the source of each packet taken
	stop    chan struct{}           // closed by Shutdown
	done    chan struct{}           // closed when the forwarding goroutine has returned
}

func newTap(nt *memberlist.NetTransport) *tapTransport {
	t := &tapTransport{
		NetTransport: nt,
		packets:      make(chan *memberlist.Packet),
		taken:        make(chan netip.Addr, 1<<16),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	go t.forward()
	return t
}

func (t *tapTransport) forward() {
	defer close(t.done)
	for {
		var p *memberlist.Packet
		select {
		case p = <-t.NetTransport.PacketCh():
		case <-t.stop:
			return
		}
		select {
		case t.packets <- p:
			t.taken <- p.From.(*net.UDPAddr).AddrPort().Addr().Unmap()
		case <-t.stop:
			return
		}
	}
}

func (t *tapTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *tapTransport) Shutdown() error {
	close(t.stop)
	<-t.done
	return t.NetTransport.Shutdown()
}

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu   sync.Mutex // protects recs
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

func (r *recorder) records() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// attrs returns a record's attributes as strings.
func attrs(r slog.Record) map[string]string {
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}
