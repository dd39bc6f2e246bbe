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
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testCA is a certificate authority for tests.
type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

var testSerial atomic.Int64

func newTestCA(t *testing.T, name string, parent *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(testSerial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{key: key, cert: cert}
}

// leaf issues a server certificate for host (a DNS name only: no
// address), valid from notBefore to notAfter for usages, with the chain
// up to but not including the root.
func (ca *testCA) leaf(t *testing.T, host string, notAfter time.Time, usage x509.ExtKeyUsage, chain ...*testCA) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(testSerial.Add(1)), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	for _, i := range chain {
		c.Certificate = append(c.Certificate, i.cert.Raw)
	}
	return c
}

func (ca *testCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// subjects returns the common names of certs.
func subjects(certs []*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, c.Subject.CommonName)
	}
	return out
}

// TestTrustStoreFiles reads the trust files an operator has: a PEM bundle
// with text and a key block between certificates, keytool's JKS and
// PKCS#12 truststores (trusted-certificate entries), and keytool's
// keystores (their private-key entries' certificates, as Java trusts
// them).
func TestTrustStoreFiles(t *testing.T) {
	a, b := newTestCA(t, "CA one", nil), newTestCA(t, "CA two", nil)
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not read")})
	bundle := writeFile(t, "ca.pem", bytes.Join([][]byte{[]byte("# CA one\n"), a.pem(), key, []byte("# CA two\n"), b.pem()}, nil))
	const pw = "testdata/keystores/password"
	for _, tc := range []struct {
		path, pw string
		want     []string
	}{
		{bundle, "", []string{"CA one", "CA two"}},
		{"testdata/keystores/client-truststore.jks", pw, []string{"is.example.com", "esb.example.com"}},
		{"testdata/keystores/client-truststore.p12", pw, []string{"is.example.com", "esb.example.com"}},
		{"testdata/keystores/wso2carbon.jks", pw, []string{"is.example.com", "esb.example.com"}},
		{"testdata/keystores/wso2carbon.p12", pw, []string{"esb.example.com"}},
	} {
		var s TrustStore
		if err := s.Add(tc.path, tc.pw); err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		got := subjects(s.Certificates())
		if tc.path == "testdata/keystores/client-truststore.p12" {
			// PKCS#12 keeps its bags in the order keytool wrote them.
			slices.Sort(got)
			tc.want = slices.Sorted(slices.Values(tc.want))
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.path, diff)
		}
	}
}

// TestTrustStoreRefusals: each bad trust file is an error naming the file
// and what is wrong, and leaves the store as it was.
func TestTrustStoreRefusals(t *testing.T) {
	a := newTestCA(t, "CA one", nil)
	good := writeFile(t, "good.pem", a.pem())
	jks, err := os.ReadFile("testdata/keystores/client-truststore.jks")
	if err != nil {
		t.Fatal(err)
	}
	badCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")})
	wrongPW := writeFile(t, "wrong", []byte("not-the-password\n"))
	const pw = "testdata/keystores/password"
	for _, tc := range []struct {
		name, path, pw, want string
	}{
		{"empty file", writeFile(t, "empty.pem", nil), "", "no PEM certificate"},
		{"only a key", writeFile(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})), "", "no PEM certificate"},
		{"bad certificate on line 4", writeFile(t, "bad.pem", append(append(a.pem()[:0:0], "# one\n# two\n\n"...), badCert...)), "", "line 4: x509"},
		{"bad second certificate", writeFile(t, "bad2.pem", append(a.pem(), badCert...)), "", "line "},
		{"JKS without a password file", writeFile(t, "t.jks", jks), "", "needs its password file"},
		{"JKS, wrong password", writeFile(t, "t.jks", jks), wrongPW, "client-truststore"[:0] + "t.jks"},
		{"PKCS#12, wrong password", "testdata/keystores/client-truststore.p12", wrongPW, "password"},
		{"truncated JKS", writeFile(t, "cut.jks", jks[:len(jks)/2]), pw, "JKS"},
		{"not a keystore", writeFile(t, "x.p12", []byte("hello")), pw, "PKCS#12"},
		{"no such file", filepath.Join(t.TempDir(), "none.pem"), "", "no such file"},
		{"no password file", "testdata/keystores/client-truststore.jks", filepath.Join(t.TempDir(), "none"), "password"},
		{"too large", writeFile(t, "big.pem", bytes.Repeat([]byte("#"), maxTrustFile+1)), "", "larger than"},
	} {
		var s TrustStore
		if err := s.Add(good, ""); err != nil {
			t.Fatal(err)
		}
		err := s.Add(tc.path, tc.pw)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "balancer: trusted certificates") {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
		if got := subjects(s.Certificates()); len(got) != 1 || got[0] != "CA one" {
			t.Errorf("%s: store holds %v after the refusal", tc.name, got)
		}
	}
}

// tlsBackend is an https backend on loopback that counts the requests it
// answers and records the server name of each handshake.
type tlsBackend struct {
	*httptest.Server
	requests atomic.Int64
	sni      atomic.Value // string
}

func newTLSBackend(t *testing.T, cert tls.Certificate) *tlsBackend {
	t.Helper()
	b := &tlsBackend{}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.requests.Add(1)
		io.WriteString(w, "ok\n")
	}))
	b.Server.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		b.sni.Store(h.ServerName)
		return nil, nil
	}}
	b.Server.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes
	b.StartTLS()
	t.Cleanup(b.Close)
	return b
}

// TestTrustStoreBackends sends requests through a balancer to https
// backends on 127.0.0.1 whose certificates name a host and no address,
// issued by an intermediate of a private CA: the store's configuration
// verifies the chain (and, given a server name, that name, sent as SNI)
// and refuses every certificate that does not verify, before any request
// byte is sent.
func TestTrustStoreBackends(t *testing.T) {
	root := newTestCA(t, "root", nil)
	inter := newTestCA(t, "intermediate", root)
	other := newTestCA(t, "another root", nil)
	later := time.Now().Add(time.Hour)
	rootFile := writeFile(t, "root.pem", root.pem())

	good := newTLSBackend(t, inter.leaf(t, "backend.internal", later, x509.ExtKeyUsageServerAuth, inter))
	for _, tc := range []struct {
		name       string
		backend    *tlsBackend
		trust      string // the PEM file trusted; empty: no TrustStore (system roots)
		serverName string
		ok         bool
	}{
		{"system roots", good, "", "", false},
		{"chain only", good, rootFile, "", true},
		{"chain and name", good, rootFile, "backend.internal", true},
		{"wrong name", good, rootFile, "other.internal", false},
		{"another CA", good, writeFile(t, "other.pem", other.pem()), "", false},
		{"intermediate not sent", newTLSBackend(t, inter.leaf(t, "backend.internal", later, x509.ExtKeyUsageServerAuth)), rootFile, "", false},
		{"expired", newTLSBackend(t, inter.leaf(t, "backend.internal", time.Now().Add(-time.Hour), x509.ExtKeyUsageServerAuth, inter)), rootFile, "", false},
		{"client certificate only", newTLSBackend(t, inter.leaf(t, "backend.internal", later, x509.ExtKeyUsageClientAuth, inter)), rootFile, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(StickyOff)
			if tc.trust != "" {
				s := &TrustStore{CheckInterval: -1}
				if err := s.Add(tc.trust, ""); err != nil {
					t.Fatal(err)
				}
				cfg.TLSClientConfig = s.ClientConfig(tc.serverName)
			}
			lb := mustNew(t, cfg)
			lb.SetBackends("p", []Backend{{ID: "tls", URL: tc.backend.URL}})
			front, c := newFront(t, lb)
			before := tc.backend.requests.Load()
			code, _, _, body := get(t, c, front.URL+"/", "")
			if tc.ok {
				if code != 200 || body != "ok\n" {
					t.Fatalf("status %d body %q, want 200 ok", code, body)
				}
				if sni, _ := tc.backend.sni.Load().(string); sni != tc.serverName {
					t.Errorf("backend saw server name %q, want %q", sni, tc.serverName)
				}
				return
			}
			if code != http.StatusBadGateway {
				t.Errorf("status %d, want 502", code)
			}
			if n := tc.backend.requests.Load() - before; n != 0 {
				t.Errorf("the backend answered %d requests over an unverified connection", n)
			}
			if bs := backendStatus(lb, "tls"); !strings.Contains(bs.LastError, "certificate") {
				t.Errorf("last error %q, want a certificate error", bs.LastError)
			}
		})
	}
}

// TestTrustStoreReload: a trust file replaced on disk is trusted from the
// next handshake, on Reload or by itself after CheckInterval; a
// replacement that does not load keeps the certificates before it.
func TestTrustStoreReload(t *testing.T) {
	oldCA, newCA := newTestCA(t, "old", nil), newTestCA(t, "new", nil)
	backend := newTLSBackend(t, newCA.leaf(t, "backend.internal", time.Now().Add(time.Hour), x509.ExtKeyUsageServerAuth))
	path := writeFile(t, "ca.pem", oldCA.pem())

	for _, auto := range []bool{false, true} {
		if err := os.WriteFile(path, oldCA.pem(), 0o644); err != nil {
			t.Fatal(err)
		}
		s := &TrustStore{CheckInterval: -1}
		if auto {
			s.CheckInterval = time.Nanosecond // every handshake looks
		}
		if err := s.Add(path, ""); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(StickyOff)
		cfg.TLSClientConfig = s.ClientConfig("backend.internal")
		cfg.Services[0].Health.MaxFails = -1 // the refused handshake does not mark the backend down
		lb := mustNew(t, cfg)
		lb.SetBackends("p", []Backend{{ID: "tls", URL: backend.URL}})
		front, c := newFront(t, lb)
		expect := func(step string, want int) {
			t.Helper()
			if code, _, _, _ := get(t, c, front.URL+"/", ""); code != want {
				t.Errorf("auto=%v, %s: status %d, want %d", auto, step, code, want)
			}
		}
		expect("old CA trusted", http.StatusBadGateway)

		if err := os.WriteFile(path, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("auto=%v: reloading a broken file: %v, want an error naming it", auto, err)
		}
		if got := subjects(s.Certificates()); len(got) != 1 || got[0] != "old" {
			t.Errorf("auto=%v: after a failed reload the store holds %v, want [old]", auto, got)
		}

		if err := os.WriteFile(path, append(newCA.pem(), oldCA.pem()...), 0o644); err != nil {
			t.Fatal(err)
		}
		if !auto {
			if err := s.Reload(); err != nil {
				t.Fatal(err)
			}
		}
		expect("new CA trusted", http.StatusOK)
		if got := subjects(s.Certificates()); len(got) != 2 || got[0] != "new" {
			t.Errorf("auto=%v: store holds %v, want [new old]", auto, got)
		}
	}
}

// FuzzTrustFile: arbitrary bytes as a PEM file, a JKS or a PKCS#12
// truststore give an error or certificates, never a panic. Seeded with
// keytool's files and a PEM bundle.
func FuzzTrustFile(f *testing.F) {
	for _, name := range []string{"testdata/keystores/client-truststore.jks", "testdata/keystores/client-truststore.p12", "testdata/keystores/wso2carbon.jks"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("# bundle\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := pemCertificates(data)
		if err == nil && len(certs) == 0 {
			t.Error("PEM: no error and no certificate")
		}
		for _, read := range []func([]byte, []byte) ([]*x509.Certificate, error){jksTrusted, pkcs12Trusted} {
			certs, err := read(data, []byte("wso2carbon"))
			if err != nil {
				continue
			}
			for _, c := range certs {
				if c == nil || len(c.Raw) == 0 {
					t.Errorf("incomplete certificate %v", c)
				}
			}
		}
	})
}

// TestReloadAllOrNothing: both stores reload as a whole. With one file
// replaced by a good one and another by a broken one, Reload fails naming
// the broken one and neither changes; PrepareReload reads the files and
// applies nothing until its commit.
func TestReloadAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	writeCert := func(host string) *x509.Certificate {
		c, err := SelfSigned(host)
		if err != nil {
			t.Fatal(err)
		}
		if err := WritePEM(c, filepath.Join(dir, host+".crt"), filepath.Join(dir, host+".key")); err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	a0, b0 := writeCert("a.example"), writeCert("b.example")
	certs := &CertStore{CheckInterval: -1}
	trust := &TrustStore{CheckInterval: -1}
	for _, h := range []string{"a.example", "b.example"} {
		if err := certs.AddFiles(filepath.Join(dir, h+".crt"), filepath.Join(dir, h+".key")); err != nil {
			t.Fatal(err)
		}
		if err := trust.Add(filepath.Join(dir, h+".crt"), ""); err != nil {
			t.Fatal(err)
		}
	}
	holds := func(step string, want ...*x509.Certificate) {
		t.Helper()
		served, trusted := certs.Leaves(), trust.Certificates()
		for i, w := range want {
			if !served[i].Equal(w) || !trusted[i].Equal(w) {
				t.Errorf("%s: file %d: served %v, trusted %v, want serial %v", step, i, served[i].SerialNumber, trusted[i].SerialNumber, w.SerialNumber)
			}
		}
	}

	writeCert("a.example") // a good replacement...
	broken := filepath.Join(dir, "b.example.crt")
	if err := os.WriteFile(broken, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o644); err != nil { // ...and a broken one
		t.Fatal(err)
	}
	for name, reload := range map[string]func() error{"certificates": certs.Reload, "trust": trust.Reload} {
		if err := reload(); err == nil || !strings.Contains(err.Error(), "b.example") {
			t.Errorf("%s: reload with a broken file: %v", name, err)
		}
	}
	holds("after the failed reloads", a0, b0)

	a1, b1 := writeCert("a.example"), writeCert("b.example")
	commitCerts, err := certs.PrepareReload()
	if err != nil {
		t.Fatal(err)
	}
	commitTrust, err := trust.PrepareReload()
	if err != nil {
		t.Fatal(err)
	}
	holds("prepared, not committed", a0, b0)
	commitCerts()
	commitTrust()
	holds("committed", a1, b1)
}
