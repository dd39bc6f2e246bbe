package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestServeKeystore: -tls-keystore serves the keys of a Java keystore (the
// JKS made by keytool as Carbon's wso2carbon.jks is) by SNI, its password
// read from -tls-keystore-password-file.
func TestServeKeystore(t *testing.T) {
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer back.Close()
	const ks = "../../balancer/testdata/keystores/"
	o, err := parseFlags([]string{"-listen", "127.0.0.1:0", "-backends", back.URL,
		"-tls-keystore", ks + "wso2carbon.jks", "-tls-keystore-password-file", ks + "password"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	o.ready = func(a string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, o, slog.New(slog.DiscardHandler)) }()
	var a string
	select {
	case a = <-addr:
	case err := <-done:
		t.Fatal(err)
	}
	for _, name := range []string{"esb.example.com", "is.example.com"} {
		c, err := tls.Dial("tcp", a, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != name {
			t.Errorf("SNI %s: certificate %s", name, cn)
		}
		c.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	if _, err := parseFlags([]string{"-backends", back.URL, "-tls-keystore", ks + "wso2carbon.jks"}, io.Discard); err == nil {
		t.Error("a keystore without its password file was accepted")
	}
}
