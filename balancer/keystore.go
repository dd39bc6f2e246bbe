package balancer

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/pavlo-v-chernykh/keystore-go/v4"
	"software.sslmate.com/src/go-pkcs12"
)

// AddKeystore loads the certificates and keys of a Java keystore — JKS, as
// Carbon's wso2carbon.jks, or PKCS#12 (.p12, .pfx), told apart by their
// content — and serves each for the names in it, as AddFiles does for PEM
// files. passwordFile holds the keystore's password (a trailing newline is
// ignored), which must also open its keys, as in Carbon's keystores; the
// password never appears on a command line. Every private-key entry of a
// JKS keystore is served (trusted-certificate entries are skipped); a
// PKCS#12 keystore holds one key and its chain. The keystore is reloaded
// when it or the password file changes, as files are.
func (s *CertStore) AddKeystore(path, passwordFile string) error {
	e, err := loadKeystoreEntry(path, passwordFile)
	if err != nil {
		return err
	}
	s.add(e)
	return nil
}

// jksMagic starts every JKS keystore.
var jksMagic = []byte{0xfe, 0xed, 0xfe, 0xed}

func loadKeystoreEntry(path, passwordFile string) (certEntry, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return certEntry{}, fmt.Errorf("balancer: keystore: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return certEntry{}, fmt.Errorf("balancer: keystore: %w", err)
	}
	pw, err := os.ReadFile(passwordFile)
	if err != nil {
		return certEntry{}, fmt.Errorf("balancer: keystore %s: password: %w", path, err)
	}
	pw = bytes.TrimRight(pw, "\r\n")
	var certs []*tls.Certificate
	if bytes.HasPrefix(data, jksMagic) {
		certs, err = jksCertificates(data, pw)
	} else {
		certs, err = pkcs12Certificates(data, pw)
	}
	if err != nil {
		return certEntry{}, fmt.Errorf("balancer: keystore %s: %w", path, err)
	}
	if len(certs) == 0 {
		return certEntry{}, fmt.Errorf("balancer: keystore %s: no private key entry", path)
	}
	mod := fi.ModTime()
	if pi, err := os.Stat(passwordFile); err == nil && pi.ModTime().After(mod) {
		mod = pi.ModTime()
	}
	return certEntry{certFile: path, keyFile: passwordFile, keystore: true, mod: mod, size: fi.Size(), certs: certs}, nil
}

// jksCertificates returns the private-key entries of a JKS keystore, in
// alias order.
func jksCertificates(data, pw []byte) ([]*tls.Certificate, error) {
	ks, aliases, err := loadJKS(data, pw)
	if err != nil {
		return nil, err
	}
	var out []*tls.Certificate
	for _, alias := range aliases {
		if !ks.IsPrivateKeyEntry(alias) {
			continue
		}
		e, err := ks.GetPrivateKeyEntry(alias, pw)
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", alias, err)
		}
		key, err := x509.ParsePKCS8PrivateKey(e.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("entry %s: private key: %w", alias, err)
		}
		var chain [][]byte
		for _, c := range e.CertificateChain {
			chain = append(chain, c.Content)
		}
		c, err := tlsCertificate(chain, key)
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", alias, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// loadJKS checks and loads a JKS keystore, and returns it with its
// aliases in order.
func loadJKS(data, pw []byte) (keystore.KeyStore, []string, error) {
	if err := checkJKS(data); err != nil {
		return keystore.KeyStore{}, nil, err
	}
	ks := keystore.New()
	if err := ks.Load(bytes.NewReader(data), pw); err != nil {
		return keystore.KeyStore{}, nil, err
	}
	aliases := ks.Aliases()
	sort.Strings(aliases)
	return ks, aliases, nil
}

// checkJKS walks the framing of a JKS keystore and refuses one whose
// lengths or counts exceed the bytes it has: the decoder allocates what a
// length field says before reading, so a corrupt or hostile file could
// otherwise make it allocate gigabytes.
func checkJKS(data []byte) error {
	r := jksReader{b: data}
	if r.u32() != binary.BigEndian.Uint32(jksMagic) {
		return errors.New("not a JKS keystore")
	}
	version := r.u32()
	if version != 1 && version != 2 {
		return fmt.Errorf("JKS version %d: want 1 or 2", version)
	}
	cert := func() {
		if version == 2 {
			r.skip(int(r.u16())) // the certificate type
		}
		r.skip(int(r.u32()))
	}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		tag := r.u32()
		r.skip(int(r.u16())) // alias
		r.skip(8)            // creation time
		switch tag {
		case 1: // private key
			r.skip(int(r.u32()))
			certs := r.u32()
			if uint64(certs)*4 > uint64(len(r.b)) {
				return errors.New("JKS: certificate count larger than the file")
			}
			for ; certs > 0 && r.err == nil; certs-- {
				cert()
			}
		case 2: // trusted certificate
			cert()
		default:
			return fmt.Errorf("JKS: unknown entry tag %d", tag)
		}
	}
	r.skip(20) // the SHA-1 digest
	return r.err
}

// jksReader reads the big-endian framing of a JKS keystore; after the
// first read past the end, err is set and every read returns 0.
type jksReader struct {
	b   []byte
	err error
}

func (r *jksReader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errors.New("JKS: a length runs past the end of the file")
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *jksReader) skip(n int) { r.take(n) }

func (r *jksReader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *jksReader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// pkcs12Certificates returns the key and chain of a PKCS#12 keystore.
func pkcs12Certificates(data, pw []byte) ([]*tls.Certificate, error) {
	if err := checkPKCS12(data); err != nil {
		return nil, err
	}
	key, leaf, cas, err := pkcs12.DecodeChain(data, string(pw))
	if err != nil {
		return nil, err
	}
	chain := [][]byte{leaf.Raw}
	for _, c := range cas {
		chain = append(chain, c.Raw)
	}
	c, err := tlsCertificate(chain, key)
	if err != nil {
		return nil, err
	}
	return []*tls.Certificate{c}, nil
}

// tlsCertificate checks that key belongs to the first certificate of chain.
func tlsCertificate(chain [][]byte, key any) (*tls.Certificate, error) {
	if len(chain) == 0 {
		return nil, errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	signer, ok2 := key.(crypto.Signer)
	if !ok || !ok2 || !pub.Equal(signer.Public()) {
		return nil, errors.New("the private key does not match the certificate")
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}
