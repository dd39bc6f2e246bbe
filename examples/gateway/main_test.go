package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-listen", "127.0.0.1:0", "-backends", "http://127.0.0.1:1,http://127.0.0.1:2", "-sticky", "learn"}, true},
		{[]string{"-backends", "127.0.0.1:1", "-sticky", "insert", "-policy", "p2c"}, true},
		{[]string{"-backends", "http://a", "-sticky", "off", "-tls-self-signed", "localhost"}, true},
		{[]string{"-sticky", "learn"}, false},
		{[]string{"-backends", "http://a", "-sticky", "sometimes"}, false},
		{[]string{"-backends", "http://a", "-policy", "random"}, false},
		{[]string{"-backends", "http://a", "-tls-cert", "a.crt"}, false},
		{[]string{"-backends", "http://a", "extra"}, false},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
}

func TestServeSticky(t *testing.T) {
	for _, tc := range []struct {
		sticky string
		tls    bool
	}{{"learn", false}, {"insert", true}} {
		t.Run(tc.sticky, func(t *testing.T) {
			backs := make([]string, 2)
			for i, name := range []string{"b1", "b2"} {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if _, err := r.Cookie("JSESSIONID"); err != nil {
						w.Header().Set("Set-Cookie", "JSESSIONID="+name+"; Path=/")
					}
					io.WriteString(w, name)
				}))
				defer srv.Close()
				backs[i] = srv.URL
			}
			args := []string{"-listen", "127.0.0.1:0", "-backends", strings.Join(backs, ","), "-sticky", tc.sticky}
			if tc.tls {
				args = append(args, "-tls-self-signed", "localhost,127.0.0.1")
			}
			o, err := parseFlags(args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			addr := make(chan string, 1)
			o.ready = func(a string) { addr <- a }
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
			var a string
			select {
			case a = <-addr:
			case err := <-done:
				t.Fatal(err)
			}
			scheme := "http://"
			tr := &http.Transport{}
			if tc.tls {
				scheme = "https://"
				tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the gateway's own self-signed certificate
			}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			resp, err := c.Get(scheme + a + "/")
			if err != nil {
				t.Fatal(err)
			}
			first, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var cookies []string
			for _, ck := range resp.Cookies() {
				cookies = append(cookies, ck.Name+"="+ck.Value)
			}
			for range 5 {
				req, _ := http.NewRequest("GET", scheme+a+"/", nil)
				req.Header.Set("Cookie", strings.Join(cookies, "; "))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(got) != string(first) {
					t.Fatalf("session moved from %s to %s", first, got)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
}
