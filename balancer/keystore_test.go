package balancer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pavlo-v-chernykh/keystore-go/v4"
	"software.sslmate.com/src/go-pkcs12"
)

// served returns the leaf a TLS client gets from store for serverName, over
// a real handshake on an in-memory pipe.
func served(t *testing.T, store *CertStore, serverName string) *x509.Certificate {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	go tls.Server(s, store.TLSConfig()).Handshake()
	cc := tls.Client(c, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err := cc.Handshake(); err != nil {
		t.Fatalf("handshake for %s: %v", serverName, err)
	}
	return cc.ConnectionState().PeerCertificates[0]
}

func testCert(t *testing.T, host string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

// TestKeystoreJKS serves the private-key entries of JKS keystores: one made
// by Java's keytool as Carbon's wso2carbon.jks is (two entries, RSA and
// EC), and one made here, which is then replaced and reloaded. A wrong
// password is an error naming the keystore.
func TestKeystoreJKS(t *testing.T) {
	store := &CertStore{CheckInterval: -1}
	if err := store.AddKeystore("testdata/keystores/wso2carbon.jks", "testdata/keystores/password"); err != nil {
		t.Fatal(err)
	}
	for host, cn := range map[string]string{"esb.example.com": "esb.example.com", "mgt.esb.example.com": "esb.example.com", "is.example.com": "is.example.com"} {
		if got := served(t, store, host).Subject.CommonName; got != cn {
			t.Errorf("%s: served %s, want %s", host, got, cn)
		}
	}

	if leaves := store.Leaves(); len(leaves) != 2 || leaves[0].NotAfter.Before(time.Now()) {
		t.Errorf("Leaves: %d certificates", len(leaves))
	}

	dir := t.TempDir()
	path, pwFile := filepath.Join(dir, "made.jks"), filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("changeit\n"), 0o600)
	write := func(host string) {
		key, cert := testCert(t, host)
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		ks := keystore.New()
		if err := ks.SetPrivateKeyEntry("k", keystore.PrivateKeyEntry{CreationTime: time.Now(), PrivateKey: der,
			CertificateChain: []keystore.Certificate{{Type: "X509", Content: cert.Raw}}}, []byte("changeit")); err != nil {
			t.Fatal(err)
		}
		f, _ := os.Create(path)
		if err := ks.Store(f, []byte("changeit")); err != nil {
			t.Fatal(err)
		}
		f.Close()
		later := time.Now().Add(time.Duration(len(host)) * time.Second)
		os.Chtimes(path, later, later)
	}
	write("a.example.com")
	s2 := &CertStore{CheckInterval: -1}
	if err := s2.AddKeystore(path, pwFile); err != nil {
		t.Fatal(err)
	}
	if got := served(t, s2, "a.example.com").Subject.CommonName; got != "a.example.com" {
		t.Errorf("made keystore: %s", got)
	}
	write("bb.example.com")
	if err := s2.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(t, s2, "bb.example.com").Subject.CommonName; got != "bb.example.com" {
		t.Errorf("after reload: %s", got)
	}
	os.WriteFile(pwFile, []byte("wrong"), 0o600)
	if err := (&CertStore{}).AddKeystore(path, pwFile); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("wrong password: %v", err)
	}
}

// TestKeystorePKCS12 serves a PKCS#12 keystore made by keytool and one made
// here with a chain.
func TestKeystorePKCS12(t *testing.T) {
	store := &CertStore{CheckInterval: -1}
	if err := store.AddKeystore("testdata/keystores/wso2carbon.p12", "testdata/keystores/password"); err != nil {
		t.Fatal(err)
	}
	if got := served(t, store, "esb.example.com").Subject.CommonName; got != "esb.example.com" {
		t.Errorf("keytool's PKCS#12: %s", got)
	}
	key, cert := testCert(t, "p12.example.com")
	_, ca := testCert(t, "ca.example.com")
	data, err := pkcs12.Modern2023.Encode(key, cert, []*x509.Certificate{ca}, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k.p12"), data, 0o600)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret"), 0o600)
	s2 := &CertStore{}
	if err := s2.AddKeystore(filepath.Join(dir, "k.p12"), filepath.Join(dir, "pw")); err != nil {
		t.Fatal(err)
	}
	if got := served(t, s2, "p12.example.com").Subject.CommonName; got != "p12.example.com" {
		t.Errorf("made PKCS#12: %s", got)
	}
	os.WriteFile(filepath.Join(dir, "k.p12"), []byte("not a keystore"), 0o600)
	if err := (&CertStore{}).AddKeystore(filepath.Join(dir, "k.p12"), filepath.Join(dir, "pw")); err == nil {
		t.Error("garbage accepted as a keystore")
	}
}

// FuzzKeystore: arbitrary bytes as a JKS or PKCS#12 keystore give an error
// or certificates whose keys match, never a panic. Seeded with keytool's
// files.
func FuzzKeystore(f *testing.F) {
	for _, name := range []string{"testdata/keystores/wso2carbon.jks", "testdata/keystores/wso2carbon.p12"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xfe, 0xed, 0xfe, 0xed}) // the JKS magic alone
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, read := range []func([]byte, []byte) ([]*tls.Certificate, error){jksCertificates, pkcs12Certificates} {
			certs, err := read(data, []byte("wso2carbon"))
			if err != nil {
				continue
			}
			for _, c := range certs {
				if c.Leaf == nil || len(c.Certificate) == 0 || c.PrivateKey == nil {
					t.Errorf("incomplete certificate %+v", c)
				}
			}
		}
	})
}

// TestKeystoreIterationCheck: a PKCS#12 file is checked before it is
// decoded, as a keystore to serve and as a truststore: keytool's file with
// its MAC's iteration count made negative is refused by the check, naming
// the file, not by the decoder.
func TestKeystoreIterationCheck(t *testing.T) {
	b, err := os.ReadFile("testdata/keystores/wso2carbon.p12")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(b, []byte{0x02, 0x02, 0x27, 0x10}) // the MAC's INTEGER 10000, at the end
	if i < 0 {
		t.Fatal("no iteration count 10000 in keytool's file")
	}
	b[i+2], b[i+3] = 0xff, 0xff // -1
	path := filepath.Join(t.TempDir(), "bad.p12")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	const pw = "testdata/keystores/password"
	var certs CertStore
	err = certs.AddKeystore(path, pw)
	if err == nil || !strings.Contains(err.Error(), "iteration count") || !strings.Contains(err.Error(), path) {
		t.Errorf("keystore: %v", err)
	}
	var trust TrustStore
	err = trust.Add(path, pw)
	if err == nil || !strings.Contains(err.Error(), "iteration count") || !strings.Contains(err.Error(), path) {
		t.Errorf("truststore: %v", err)
	}
}

// TestKeystoreOpenSSL: PKCS#12 files written by OpenSSL — its current
// encryption and the legacy one of OpenSSL 1.1 and Windows — are served as
// keystores and trusted as truststores (their key entry's certificate);
// OpenSSL's certificates-only export, whose certificates Java would not
// trust, is refused with an error that says what to give instead.
func TestKeystoreOpenSSL(t *testing.T) {
	const pw = "testdata/keystores/password"
	for _, name := range []string{"openssl.p12", "openssl-legacy.p12"} {
		path := "testdata/keystores/" + name
		store := &CertStore{CheckInterval: -1}
		if err := store.AddKeystore(path, pw); err != nil {
			t.Errorf("%s as a keystore: %v", name, err)
			continue
		}
		if got := served(t, store, "esb.example.com").Subject.CommonName; got != "esb.example.com" {
			t.Errorf("%s: served %s", name, got)
		}
		var trust TrustStore
		if err := trust.Add(path, pw); err != nil {
			t.Errorf("%s as a truststore: %v", name, err)
		} else if c := trust.Certificates(); len(c) != 1 || !c[0].Equal(store.Leaves()[0]) {
			t.Errorf("%s: trusted %v", name, subjects(c))
		}
	}
	var trust TrustStore
	err := trust.Add("testdata/keystores/openssl-nokeys.p12", pw)
	if err == nil || !strings.Contains(err.Error(), "PEM file") || !strings.Contains(err.Error(), "openssl-nokeys.p12") {
		t.Errorf("certificates-only PKCS#12: %v", err)
	}
}
