package listen

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/carbonlb/carbonlb/membership"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func TestTCPFallback(t *testing.T) {
	first, note, err := TCP(loopback, 0, false)
	if err != nil || note != "" {
		t.Fatal(err, note)
	}
	defer first.Close()
	taken := Port(first)
	if _, _, err := TCP(loopback, taken, false); err == nil {
		t.Error("a taken port without fallback: no error")
	}
	ln, note, err := TCP(loopback, taken, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if Port(ln) == taken || !strings.Contains(note, "is taken; using") {
		t.Errorf("fallback: port %d, note %q", Port(ln), note)
	}
}

func TestUDPFallback(t *testing.T) {
	first, _, err := UDP(loopback, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	taken := first.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	if _, _, err := UDP(loopback, int(taken), false); err == nil {
		t.Error("a taken port without fallback: no error")
	}
	pc, note, err := UDP(loopback, int(taken), true)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if !strings.Contains(note, "is taken; using") {
		t.Errorf("note %q", note)
	}
}

func TestJoinFallback(t *testing.T) {
	cfg := membership.DefaultLocalConfig("d")
	cfg.Logger = slog.New(slog.DiscardHandler)
	first, note, err := Join(context.Background(), cfg, false)
	if err != nil || note != "" {
		t.Fatal(err, note)
	}
	defer first.Close()
	cfg.Port = int(first.Addr().Port())
	if _, _, err := Join(context.Background(), cfg, false); err == nil {
		t.Error("a taken port without fallback: no error")
	}
	n, note, err := Join(context.Background(), cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if int(n.Addr().Port()) == cfg.Port || !strings.Contains(note, "cluster port") {
		t.Errorf("fallback: %v, note %q", n.Addr(), note)
	}
}
