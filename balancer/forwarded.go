package balancer

import (
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
)

// clientAddr returns the address the balancer attributes the request to:
// the peer, or, when the peer is a trusted proxy, the right-most address of
// X-Forwarded-For that is not a trusted proxy. Without X-Forwarded-For the
// for= nodes of RFC 7239 Forwarded (fwd) are read the same way. A value
// that is not an address (garbage, "unknown", an obfuscated node) stops the
// walk at the last address found.
func clientAddr(peer netip.Addr, xff, fwd []string, trusted []netip.Prefix) netip.Addr {
	if len(trusted) == 0 || !inPrefixes(peer, trusted) {
		return peer
	}
	addr := peer
	if len(xff) == 0 && len(fwd) > 0 {
		nodes := forwardedFor(fwd)
		for i := len(nodes) - 1; i >= 0; i-- {
			a, ok := forwardedNode(nodes[i])
			if !ok {
				return addr
			}
			addr = a
			if !inPrefixes(a, trusted) {
				return a
			}
		}
		return addr
	}
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		for v != "" {
			j := strings.LastIndexByte(v, ',')
			part := strings.TrimSpace(v[j+1:])
			if j < 0 {
				v = ""
			} else {
				v = v[:j]
			}
			a, err := netip.ParseAddr(part)
			if err != nil {
				return addr
			}
			addr = a
			if !inPrefixes(a, trusted) {
				return a
			}
		}
	}
	return addr
}

// forwardedFor returns the for= value of each element of RFC 7239
// Forwarded header values, in order, unquoted; an element without one
// yields "". Commas and semicolons inside quoted strings do not split.
func forwardedFor(vals []string) []string {
	var out []string
	for _, v := range vals {
		var forVal string
		for len(v) > 0 {
			// One pair, up to an unquoted ';' or ','.
			i, quoted := 0, false
			for ; i < len(v); i++ {
				c := v[i]
				if quoted {
					if c == '\\' {
						i++
					} else if c == '"' {
						quoted = false
					}
					continue
				}
				if c == '"' {
					quoted = true
				} else if c == ';' || c == ',' {
					break
				}
			}
			pair := strings.TrimSpace(v[:min(i, len(v))])
			if k, val, ok := strings.Cut(pair, "="); ok && strings.EqualFold(strings.TrimSpace(k), "for") {
				forVal = unquoteForwarded(strings.TrimSpace(val))
			}
			if i >= len(v) {
				break
			}
			if v[i] == ',' {
				out = append(out, forVal)
				forVal = ""
			}
			v = v[i+1:]
		}
		out = append(out, forVal)
	}
	return out
}

// unquoteForwarded removes the quotes and backslash escapes of an RFC 7230
// quoted-string; other values are returned as they are.
func unquoteForwarded(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// forwardedNode parses an RFC 7239 node: an IPv4 address or a bracketed
// IPv6 address, either with an optional port. "unknown" and obfuscated
// identifiers are not addresses.
func forwardedNode(node string) (netip.Addr, bool) {
	host := node
	if strings.HasPrefix(node, "[") {
		end := strings.IndexByte(node, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = node[1:end]
		if rest := node[end+1:]; rest != "" && rest[0] != ':' {
			return netip.Addr{}, false
		}
	} else if i := strings.IndexByte(node, ':'); i >= 0 {
		host = node[:i]
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Hop-by-hop headers, removed in both directions (RFC 9110, section 7.6.1).
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection", // non-standard, sent by some clients
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te", // canonicalized "TE"
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// splitPeer splits RemoteAddr's host part without allocating.
func splitPeer(ra string) (string, netip.Addr) {
	h := ra
	if i := strings.LastIndexByte(ra, ':'); i >= 0 {
		h = ra[:i]
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	a, _ := netip.ParseAddr(h)
	return h, a
}

// prepareHeaders rewrites r.Header in place for the backend (the handler
// owns the request; the server no longer reads it); host is the request's
// host name as normHost gives it. It returns the Upgrade protocol if the
// request asks for one that Config.Upgrades allows.
func (b *Balancer) prepareHeaders(r *http.Request, st *state, host, peerStr string, peer netip.Addr) string {
	h := r.Header
	var upgrade string
	if c := h["Connection"]; len(c) > 0 {
		for _, v := range c {
			for _, tok := range strings.Split(v, ",") {
				tok = textproto.TrimString(tok)
				if tok == "" {
					continue
				}
				if strings.EqualFold(tok, "upgrade") {
					upgrade = allowedUpgrade(h["Upgrade"], st.upgrades)
				}
				delete(h, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
	te := false
	if v := h["Te"]; len(v) > 0 {
		for _, x := range v {
			te = te || strings.Contains(strings.ToLower(x), "trailers")
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	if te {
		h["Te"] = valTrailers
	}
	if upgrade != "" {
		h["Connection"] = valUpgrade
		h["Upgrade"] = []string{upgrade}
	}
	trusted := len(st.trusted) > 0 && inPrefixes(peer, st.trusted)
	if prior := h["X-Forwarded-For"]; trusted && len(prior) > 0 {
		h["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + peerStr}
	} else if len(prior) == 1 {
		prior[0] = peerStr
	} else {
		h["X-Forwarded-For"] = []string{peerStr}
	}
	if !trusted || len(h["X-Forwarded-Host"]) == 0 {
		h["X-Forwarded-Host"] = []string{r.Host}
	}
	if !trusted || len(h["X-Forwarded-Proto"]) == 0 {
		if r.TLS != nil {
			h["X-Forwarded-Proto"] = valHTTPS
		} else {
			h["X-Forwarded-Proto"] = valHTTP
		}
	}
	if st.serverVal != nil {
		h["X-Forwarded-Server"] = st.serverVal
	} else {
		h["X-Forwarded-Server"] = st.hostVal(host) // nginx's $host
	}
	if !trusted {
		delete(h, "Forwarded") // a client's own claim, as X-Forwarded-For above
	}
	if st.forwarded {
		proto := "http"
		if r.TLS != nil {
			proto = "https"
		}
		node := peerStr
		if peer.Is6() && !peer.Is4In6() {
			node = `"[` + peerStr + `]"`
		}
		v := "for=" + node + ";host=" + quoteForwarded(r.Host) + ";proto=" + proto
		if prior := h["Forwarded"]; trusted && len(prior) > 0 {
			v = strings.Join(prior, ", ") + ", " + v
		}
		h["Forwarded"] = []string{v}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = valEmpty // keep net/http from adding its own
	}
	return upgrade
}

// allowedUpgrade returns the protocols of an Upgrade header that allowed
// (Config.Upgrades, lower case) holds, comma-separated, or "".
func allowedUpgrade(vals, allowed []string) string {
	var out string
	for _, v := range vals {
		for _, tok := range strings.Split(v, ",") {
			tok = textproto.TrimString(tok)
			name, _, _ := strings.Cut(tok, "/") // "websocket", "h2c", "TLS/1.2"
			if tok != "" && slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, name) }) {
				if out != "" {
					out += ", "
				}
				out += tok
			}
		}
	}
	return out
}

func quoteForwarded(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '-' || c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
			return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
		}
	}
	return s
}

// removeHop deletes hop-by-hop headers from a response header.
func removeHop(h http.Header) {
	if c := h["Connection"]; len(c) > 0 {
		for _, v := range c {
			for _, tok := range strings.Split(v, ",") {
				if tok = textproto.TrimString(tok); tok != "" {
					delete(h, textproto.CanonicalMIMEHeaderKey(tok))
				}
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}
