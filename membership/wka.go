package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// WKAError is returned by ParseWKA, and wrapped in Join's *ConfigError, for a
// well-known address expression that is not valid.
type WKAError struct {
	Expr string // the expression as given
	Col  int    // 1-based byte column in Expr where the problem is
	Err  error  // what is wrong
}

// Error returns "membership: well-known address \"expr\": col N: reason".
func (e *WKAError) Error() string {
	return fmt.Sprintf("membership: well-known address %q: col %d: %v", e.Expr, e.Col, e.Err)
}

// Unwrap returns Err.
func (e *WKAError) Unwrap() error { return e.Err }

// ParseWKA validates a well-known address expression and expands it into
// host:port addresses. It accepts
//
//	10.0.0.4:4000           an IPv4 address and port
//	[fd00::4]:4000          an IPv6 address, bracketed, and port
//	mgr.example.com:4100    a host name, resolved at each join attempt
//	192.168.1.2-10:4000     a range of the last IPv4 octet, inclusive, as the
//	                        Carbon and Hazelcast guides write it: .2 to .10
//	10.0.0.[1-10]:4000      the same in brackets
//
// A range's end must be 255 or less and not less than its start, and only
// the last octet may be a range. Spaces around the expression are ignored. The port is required, as Carbon
// requires a well-known member's localMemberPort. An error is a *WKAError
// saying where and what is wrong.
func ParseWKA(s string) ([]string, error) {
	targets, err := parseWKA(s)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t.String()
	}
	return out, nil
}

// wkaTarget is one expanded well-known address: an IP address and port, or a
// host name and port to resolve.
type wkaTarget struct {
	addr netip.AddrPort // valid when host is empty
	host string
	port uint16
}

func (t wkaTarget) String() string {
	if t.host != "" {
		return net.JoinHostPort(t.host, strconv.Itoa(int(t.port)))
	}
	return t.addr.String()
}

func parseWKA(expr string) ([]wkaTarget, error) {
	lead := len(expr) - len(strings.TrimLeft(expr, " \t"))
	s := strings.TrimSpace(expr)
	fail := func(col int, format string, args ...any) ([]wkaTarget, error) {
		return nil, &WKAError{Expr: expr, Col: lead + col + 1, Err: fmt.Errorf(format, args...)}
	}
	if s == "" {
		return fail(0, "empty; want host:port")
	}
	var host, portStr string
	var portCol int
	if s[0] == '[' {
		// [IPv6]:port
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return fail(0, "missing ']' after the IPv6 address")
		}
		host = s[1:end]
		rest := s[end+1:]
		if !strings.HasPrefix(rest, ":") {
			return fail(end+1, "want :port after the bracketed address")
		}
		portStr, portCol = rest[1:], end+2
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return fail(1, "%q is not an IPv6 address", host)
		}
		if a.Zone() != "" {
			return fail(1, "zoned address %q is not supported", host)
		}
		p, err := parsePort(portStr)
		if err != nil {
			return fail(portCol, "%v", err)
		}
		return []wkaTarget{{addr: netip.AddrPortFrom(a, p)}}, nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return fail(len(s), "missing :port")
	}
	host, portStr, portCol = s[:i], s[i+1:], i+1
	if strings.Contains(host, ":") {
		return fail(0, "an IPv6 address must be in brackets, as [%s]:port", host)
	}
	p, err := parsePort(portStr)
	if err != nil {
		return fail(portCol, "%v", err)
	}
	if host == "" {
		return fail(0, "missing host before :port")
	}
	if open := strings.IndexByte(host, '['); open >= 0 {
		return parseRange(expr, lead, host, open, p)
	}
	if isDashRange(host) {
		return parseDashRange(expr, lead, host, p)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []wkaTarget{{addr: netip.AddrPortFrom(a, p)}}, nil
	}
	if col, err := checkHostName(host); err != nil {
		return fail(col, "%v", err)
	}
	return []wkaTarget{{host: strings.ToLower(host), port: p}}, nil
}

// parseRange expands "a.b.c.[x-y]" whose '[' is at host[open].
func parseRange(expr string, lead int, host string, open int, port uint16) ([]wkaTarget, error) {
	fail := func(col int, format string, args ...any) ([]wkaTarget, error) {
		return nil, &WKAError{Expr: expr, Col: lead + col + 1, Err: fmt.Errorf(format, args...)}
	}
	prefix := host[:open]
	if !strings.HasSuffix(host, "]") {
		return fail(len(host), "a range must end the address, as 10.0.0.[1-10]")
	}
	octets := strings.Split(strings.TrimSuffix(prefix, "."), ".")
	if !strings.HasSuffix(prefix, ".") || len(octets) != 3 {
		return fail(0, "a range is only allowed in the last octet of an IPv4 address, as 10.0.0.[1-10]")
	}
	var base [4]byte
	col := 0
	for i, o := range octets {
		v, err := parseOctet(o)
		if err != nil {
			return fail(col, "octet %d: %v", i+1, err)
		}
		base[i] = v
		col += len(o) + 1
	}
	body := host[open+1 : len(host)-1]
	lo, hi, ok := strings.Cut(body, "-")
	if !ok {
		return fail(open+1, "want [first-last] in the range, got [%s]", body)
	}
	first, err := parseOctet(strings.TrimSpace(lo))
	if err != nil {
		return fail(open+1, "range start: %v", err)
	}
	last, err := parseOctet(strings.TrimSpace(hi))
	if err != nil {
		return fail(open+2+len(lo), "range end: %v", err)
	}
	if first > last {
		return fail(open+1, "range start %d is greater than its end %d", first, last)
	}
	return expandLast(base, first, last, port), nil
}

// isDashRange reports whether host is written as the Carbon/Hazelcast range
// of the last octet, "192.168.1.2-10": digits, dots and a hyphen, starting
// with a digit. A host name has a letter somewhere (RFC 1123 section 2.1
// forbids an all-numeric top-level label), so nothing else is taken for
// one.
func isDashRange(host string) bool {
	if host == "" || host[0] < '0' || host[0] > '9' || !strings.Contains(host, "-") {
		return false
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// parseDashRange expands "a.b.c.d-e": the addresses a.b.c.d to a.b.c.e.
func parseDashRange(expr string, lead int, host string, port uint16) ([]wkaTarget, error) {
	fail := func(col int, format string, args ...any) ([]wkaTarget, error) {
		return nil, &WKAError{Expr: expr, Col: lead + col + 1, Err: fmt.Errorf(format, args...)}
	}
	dash := strings.IndexByte(host, '-')
	if strings.Contains(host[dash:], ".") {
		return fail(dash, "a range is only allowed in the last octet of an IPv4 address, as 192.168.1.2-10")
	}
	if strings.Count(host[:dash], ".") != 3 {
		return fail(0, "want an IPv4 address range a.b.c.d-e, as 192.168.1.2-10")
	}
	octets := strings.Split(host[:dash], ".")
	var base [4]byte
	col := 0
	for i, o := range octets[:3] {
		v, err := parseOctet(o)
		if err != nil {
			return fail(col, "octet %d: %v", i+1, err)
		}
		base[i] = v
		col += len(o) + 1
	}
	first, err := parseOctet(octets[3])
	if err != nil {
		return fail(col, "range start: %v", err)
	}
	last, err := parseOctet(host[dash+1:])
	if err != nil {
		return fail(dash+1, "range end: %v", err)
	}
	if first > last {
		return fail(col, "range start %d is greater than its end %d", first, last)
	}
	return expandLast(base, first, last, port), nil
}

// expandLast returns base with each last octet from first to last, and port.
func expandLast(base [4]byte, first, last byte, port uint16) []wkaTarget {
	out := make([]wkaTarget, 0, int(last)-int(first)+1)
	for v := int(first); v <= int(last); v++ {
		b := base
		b[3] = byte(v)
		out = append(out, wkaTarget{addr: netip.AddrPortFrom(netip.AddrFrom4(b), port)})
	}
	return out
}

func parseOctet(s string) (byte, error) {
	if s == "" {
		return 0, errors.New("empty, want 0 to 255")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a number", s)
		}
	}
	if len(s) > 3 {
		return 0, fmt.Errorf("%s is more than 255", s)
	}
	v, _ := strconv.Atoi(s)
	if v > 255 {
		return 0, fmt.Errorf("%d is more than 255", v)
	}
	return byte(v), nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("missing port after ':'")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("port %q is not a number", s)
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > 65535 {
		return 0, fmt.Errorf("port %s is not between 1 and 65535", s)
	}
	return uint16(v), nil
}

// checkHostName reports the 0-based column and reason when host is not a
// valid DNS host name (RFC 1123 section 2.1: letters, digits, hyphens;
// labels of 1 to 63 bytes; 253 bytes in all). A trailing dot is allowed.
func checkHostName(host string) (int, error) {
	if len(host) > 253 {
		return 253, fmt.Errorf("host name is %d bytes, at most 253", len(host))
	}
	col := 0
	for label := range strings.SplitSeq(strings.TrimSuffix(host, "."), ".") {
		if label == "" {
			return col, errors.New("empty label in host name")
		}
		if len(label) > 63 {
			return col, fmt.Errorf("host name label %q is longer than 63 bytes", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			case c == '-' && i > 0 && i < len(label)-1:
			case c == '_':
			default:
				return col + i, fmt.Errorf("%q is not allowed in a host name", string(rune(c)))
			}
		}
		col += len(label) + 1
	}
	return 0, nil
}

// resolve returns the addresses of the targets, looking host names up with
// lookup. A name that does not resolve is reported in errs and skipped.
func resolve(ctx context.Context, targets []wkaTarget, lookup func(context.Context, string) ([]netip.Addr, error)) (addrs []netip.AddrPort, errs []error) {
	seen := make(map[netip.AddrPort]bool)
	add := func(a netip.AddrPort) {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	for _, t := range targets {
		if t.host == "" {
			add(t.addr)
			continue
		}
		ips, err := lookup(ctx, t.host)
		if err != nil {
			errs = append(errs, fmt.Errorf("membership: resolve %s: %w", t.host, err))
			continue
		}
		for _, ip := range ips {
			add(netip.AddrPortFrom(ip, t.port))
		}
	}
	return addrs, errs
}

func defaultLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
