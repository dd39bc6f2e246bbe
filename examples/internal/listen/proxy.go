package listen

import (
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// ProxyHeaderTimeout bounds how long a connection from a trusted peer may
// take to send its PROXY header.
const ProxyHeaderTimeout = 5 * time.Second

// Proxy wraps ln so that it speaks the PROXY protocol, versions 1 (text)
// and 2 (binary), with the peers in trusted: a TCP front such as HAProxy
// (send-proxy), an AWS Network Load Balancer or an ELB with proxy protocol
// on. A connection from a trusted peer must open with a PROXY header, as
// the protocol's specification requires (a receiver must not guess), and
// its RemoteAddr is then the client's address the header carries: the
// address that allow-lists (balancer.Service.AllowCIDRs) check and that
// X-Forwarded-For names. A connection from any other peer is served as it
// is, with its own address, and is closed at its first read if it opens
// with a PROXY header: nobody else can claim another client's address.
// With no trusted peer, Proxy returns ln.
func Proxy(ln net.Listener, trusted []netip.Prefix) net.Listener {
	if len(trusted) == 0 {
		return ln
	}
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: ProxyHeaderTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if ap, err := netip.ParseAddrPort(o.Upstream.String()); err == nil {
				a := ap.Addr().Unmap()
				for _, p := range trusted {
					if p.Contains(a) {
						return proxyproto.REQUIRE, nil
					}
				}
			}
			return proxyproto.REJECT, nil
		},
	}
}
