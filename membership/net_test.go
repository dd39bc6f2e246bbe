package membership_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/membership"
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
	c.bubble = false
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
	c.bubble = false
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
