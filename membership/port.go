package membership

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-sockaddr/template"
	"github.com/hashicorp/memberlist"
)

// hostAddr returns the IP address of s: an IP address, a go-sockaddr
// template that yields one, or a host name looked up with lookup within
// timeout (the first address it returns; Carbon's localMemberHost and
// localMemberBindAddress may be host names, seed 004). A name is looked up
// on every call, so each Join follows the name's current address. A name
// that does not resolve is a *ConfigError wrapping the lookup's error.
func hostAddr(ctx context.Context, field, s string, lookup func(context.Context, string) ([]netip.Addr, error), timeout time.Duration) (netip.Addr, error) {
	if _, err := netip.ParseAddr(s); err != nil && isHostName(s) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		ips, err := lookup(ctx, s)
		if err == nil && len(ips) == 0 {
			err = errors.New("no address")
		}
		if err != nil {
			return netip.Addr{}, &ConfigError{Field: field, Err: fmt.Errorf("host name %q does not resolve: %w", s, err)}
		}
		a := ips[0]
		if a.Zone() != "" {
			return netip.Addr{}, &ConfigError{Field: field, Err: fmt.Errorf("host name %q resolves to zoned address %v, which is not supported", s, a)}
		}
		return a.Unmap(), nil
	}
	return parseAddrOrTemplate(field, s)
}

// isHostName reports whether s is a host name: valid by RFC 1123 section
// 2.1, and with a letter in its last label, so that "10.0.0" is a mistyped
// address rather than a name to look up.
func isHostName(s string) bool {
	if _, err := checkHostName(s); err != nil {
		return false
	}
	last := strings.TrimSuffix(s, ".")
	last = last[strings.LastIndexByte(last, '.')+1:]
	return strings.ContainsFunc(last, func(r rune) bool { return r < '0' || r > '9' })
}

// parseAddrOrTemplate parses an IP address or a go-sockaddr template that
// yields one.
func parseAddrOrTemplate(field, s string) (netip.Addr, error) {
	expr := s
	if strings.Contains(s, "{{") {
		out, err := template.Parse(s)
		if err != nil {
			return netip.Addr{}, &ConfigError{Field: field, Err: fmt.Errorf("template %q: %w", expr, err)}
		}
		f := strings.Fields(out)
		if len(f) == 0 {
			return netip.Addr{}, &ConfigError{Field: field, Err: fmt.Errorf("template %q yields no address", expr)}
		}
		s = f[0]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, &ConfigError{Field: field, Err: fmt.Errorf("%q is not an IP address or a go-sockaddr template", expr)}
	}
	if a.Zone() != "" {
		return netip.Addr{}, &ConfigError{Field: field, Err: fmt.Errorf("zoned address %q is not supported", expr)}
	}
	return a.Unmap(), nil
}

// listen opens the transport on the first free port of
// Port…Port+PortRetries and returns it with the port used.
func (n *Node) listen(ip netip.Addr, logger *log.Logger) (*countingTransport, int, error) {
	first, last := n.cfg.Port, n.cfg.Port+n.cfg.PortRetries
	var err error
	for port := first; port <= last; port++ {
		var tr memberlist.NodeAwareTransport
		used := port
		if n.cfg.Transport != nil {
			tr, err = n.cfg.Transport(netip.AddrPortFrom(ip, uint16(port)))
		} else {
			var nt *memberlist.NetTransport
			nt, err = openNet(ip, port, logger)
			if err == nil {
				tr, used = nt, nt.GetAutoBindPort()
			}
		}
		if err == nil {
			if port != first {
				// Nodes whose WKA names the configured port do not reach
				// this one there, but whatever holds that port: an
				// operator must act (free the port, or list this one).
				n.log.Warn("membership: configured port taken, listening on another; well-known member lists naming the configured port do not reach this node",
					"configured", first, "port", used)
			}
			return newCountingTransport(tr), used, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if first != last {
		return nil, 0, fmt.Errorf("membership: listen on %v ports %d to %d: %w", ip, first, last, err)
	}
	return nil, 0, fmt.Errorf("membership: listen on %v: %w", netip.AddrPortFrom(ip, uint16(first)), err)
}

// openNet opens memberlist's UDP and TCP transport. memberlist does not wrap
// the cause of a failed listen, so a fixed port is first tried here, where
// EADDRINUSE can be recognised.
func openNet(ip netip.Addr, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	if port != 0 {
		ap := netip.AddrPortFrom(ip, uint16(port))
		tl, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
		if err != nil {
			return nil, err
		}
		ul, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		tl.Close()
		if err != nil {
			return nil, err
		}
		ul.Close()
	}
	return memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{ip.String()},
		BindPort:  port,
		Logger:    logger,
	})
}
