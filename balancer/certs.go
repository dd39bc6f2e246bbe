package balancer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CertStore picks a TLS certificate by SNI — exact names first, then
// "*.example.com" wildcards — from PEM files (nginx's ssl_certificate and
// ssl_certificate_key; seed 000's wrk.crt and mgt.crt) and in-memory
// certificates. Files are reloaded when they change, without closing
// listeners: GetCertificate checks their modification time and size at
// most once per CheckInterval, and Reload does it at once. A client
// without SNI, or with an unknown name, gets the first certificate added.
//
// The zero value is an empty store ready to use. Methods are safe for
// concurrent use; set CheckInterval before first use.
type CertStore struct {
	// CheckInterval is how often GetCertificate looks for changed files.
	// Zero means 5 seconds; negative disables automatic reloads.
	CheckInterval time.Duration

	mu      sync.Mutex // serializes changes; protects entries
	entries []certEntry
	current atomic.Pointer[certIndex]
	checked atomic.Int64 // unix ns of the last file check
}

type certEntry struct {
	certFile, keyFile string // empty for in-memory certificates; a keystore and its password file
	keystore          bool   // certFile is a JKS or PKCS#12 keystore
	mod               time.Time
	size              int64
	certs             []*tls.Certificate // one, but a keystore may hold several
}

// load reads e's files again.
func (e certEntry) load() (certEntry, error) {
	if e.keystore {
		return loadKeystoreEntry(e.certFile, e.keyFile)
	}
	return loadCertEntry(e.certFile, e.keyFile)
}

type certIndex struct {
	exact    map[string]*tls.Certificate
	wildcard map[string]*tls.Certificate // ".example.com" → cert
	def      *tls.Certificate
}

// AddFiles loads a PEM certificate chain and its key and serves it for the
// names in the certificate (its DNS SANs, or its common name without SANs).
func (s *CertStore) AddFiles(certFile, keyFile string) error {
	e, err := loadCertEntry(certFile, keyFile)
	if err != nil {
		return err
	}
	s.add(e)
	return nil
}

// add serves entry e besides the others.
func (s *CertStore) add(e certEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, e)
	s.rebuild()
}

// AddCertificate serves an in-memory certificate (for example from
// SelfSigned) for the names in its leaf.
func (s *CertStore) AddCertificate(c tls.Certificate) error {
	if len(c.Certificate) == 0 {
		return errors.New("balancer: AddCertificate: empty certificate")
	}
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return fmt.Errorf("balancer: AddCertificate: %w", err)
		}
		c.Leaf = leaf
	}
	s.add(certEntry{certs: []*tls.Certificate{&c}})
	return nil
}

// fileStamp returns what a reload compares to tell that a file changed:
// the later modification time of path and of its companion (the key file
// of a certificate, the password file of a keystore; one that cannot be
// read does not count), and the size of path.
func fileStamp(path, companion string) (mod time.Time, size int64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, 0, err
	}
	mod = fi.ModTime()
	if companion != "" {
		if ci, err := os.Stat(companion); err == nil && ci.ModTime().After(mod) {
			mod = ci.ModTime()
		}
	}
	return mod, fi.Size(), nil
}

func loadCertEntry(certFile, keyFile string) (certEntry, error) {
	mod, size, err := fileStamp(certFile, keyFile)
	if err != nil {
		return certEntry{}, fmt.Errorf("balancer: certificate: %w", err)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return certEntry{}, fmt.Errorf("balancer: certificate %s: %w", certFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return certEntry{}, fmt.Errorf("balancer: certificate %s: %w", certFile, err)
		}
	}
	return certEntry{certFile: certFile, keyFile: keyFile, mod: mod, size: size, certs: []*tls.Certificate{&c}}, nil
}

// rebuild publishes a new index. s.mu must be held.
func (s *CertStore) rebuild() {
	idx := &certIndex{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}}
	for _, e := range s.entries {
		for _, c := range e.certs {
			if idx.def == nil {
				idx.def = c
			}
			names := c.Leaf.DNSNames
			if len(names) == 0 && c.Leaf.Subject.CommonName != "" {
				names = []string{c.Leaf.Subject.CommonName}
			}
			for _, n := range names {
				n = strings.ToLower(n)
				if strings.HasPrefix(n, "*.") {
					if _, ok := idx.wildcard[n[1:]]; !ok {
						idx.wildcard[n[1:]] = c
					}
				} else if _, ok := idx.exact[n]; !ok {
					idx.exact[n] = c
				}
			}
		}
	}
	s.current.Store(idx)
}

// Leaves returns the leaf certificate of every certificate the store
// serves, in the order they were added (for their expiry: a metrics
// collector reads NotAfter).
func (s *CertStore) Leaves() []*x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*x509.Certificate
	for _, e := range s.entries {
		for _, c := range e.certs {
			out = append(out, c.Leaf)
		}
	}
	return out
}

// Reload reloads every file whose modification time or size changed. If
// one fails to load, nothing changes and its error is returned: every
// certificate served stays as it was.
func (s *CertStore) Reload() error {
	commit, err := s.PrepareReload()
	if err != nil {
		return err
	}
	commit()
	return nil
}

// PrepareReload reads every file whose modification time or size changed,
// as Reload does, without serving them yet: commit does, for a caller that
// applies them together with changes of its own once all are known to be
// valid. On error nothing is read for later and nothing changes.
func (s *CertStore) PrepareReload() (commit func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checked.Store(time.Now().UnixNano())
	type change struct {
		i int
		e certEntry
	}
	var changes []change
	for i, e := range s.entries {
		if e.certFile == "" {
			continue
		}
		mod, size, err := fileStamp(e.certFile, e.keyFile)
		if err != nil {
			return nil, fmt.Errorf("balancer: certificate: %w", err)
		}
		if mod.Equal(e.mod) && size == e.size {
			continue
		}
		ne, err := e.load()
		if err != nil {
			return nil, err
		}
		changes = append(changes, change{i, ne})
	}
	return func() {
		if len(changes) == 0 {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range changes {
			s.entries[c.i] = c.e // entries are only ever appended: i still names its file
		}
		s.rebuild()
	}, nil
}

// GetCertificate returns the certificate for the handshake's server name;
// use it as tls.Config.GetCertificate.
func (s *CertStore) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if iv := s.CheckInterval; iv >= 0 {
		if iv == 0 {
			iv = 5 * time.Second
		}
		now := time.Now().UnixNano()
		last := s.checked.Load()
		if now-last >= int64(iv) && s.checked.CompareAndSwap(last, now) {
			s.Reload() // a broken file: nothing changes
		}
	}
	idx := s.current.Load()
	if idx == nil {
		return nil, errors.New("balancer: no certificate")
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if c, ok := idx.exact[name]; ok {
		return c, nil
	}
	if i := strings.IndexByte(name, '.'); i >= 0 {
		if c, ok := idx.wildcard[name[i:]]; ok {
			return c, nil
		}
	}
	if idx.def == nil {
		return nil, errors.New("balancer: no certificate")
	}
	return idx.def, nil
}

// TLSConfig returns a server tls.Config that takes certificates from s and
// offers HTTP/2 and HTTP/1.1.
func (s *CertStore) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: s.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
		MinVersion:     tls.VersionTLS12,
	}
}

// SelfSigned generates a self-signed ECDSA P-256 certificate valid for one
// year for hosts (names or IP addresses; the first is the common name), for
// development and tests.
func SelfSigned(hosts ...string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("balancer: SelfSigned: no hosts")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"carbonlb development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// WritePEM writes c's chain and key as PEM files (mode 0600 for the key),
// as ssl_certificate and ssl_certificate_key expect.
func WritePEM(c tls.Certificate, certFile, keyFile string) error {
	var cb bytes.Buffer
	for _, der := range c.Certificate {
		pem.Encode(&cb, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return fmt.Errorf("balancer: WritePEM: %w", err)
	}
	var kb bytes.Buffer
	pem.Encode(&kb, &pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(keyFile, kb.Bytes(), 0o600); err != nil {
		return fmt.Errorf("balancer: WritePEM: %w", err)
	}
	if err := os.WriteFile(certFile, cb.Bytes(), 0o644); err != nil {
		return fmt.Errorf("balancer: WritePEM: %w", err)
	}
	return nil
}
