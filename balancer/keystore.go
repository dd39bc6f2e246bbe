package balancer

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/carbonlb/carbonlb/balancer/internal/keyfile"
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

func loadKeystoreEntry(path, passwordFile string) (certEntry, error) {
	mod, size, err := fileStamp(path, passwordFile)
	if err != nil {
		return certEntry{}, fmt.Errorf("balancer: keystore: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return certEntry{}, fmt.Errorf("balancer: keystore: %w", err)
	}
	pw, err := readPassword(passwordFile)
	if err != nil {
		return certEntry{}, fmt.Errorf("balancer: keystore %s: %w", path, err)
	}
	var certs []*tls.Certificate
	if keyfile.IsJKS(data) {
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
	return certEntry{certFile: path, keyFile: passwordFile, keystore: true, mod: mod, size: size, certs: certs}, nil
}

// readPassword reads a keystore's password from passwordFile, without the
// line break an editor leaves at its end.
func readPassword(passwordFile string) ([]byte, error) {
	pw, err := os.ReadFile(passwordFile)
	if err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	return bytes.TrimRight(pw, "\r\n"), nil
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
	if err := keyfile.CheckJKS(data); err != nil {
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

// pkcs12Certificates returns the key and chain of a PKCS#12 keystore.
func pkcs12Certificates(data, pw []byte) ([]*tls.Certificate, error) {
	if err := keyfile.CheckPKCS12(data); err != nil {
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
