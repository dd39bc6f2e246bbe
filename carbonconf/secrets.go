package carbonconf

import "strings"

// DefaultKeystorePassword is the password of the keystores Carbon products
// ship with. Anyone can read it, so a node still using it in production has
// no private key worth the name.
const DefaultKeystorePassword = "wso2carbon"

// Secret is a password found in a configuration file.
type Secret struct {
	// Name is the attribute's name ("keystorePass"), or the element's
	// after its parent's ("KeyStore/Password"; the element's alone below
	// the root or under a parent name longer than 1,024 bytes).
	Name  string
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
//
// A secret is named by its element and the element's parent, which is
// enough to say which password it is. Only those two names are built, never
// the path from the root: a path built at every depth, while every
// ancestor's copy is still held, made a deep file cost memory and time in
// the square of its depth.
func findSecrets(d *xdoc) []Secret {
	var out []Secret
	var walk func(n *xnode)
	walk = func(n *xnode) {
		for _, a := range n.attrs {
			ln := localName(a.name)
			if strings.HasSuffix(ln, "Pass") || strings.HasSuffix(ln, "Password") || strings.HasSuffix(ln, "password") {
				v := d.decode(d.src[a.valStart:a.valEnd])
				l, c := d.pos(a.nameStart)
				out = append(out, Secret{Name: ln, Value: v, Vaulted: strings.HasPrefix(v, "$secret{"), Line: l, Col: c})
			}
		}
		for _, c := range n.children {
			if c.kind != xElement {
				continue
			}
			ln := localName(c.name)
			if c.hasElements() || !strings.HasSuffix(ln, "Password") {
				walk(c)
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
			out = append(out, Secret{Name: secretName(n, d.root, ln), Value: v, Vaulted: vaulted, Line: l, Col: col})
		}
	}
	walk(d.root)
	return out
}

// secretName is "Parent/Name" for a password element below parent, or
// just its name below the root element (which paths leave out). A parent
// name longer than maxNamePath is left out too: the name is repeated for
// every password below it, and a long one repeated would cost memory in
// the square of the file's size.
func secretName(parent, root *xnode, name string) string {
	pn := localName(parent.name)
	if parent == root || len(pn) > maxNamePath {
		return name
	}
	return pn + "/" + name
}
