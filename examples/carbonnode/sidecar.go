package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/carbonlb/carbonlb/membership"
)

// sidecarConfig returns the address and the properties a sidecar announces
// for a backend that is not written in Go: its HTTP or HTTPS port, by the
// URL's scheme (http when it has none), and the URL's host as
// membership.PropHostName. The backend's address must be an IP address, as
// cluster members are reached by address.
func sidecarConfig(backendURL string) (addr netip.Addr, props map[string]string, err error) {
	scheme, rest, ok := strings.Cut(backendURL, "://")
	if !ok {
		scheme, rest = "http", backendURL
	}
	hostport, _, _ := strings.Cut(rest, "/")
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return addr, nil, fmt.Errorf("backend %q: want scheme://ip:port: %w", backendURL, err)
	}
	props = map[string]string{membership.PropHostName: ap.Addr().String()}
	switch scheme {
	case "http":
		props[membership.PropHTTPPort] = strconv.Itoa(int(ap.Port()))
	case "https":
		props[membership.PropHTTPSPort] = strconv.Itoa(int(ap.Port()))
	default:
		return addr, nil, fmt.Errorf("backend %q: scheme %q: want http or https", backendURL, scheme)
	}
	return ap.Addr(), props, nil
}
