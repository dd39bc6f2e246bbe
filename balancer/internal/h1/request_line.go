package h1

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// targetInfo is what the request line tells the header's parser.
type targetInfo struct {
	// authority is the target's authority for absolute-form and
	// authority-form, which replaces the Host field (RFC 9112, section
	// 3.2.2); "" for the other forms.
	authority string
	absolute  bool // the target has an authority
}

// parseRequestLine parses line, the request line without its line end:
// exactly method SP request-target SP HTTP-version (RFC 9112, section 3).
func parseRequestLine(line string, r *http.Request, ti *targetInfo) *RequestError {
	sp1 := strings.IndexByte(line, ' ')
	if sp1 < 0 {
		return refuse(http.StatusBadRequest, whyRequestLine)
	}
	method, rest := line[:sp1], line[sp1+1:]
	sp2 := strings.IndexByte(rest, ' ')
	if sp1 == 0 || sp2 < 0 {
		return refuse(http.StatusBadRequest, whyRequestLine)
	}
	if sp2 == 0 {
		return refuse(http.StatusBadRequest, whyEmptyTarget) // two spaces in a row
	}
	target, version := rest[:sp2], rest[sp2+1:]
	if !isToken(method) {
		return refuse(http.StatusBadRequest, whyMethod)
	}
	// HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112,
	// section 2.3).
	if len(version) != len("HTTP/1.1") || version[:5] != "HTTP/" || !isDigit(version[5]) ||
		version[6] != '.' || !isDigit(version[7]) {
		return refuse(http.StatusBadRequest, whyVersion)
	}
	if version[5] != '1' {
		return refuse(http.StatusHTTPVersionNotSupported, whyVersionSupport)
	}
	r.Method, r.RequestURI = method, target
	if version[7] == '0' {
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
	} else {
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	}
	return parseTarget(method, target, r.URL, ti)
}

// parseTarget parses the request-target into u, which is zero (RFC 9112,
// section 3.2).
func parseTarget(method, target string, u *url.URL, ti *targetInfo) *RequestError {
	for i := 0; i < len(target); i++ {
		c := target[i]
		if c <= ' ' || c >= 0x7f {
			return refuse(http.StatusBadRequest, whyTargetChar)
		}
		if c == '#' {
			// A fragment is not part of a request-target; servers that
			// cut it and servers that keep it see different paths.
			return refuse(http.StatusBadRequest, whyFragment)
		}
	}
	connect := method == http.MethodConnect
	switch {
	case target[0] == '/': // origin-form
		if connect {
			return refuse(http.StatusBadRequest, whyTargetForm)
		}
		return setPathQuery(u, target)
	case target == "*": // asterisk-form
		if method != http.MethodOptions {
			return refuse(http.StatusBadRequest, whyTargetForm)
		}
		u.Path = "*"
		return nil
	case connect: // authority-form: uri-host ":" port
		if !validHost(target, true) {
			return refuse(http.StatusBadRequest, whyAuthority)
		}
		u.Host = target
		ti.authority, ti.absolute = target, true
		return nil
	}
	// absolute-form, for the schemes a load balancer serves (RFC 9110,
	// section 4.2).
	colon := strings.IndexByte(target, ':')
	if colon < 0 || !strings.HasPrefix(target[colon+1:], "//") {
		return refuse(http.StatusBadRequest, whyTargetForm)
	}
	switch scheme := target[:colon]; {
	case strings.EqualFold(scheme, "http"):
		u.Scheme = "http"
	case strings.EqualFold(scheme, "https"):
		u.Scheme = "https"
	default:
		return refuse(http.StatusBadRequest, whyScheme)
	}
	rest := target[colon+3:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	auth := rest[:end]
	if strings.IndexByte(auth, '@') >= 0 {
		// RFC 9110, section 4.2.4: a recipient should treat userinfo as
		// an error; it is a way of hiding the real host from a reader.
		return refuse(http.StatusBadRequest, whyUserinfo)
	}
	if auth == "" || !validHost(auth, false) {
		return refuse(http.StatusBadRequest, whyAuthority) // an http URI must have a host (RFC 9110, section 4.2.1)
	}
	u.Host = auth
	ti.authority, ti.absolute = auth, true
	if end == len(rest) {
		return nil
	}
	return setPathQuery(u, rest[end:])
}

// setPathQuery sets u's Path, RawPath, RawQuery and ForceQuery from s, an
// absolute path with an optional query, as url.ParseRequestURI does.
func setPathQuery(u *url.URL, s string) *RequestError {
	p := s
	if q := strings.IndexByte(s, '?'); q >= 0 {
		p, u.RawQuery = s[:q], s[q+1:]
		u.ForceQuery = u.RawQuery == ""
	}
	u.Path = p
	if strings.IndexByte(p, '%') >= 0 {
		dec, err := url.PathUnescape(p)
		if err != nil {
			return refuse(http.StatusBadRequest, whyEscape)
		}
		u.Path = dec
	}
	// RawPath keeps the received form when the default encoding of Path
	// differs from it, as url.URL's own parser decides; EscapedPath, with
	// RawPath empty, is that default encoding, and allocates only when it
	// differs.
	if u.EscapedPath() != p {
		u.RawPath = p
	}
	return nil
}

// validHost reports whether s is uri-host [ ":" port ] (RFC 9110, section
// 7.2; RFC 3986, section 3.2.2), strictly: an IPv6 literal in brackets
// without a zone, or a reg-name (an IPv4 address is one) without percent-
// encoding or commas, which some readers of a Host field split on; a port
// of at most five digits. needPort asks for a port, as authority-form
// does. The empty string is valid unless needPort: RFC 9110, section 7.2,
// has a client send an empty Host when the target has no authority.
func validHost(s string, needPort bool) bool {
	if s == "" {
		return !needPort
	}
	host, port, hasPort := s, "", false
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return false
		}
		switch rest := s[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			port, hasPort = rest[1:], true
		default:
			return false
		}
	} else {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port, hasPort = s[:i], s[i+1:], true
		}
		if host == "" {
			return false
		}
		for i := 0; i < len(host); i++ {
			if !isRegNameByte(host[i]) {
				return false
			}
		}
	}
	if needPort && port == "" {
		return false
	}
	if hasPort {
		if len(port) > 5 {
			return false
		}
		for i := 0; i < len(port); i++ {
			if !isDigit(port[i]) {
				return false
			}
		}
	}
	return true
}

// isRegNameByte reports whether c may appear in a reg-name: unreserved or
// sub-delims, but not "," (RFC 3986, section 3.2.2). Percent-encoding is
// not accepted: no client needs it in a host name.
func isRegNameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ';', '=':
		return true
	}
	return false
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// The bytes of a token (RFC 9110, section 5.6.2), as bit masks of the
// ASCII bytes below 64 and from 64 to 127.
const (
	tokenLo uint64 = 1<<'!' | 1<<'#' | 1<<'$' | 1<<'%' | 1<<'&' | 1<<'\'' | 1<<'*' |
		1<<'+' | 1<<'-' | 1<<'.' | 0x3ff<<'0'
	tokenHi uint64 = 0x3ffffff<<('A'-64) | 0x3ffffff<<('a'-64) |
		1<<('^'-64) | 1<<('_'-64) | 1<<('`'-64) | 1<<('|'-64) | 1<<('~'-64)
)

// isTokenByte reports whether c is a tchar.
func isTokenByte(c byte) bool {
	if c < 64 {
		return tokenLo&(1<<c) != 0
	}
	return c < 128 && tokenHi&(1<<(c-64)) != 0
}

// ValidFieldName reports whether name may be a header field's name: a
// token (RFC 9110, section 5.1).
func ValidFieldName(name string) bool { return isToken(name) }

// isToken reports whether s is a non-empty token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}
