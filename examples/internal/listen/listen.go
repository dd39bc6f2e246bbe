package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/carbonlb/carbonlb/membership"
)

// TCP listens on ip:port. When port is taken and fallback is set, it listens
// on a free port of ip instead and returns a note saying so; otherwise the
// note is "". Port 0 means a free port from the start, with no note.
func TCP(ip netip.Addr, port int, fallback bool) (net.Listener, string, error) {
	ap := netip.AddrPortFrom(ip, uint16(port))
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
	if err == nil {
		return ln, "", nil
	}
	if port == 0 || !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, "", fmt.Errorf("listen on %v: %w", ap, err)
	}
	ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, "", fmt.Errorf("listen on %v: %w", ip, err)
	}
	return ln, fmt.Sprintf("port %d is taken; using %d", port, ln.Addr().(*net.TCPAddr).Port), nil
}

// Port returns the TCP port ln listens on, or 0 when it is not TCP.
func Port(ln net.Listener) int {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// Join joins the cluster with cfg. When cfg.Port and its PortRetries are all
// taken and fallback is set, it joins from a free port instead. The note says
// when the port used is not cfg.Port, and is "" otherwise.
func Join(ctx context.Context, cfg membership.Config, fallback bool) (*membership.Node, string, error) {
	n, err := membership.Join(ctx, cfg)
	if err == nil {
		if p := int(n.Addr().Port()); cfg.Port != 0 && p != cfg.Port {
			return n, fmt.Sprintf("cluster port %d is taken; using %d", cfg.Port, p), nil
		}
		return n, "", nil
	}
	if cfg.Port == 0 || !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, "", err
	}
	first, last := cfg.Port, cfg.Port+cfg.PortRetries
	cfg.Port, cfg.PortRetries = 0, 0
	n, err = membership.Join(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	taken := fmt.Sprintf("cluster port %d is taken", first)
	if last != first {
		taken = fmt.Sprintf("cluster ports %d-%d are taken", first, last)
	}
	return n, fmt.Sprintf("%s; using %d", taken, n.Addr().Port()), nil
}

// UDP opens a UDP socket on ip:port, falling back to a free port as TCP does.
func UDP(ip netip.Addr, port int, fallback bool) (net.PacketConn, string, error) {
	ap := netip.AddrPortFrom(ip, uint16(port))
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err == nil {
		return pc, "", nil
	}
	if port == 0 || !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, "", fmt.Errorf("listen on udp %v: %w", ap, err)
	}
	pc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, "", fmt.Errorf("listen on udp %v: %w", ip, err)
	}
	return pc, fmt.Sprintf("udp port %d is taken; using %d", port, pc.LocalAddr().(*net.UDPAddr).Port), nil
}
