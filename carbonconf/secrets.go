package carbonconf

import "strings"

// DefaultKeystorePassword is the password of the keystores Carbon products
// ship with. Anyone can read it, so a node still using it in production has
// no private key worth the name.
const DefaultKeystorePassword = "wso2carbon"

// Secret is a password found in a configuration file.
type Secret struct {
	Name  string // element path or attribute name, e.g. "KeyStore/Password", "keystorePass"
	Value string // as written
	// Vaulted is true when the value is resolved through Carbon Secure
	// Vault (a secretAlias attribute or a $secret{…} value) rather than
	// written in plain text.
	Vaulted   bool
	Line, Col int
}

// findSecrets walks the live elements of d for passwords: leaf elements
// whose name ends in "Password" and attributes whose name ends in "Pass" or
// "Password".
func findSecrets(d *xdoc) []Secret {
	var out []Secret
	var walk func(n *xnode, path string)
	walk = func(n *xnode, path string) {
		for _, a := range n.attrs {
			ln := localName(a.name)
			if strings.HasSuffix(ln, "Pass") || strings.HasSuffix(ln, "Password") || strings.HasSuffix(ln, "password") {
				v := d.decode(d.src[a.valStart:a.valEnd])
				l, c := d.pos(a.nameStart)
				out = append(out, Secret{Name: ln, Value: v, Vaulted: strings.HasPrefix(v, "$secret{"), Line: l, Col: c})
			}
		}
		for _, c := range elems(n, "") {
			p := localName(c.name)
			if path != "" {
				p = path + "/" + p
			}
			if c.hasElements() {
				walk(c, p)
				continue
			}
			ln := localName(c.name)
			if !strings.HasSuffix(ln, "Password") {
				walk(c, p)
				continue
			}
			v := d.text(c)
			if v == "" {
				continue
			}
			vaulted := strings.HasPrefix(v, "$secret{")
			for _, a := range c.attrs {
				if localName(a.name) == "secretAlias" {
					vaulted = true
				}
			}
			l, col := d.pos(c.start)
			out = append(out, Secret{Name: shortPath(p), Value: v, Vaulted: vaulted, Line: l, Col: col})
		}
	}
	walk(d.root, "")
	return out
}

// shortPath keeps the last two elements of a path: enough to say which
// password it is.
func shortPath(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) > 2 {
		parts = parts[len(parts)-2:]
	}
	return strings.Join(parts, "/")
}
