package main

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/tomcat"
)

// keystores are the Java keystores made by keytool for the tests: Carbon's
// wso2carbon.jks (key entries wso2carbon, esb.example.com and
// mgt.esb.example.com, and other, is.example.com) and a client truststore
// holding their certificates.
const keystores = "../../balancer/testdata/keystores/"

// certPEM writes the certificate of the client truststore whose common
// name is cn to a PEM file and returns its path.
func certPEM(t *testing.T, cn string) string {
	t.Helper()
	var ts balancer.TrustStore
	if err := ts.Add(keystores+"client-truststore.jks", keystores+"password"); err != nil {
		t.Fatal(err)
	}
	for _, c := range ts.Certificates() {
		if c.Subject.CommonName == cn {
			path := filepath.Join(t.TempDir(), cn+".pem")
			if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	t.Fatalf("no certificate for %s in the truststore", cn)
	return ""
}

// TestTomcatHTTPSBackend: a real Tomcat 10 serves HTTPS with Carbon's
// keystore, as catalina-server.xml's 9443 connector does, on 127.0.0.1 —
// an address its certificate (esb.example.com) does not name. The gateway
// reaches it, sticky, when it trusts the certificate (from the client
// truststore, or a PEM file), verifying the chain alone or the name given
// by -backend-server-name; with the system's roots, a wrong name or only
// another certificate trusted, every request gets 502 and Tomcat logs none.
func TestTomcatHTTPSBackend(t *testing.T) {
	tomcat.Require(t)
	ctx := context.Background()
	in := tomcat.New(t, "node-a")
	httpsURL, err := in.AddHTTPS(keystores+"wso2carbon.jks", "wso2carbon", "wso2carbon")
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	truststore := []string{"-backend-truststore", keystores + "client-truststore.jks", "-backend-truststore-password-file", keystores + "password"}
	for _, tc := range []struct {
		name  string
		flags []string
		ok    bool
	}{
		{"truststore and name", append(truststore, "-backend-server-name", "esb.example.com"), true},
		{"truststore, chain only", truststore, true},
		{"PEM file and the other name", []string{"-backend-ca", certPEM(t, "esb.example.com"), "-backend-server-name", "mgt.esb.example.com"}, true},
		{"system roots", nil, false},
		{"wrong name", append(truststore, "-backend-server-name", "is.example.com"), false},
		{"another certificate only", []string{"-backend-ca", certPEM(t, "is.example.com")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startTomcatGateway(t, "127.0.0.1:0", httpsURL, tc.flags...)
			client, tr := tomcatClient()
			defer tr.CloseIdleConnections()
			before := strings.Count(in.AccessLogTail(1000), "\n")
			if !tc.ok {
				resp, err := client.Get(g.url + tomcat.Path)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadGateway {
					t.Errorf("status %d, want 502", resp.StatusCode)
				}
				if after := strings.Count(in.AccessLogTail(1000), "\n"); after != before {
					t.Errorf("Tomcat logged %d requests over an unverified connection", after-before)
				}
				return
			}
			u := &tomcat.Session{Client: client, URL: g.url}
			for want := 1; want <= 3; want++ {
				p, err := u.Get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if p.Node != "node-a" || p.Count != want {
					t.Fatalf("request %d: node %q count %d, want node-a and %d", want, p.Node, p.Count, want)
				}
			}
		})
	}
}
