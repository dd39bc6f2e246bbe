package balancer

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carbonlb/carbonlb/balancer/internal/keyfile"
	"software.sslmate.com/src/go-pkcs12"
)

// TrustStore holds the certificates trusted for https backends, in place
// of the system's roots: PEM files (a CA bundle, nginx's
// proxy_ssl_trusted_certificate, HAProxy's ca-file) and Java truststores
// (JKS, as Carbon's client-truststore.jks, or PKCS#12). ClientConfig makes
// the tls.Config for Config.TLSClientConfig. Files are reloaded when they
// change, without closing connections: a handshake checks their
// modification time and size at most once per CheckInterval, and Reload
// does it at once; a new certificate is trusted from the next handshake.
//
// The zero value is an empty store, which trusts nothing. Methods are safe
// for concurrent use; set CheckInterval before first use.
type TrustStore struct {
	// CheckInterval is how often a handshake looks for changed files.
	// Zero means 5 seconds; negative disables automatic reloads.
	CheckInterval time.Duration

	mu      sync.Mutex // serializes changes; protects files
	files   []trustFile
	pool    atomic.Pointer[x509.CertPool]
	checked atomic.Int64 // unix ns of the last file check
}

type trustFile struct {
	path, passwordFile string
	mod                time.Time
	size               int64
	certs              []*x509.Certificate
}

// maxTrustFile bounds a trust file's size: the system's whole CA bundle
// is a few hundred kilobytes.
const maxTrustFile = 16 << 20

// Add trusts the certificates in path: a PEM file of certificates (blocks
// of other types are skipped), or, when passwordFile is not empty, a Java
// truststore — JKS or PKCS#12, told apart by their content — opened with
// the password passwordFile holds (a trailing newline is ignored). Of a
// truststore every trusted-certificate entry is trusted, and the
// certificate of every private-key entry, as Java's trust managers do; so
// a keystore such as wso2carbon.jks can serve as the truststore of
// backends that present its certificate. A file without a certificate is
// an error.
func (t *TrustStore) Add(path, passwordFile string) error {
	f, err := loadTrustFile(path, passwordFile)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.files = append(t.files, f)
	t.rebuild()
	return nil
}

// Certificates returns the trusted certificates, in the order of their
// files and, within a file, as read (a truststore's entries by alias).
func (t *TrustStore) Certificates() []*x509.Certificate {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*x509.Certificate
	for _, f := range t.files {
		out = append(out, f.certs...)
	}
	return out
}

// Reload reloads every file whose modification time or size changed. If
// one fails to load, nothing changes and its error is returned: every
// certificate trusted stays trusted.
func (t *TrustStore) Reload() error {
	commit, err := t.PrepareReload()
	if err != nil {
		return err
	}
	commit()
	return nil
}

// PrepareReload reads every file whose modification time or size changed,
// as Reload does, without trusting them yet: commit does, for a caller
// that applies them together with changes of its own once all are known
// to be valid. On error nothing is read for later and nothing changes.
func (t *TrustStore) PrepareReload() (commit func(), err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.checked.Store(time.Now().UnixNano())
	type change struct {
		i int
		f trustFile
	}
	var changes []change
	for i, f := range t.files {
		mod, size, err := fileStamp(f.path, f.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("balancer: trusted certificates: %w", err)
		}
		if mod.Equal(f.mod) && size == f.size {
			continue
		}
		nf, err := loadTrustFile(f.path, f.passwordFile)
		if err != nil {
			return nil, err
		}
		changes = append(changes, change{i, nf})
	}
	return func() {
		if len(changes) == 0 {
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, c := range changes {
			t.files[c.i] = c.f // files are only ever appended: i still names its file
		}
		t.rebuild()
	}, nil
}

// rebuild publishes a new pool. t.mu must be held.
func (t *TrustStore) rebuild() {
	pool := x509.NewCertPool()
	for _, f := range t.files {
		for _, c := range f.certs {
			pool.AddCert(c)
		}
	}
	t.pool.Store(pool)
}

// current returns the pool to verify against, after reloading changed
// files when CheckInterval has passed.
func (t *TrustStore) current() *x509.CertPool {
	if iv := t.CheckInterval; iv >= 0 {
		if iv == 0 {
			iv = 5 * time.Second
		}
		now := time.Now().UnixNano()
		last := t.checked.Load()
		if now-last >= int64(iv) && t.checked.CompareAndSwap(last, now) {
			t.Reload() // one handshake looks; a failed reload changes nothing
		}
	}
	if p := t.pool.Load(); p != nil {
		return p
	}
	return x509.NewCertPool()
}

// ClientConfig returns a client TLS configuration for
// Config.TLSClientConfig that trusts the store's certificates only. With
// a serverName, a backend's certificate must be valid for that name,
// which is also sent as SNI, whatever address the backend's URL holds —
// cluster members are addressed by IP, their certificates name a host.
// Without one, only the chain is verified: the certificate must lead to a
// trusted one and be valid now for server authentication, as HAProxy
// verifies a server with a CA file and no verifyhost. That is right when
// the store holds the backends' own self-signed certificates (Carbon's
// default wso2carbon certificate names localhost and no address), and
// wrong for a public CA, which vouches for anyone's names.
func (t *TrustStore) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		ServerName: serverName,
		// Verification is VerifyConnection's, against the store's current
		// certificates: a tls.Config's RootCAs cannot change once in use.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return t.verify(cs, serverName)
		},
	}
}

// verify checks the certificates a backend presented against the store,
// and their names against serverName unless it is empty.
func (t *TrustStore) verify(cs tls.ConnectionState, serverName string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("balancer: backend presented no certificate")
	}
	opts := x509.VerifyOptions{
		Roots:         t.current(),
		DNSName:       serverName,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

func loadTrustFile(path, passwordFile string) (trustFile, error) {
	mod, size, err := fileStamp(path, passwordFile)
	if err != nil {
		return trustFile{}, fmt.Errorf("balancer: trusted certificates: %w", err)
	}
	data, err := readBounded(path, maxTrustFile)
	if err != nil {
		return trustFile{}, fmt.Errorf("balancer: trusted certificates: %w", err)
	}
	var certs []*x509.Certificate
	if passwordFile == "" {
		certs, err = pemCertificates(data)
	} else {
		certs, err = truststoreCertificates(data, passwordFile)
	}
	if err != nil {
		return trustFile{}, fmt.Errorf("balancer: trusted certificates %s: %w", path, err)
	}
	return trustFile{path: path, passwordFile: passwordFile, mod: mod, size: size, certs: certs}, nil
}

// readBounded reads the file at path, refusing one larger than max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return data, nil
}

// pemCertificates parses every CERTIFICATE block of a PEM file; an
// unparsable one is an error naming its line.
func pemCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		start := len(data) - len(rest)
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			// pem.Decode skips text before a block: find the block's line.
			at := start + bytes.Index(data[start:], []byte("-----BEGIN"))
			return nil, fmt.Errorf("line %d: %w", 1+bytes.Count(data[:at], []byte("\n")), err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if keyfile.IsJKS(data) || len(data) > 0 && data[0] == 0x30 {
			return nil, errors.New("no PEM certificate: a Java truststore needs its password file")
		}
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

// truststoreCertificates reads a JKS or PKCS#12 truststore.
func truststoreCertificates(data []byte, passwordFile string) ([]*x509.Certificate, error) {
	pw, err := readPassword(passwordFile)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	if keyfile.IsJKS(data) {
		certs, err = jksTrusted(data, pw)
	} else {
		certs, err = pkcs12Trusted(data, pw)
	}
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs, nil
}

// jksTrusted returns the trusted certificates of a JKS keystore and the
// certificates of its private-key entries, in alias order.
func jksTrusted(data, pw []byte) ([]*x509.Certificate, error) {
	ks, aliases, err := loadJKS(data, pw)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, alias := range aliases {
		var der []byte
		switch {
		case ks.IsTrustedCertificateEntry(alias):
			e, err := ks.GetTrustedCertificateEntry(alias)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", alias, err)
			}
			der = e.Certificate.Content
		case ks.IsPrivateKeyEntry(alias):
			chain, err := ks.GetPrivateKeyEntryCertificateChain(alias)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", alias, err)
			}
			if len(chain) == 0 {
				continue
			}
			der = chain[0].Content
		default:
			continue
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", alias, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// pkcs12Trusted returns the certificates of a PKCS#12 truststore (as
// keytool writes one: certificates marked trusted for Java), or the leaf
// certificate of a PKCS#12 keystore.
func pkcs12Trusted(data, pw []byte) ([]*x509.Certificate, error) {
	if err := keyfile.CheckPKCS12(data); err != nil {
		return nil, err
	}
	certs, err := pkcs12.DecodeTrustStore(data, string(pw))
	if err == nil {
		return certs, nil
	}
	if errors.Is(err, pkcs12.ErrIncorrectPassword) {
		return nil, err
	}
	_, leaf, _, kerr := pkcs12.DecodeChain(data, string(pw))
	if kerr != nil {
		return nil, fmt.Errorf("neither a Java PKCS#12 truststore (%v) nor a keystore with a key (%w); certificates exported by another tool read as a PEM file", err, kerr)
	}
	return []*x509.Certificate{leaf}, nil
}
