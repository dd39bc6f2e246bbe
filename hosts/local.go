package hosts

import (
	"fmt"
	"net/netip"
	"strings"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/go-sockaddr/template"
)

// LocalAddr returns the one address that tmpl names: a plain IP address, or
// a go-sockaddr template evaluated against this host's interfaces, such as
// `{{ GetPrivateIP }}` or `{{ GetInterfaceIP "eth0" }}` (see
// https://pkg.go.dev/github.com/hashicorp/go-sockaddr/template). It is how
// a node picks its bind or advertise address without hard-coding it.
//
// It fails, naming the template, when the template does not parse, yields
// nothing, yields several addresses, or yields something that is not an IP
// address.
func LocalAddr(tmpl string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.TrimSpace(tmpl)); err == nil {
		return a, nil
	}
	ifs, err := sockaddr.GetAllInterfaces()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("hosts: local address %q: %w", tmpl, err)
	}
	return localAddr(tmpl, ifs)
}

// localAddr evaluates tmpl against the interface addresses ifs; sources such
// as GetPrivateIP still read the host's interfaces.
func localAddr(tmpl string, ifs sockaddr.IfAddrs) (netip.Addr, error) {
	out, err := template.ParseIfAddrs(tmpl, ifs)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("hosts: local address %q: %w", tmpl, err)
	}
	words := strings.Fields(out)
	switch len(words) {
	case 0:
		return netip.Addr{}, fmt.Errorf("hosts: local address %q: the template yields no address", tmpl)
	case 1:
	default:
		return netip.Addr{}, fmt.Errorf("hosts: local address %q: the template yields %d addresses (%s), expected one", tmpl, len(words), strings.Join(words, " "))
	}
	a, err := netip.ParseAddr(words[0])
	if err != nil {
		// Templates such as GetInterfaceIPs may yield a prefix.
		if p, perr := netip.ParsePrefix(words[0]); perr == nil {
			return p.Addr(), nil
		}
		return netip.Addr{}, fmt.Errorf("hosts: local address %q: the template yields %q, expected an IP address", tmpl, words[0])
	}
	return a, nil
}
