package membertest_test

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonlb/carbonlb/membership/membertest"
	"github.com/hashicorp/memberlist"
)

var (
	a = netip.MustParseAddrPort("10.0.0.1:4000")
	b = netip.MustParseAddrPort("10.0.0.2:4000")
	c = netip.MustParseAddrPort("10.0.0.3:4000")
)

func bind(t *testing.T, nw *membertest.Network, addr netip.AddrPort) *membertest.Transport {
	t.Helper()
	tr, err := nw.NewTransport(addr)
	if err != nil {
		t.Fatalf("NewTransport(%v): %v", addr, err)
	}
	return tr
}

// received reports whether tr has a packet waiting, and takes it.
func received(tr *membertest.Transport) (*memberlist.Packet, bool) {
	select {
	case p := <-tr.PacketCh():
		return p, true
	default:
		return nil, false
	}
}

func TestPackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var nw membertest.Network
		ta, tb, tc := bind(t, &nw, a), bind(t, &nw, b), bind(t, &nw, c)
		defer ta.Shutdown()
		defer tc.Shutdown()

		if _, err := ta.WriteTo([]byte("hello"), b.String()); err != nil {
			t.Fatal(err)
		}
		p, ok := received(tb)
		if !ok || string(p.Buf) != "hello" || p.From.String() != a.String() {
			t.Fatalf("b received %v, %v; want hello from %v", p, ok, a)
		}

		// Partition {a} from {b, c}: a's packets are dropped, b and c still talk.
		nw.Partition([]netip.AddrPort{a})
		ta.WriteTo([]byte("cut"), b.String())
		tc.WriteTo([]byte("same side"), b.String())
		if p, _ := received(tb); p == nil || string(p.Buf) != "same side" {
			t.Errorf("b received %v, want only the packet from c", p)
		}
		if _, ok := received(tb); ok {
			t.Errorf("b received a packet across the partition")
		}
		nw.Heal()
		ta.WriteTo([]byte("healed"), b.String())
		if _, ok := received(tb); !ok {
			t.Errorf("no packet after Heal")
		}

		// A stopped node: writes to it never block and are dropped.
		tb.Shutdown()
		for range membertest.PacketQueue + 10 {
			if _, err := ta.WriteTo([]byte("x"), b.String()); err != nil {
				t.Fatalf("write to a stopped node: %v", err)
			}
		}
		if s := nw.Stats(); s.Dropped < membertest.PacketQueue+11 {
			t.Errorf("Stats() = %+v, want the packets to the stopped node and across the partition dropped", s)
		}
		// A full queue drops rather than blocks.
		for range membertest.PacketQueue + 10 {
			ta.WriteTo([]byte("x"), c.String())
		}
		if got := len(tc.PacketCh()); got != membertest.PacketQueue {
			t.Errorf("queue holds %d packets, want %d", got, membertest.PacketQueue)
		}
	})
}

func TestLatencyAndLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var nw membertest.Network
		ta, tb := bind(t, &nw, a), bind(t, &nw, b)
		defer ta.Shutdown()
		defer tb.Shutdown()
		nw.SetLatency(30 * time.Millisecond)
		start := time.Now()
		ta.WriteTo([]byte("late"), b.String())
		p := <-tb.PacketCh()
		if d := p.Timestamp.Sub(start); d != 30*time.Millisecond {
			t.Errorf("packet arrived after %v, want 30ms", d)
		}
		nw.SetLatency(0)
		if err := nw.SetLoss(1.5); err == nil {
			t.Errorf("SetLoss(1.5): no error")
		}
		if err := nw.SetLoss(1); err != nil {
			t.Fatal(err)
		}
		ta.WriteTo([]byte("lost"), b.String())
		if _, ok := received(tb); ok {
			t.Errorf("packet delivered at loss 1")
		}
	})
}

// TestStreamLatency: a dial takes the round trip of the latency, and fails
// with a timeout when its timeout is shorter.
func TestStreamLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var nw membertest.Network
		ta, tb := bind(t, &nw, a), bind(t, &nw, b)
		defer ta.Shutdown()
		defer tb.Shutdown()
		nw.SetLatency(30 * time.Millisecond)
		start := time.Now()
		conn, err := ta.DialTimeout(b.String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if d := time.Since(start); d != 60*time.Millisecond {
			t.Errorf("dial took %v, want a round trip of 60ms", d)
		}
		start = time.Now()
		_, err = ta.DialTimeout(b.String(), 50*time.Millisecond)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("dial with a timeout shorter than the round trip: %v, want a timeout error", err)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("the timed-out dial took %v, want its 50ms timeout", d)
		}
	})
}

func TestStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var nw membertest.Network
		ta, tb := bind(t, &nw, a), bind(t, &nw, b)
		defer ta.Shutdown()

		conn, err := ta.DialTimeout(b.String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		srv := <-tb.StreamCh()
		if srv.RemoteAddr().String() != a.String() || conn.RemoteAddr().String() != b.String() {
			t.Errorf("addresses: server sees %v, client sees %v", srv.RemoteAddr(), conn.RemoteAddr())
		}
		go conn.Write([]byte("ping"))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(srv, buf); err != nil || string(buf) != "ping" {
			t.Errorf("read %q, %v", buf, err)
		}
		synctest.Wait() // the writer has returned
		if nw.BytesSent(a) != 4 {
			t.Errorf("BytesSent(a) = %d, want 4", nw.BytesSent(a))
		}

		// Stopping b closes its end: a's reads end.
		tb.Shutdown()
		if _, err := conn.Read(buf); err == nil {
			t.Errorf("read from a stopped node's stream: no error")
		}
		conn.Close()
		if _, err := ta.DialTimeout(b.String(), time.Second); !errors.Is(err, membertest.ErrUnreachable) {
			t.Errorf("dial a stopped node: %v, want ErrUnreachable", err)
		}

		// A partition refuses dials across it.
		tc := bind(t, &nw, c)
		defer tc.Shutdown()
		nw.Partition([]netip.AddrPort{c})
		if _, err := ta.DialTimeout(c.String(), time.Second); !errors.Is(err, membertest.ErrUnreachable) {
			t.Errorf("dial across a partition: %v, want ErrUnreachable", err)
		}
	})
}

func TestBind(t *testing.T) {
	var nw membertest.Network
	tr, err := nw.Bind(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nw.Bind(a); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second Bind(%v) = %v, want EADDRINUSE", a, err)
	}
	tr.Shutdown()
	tr2, err := nw.Bind(a)
	if err != nil {
		t.Fatalf("Bind after Shutdown: %v", err)
	}
	tr2.Shutdown()
	if _, err := nw.Bind(netip.AddrPort{}); err == nil {
		t.Errorf("Bind(zero address): no error")
	}
	ip, port, err := tr2.FinalAdvertiseAddr("", 0)
	if err != nil || ip.String() != "10.0.0.1" || port != 4000 {
		t.Errorf("FinalAdvertiseAddr = %v, %d, %v", ip, port, err)
	}
	if _, _, err := tr2.FinalAdvertiseAddr("not-an-ip", 0); err == nil {
		t.Errorf("FinalAdvertiseAddr(not-an-ip): no error")
	}
}
