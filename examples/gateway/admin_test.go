package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/carbonlb/carbonlb/examples/internal/leakcheck"
	"github.com/google/go-cmp/cmp"
)

// TestAdminDrain drains a backend over the admin API of a running gateway:
// its sessions stay on it and new sessions go elsewhere; undrain gives it
// new sessions again. The admin interface requires its token.
func TestAdminDrain(t *testing.T) {
	leakcheck.Check(t)
	var next atomic.Int64
	backs := make([]string, 2)
	for i, name := range []string{"b1", "b2"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := r.Cookie("JSESSIONID"); err != nil {
				w.Header().Set("Set-Cookie", "JSESSIONID="+name+"-"+strings.Repeat("x", int(next.Add(1)))+"; Path=/")
			}
			io.WriteString(w, name)
		}))
		defer srv.Close()
		backs[i] = srv.URL
	}
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-listen", "127.0.0.1:0", "-backends", strings.Join(backs, ","), "-sticky", "learn",
		"-admin", "127.0.0.1:0", "-admin-token-file", tokenFile}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	addr, adminAddr := make(chan string, 1), make(chan string, 1)
	o.ready = func(a string) { addr <- a }
	o.adminReady = func(a string) { adminAddr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	var gw, adm string
	for gw == "" || adm == "" {
		select {
		case gw = <-addr:
		case adm = <-adminAddr:
		case err := <-done:
			t.Fatal(err)
		}
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}

	// request sends a GET with cookie (none when "") and returns the
	// backend that answered and the session cookie it set.
	request := func(cookie string) (string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+gw+"/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		set := ""
		for _, ck := range resp.Cookies() {
			set = ck.Name + "=" + ck.Value
		}
		return string(b), set
	}
	post := func(path string, form url.Values, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+adm+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const token = "0123456789abcdef0123"
	b1 := url.Values{"pool": {"default"}, "backend": {"b1"}}

	// One session on each backend.
	sessions := map[string]string{}
	for len(sessions) < 2 {
		be, cookie := request("")
		if cookie == "" {
			t.Fatalf("%s set no session cookie", be)
		}
		sessions[be] = cookie
	}

	if code, _ := post("/backends/drain", b1, ""); code != http.StatusUnauthorized {
		t.Fatalf("drain without the token: %d, want 401", code)
	}
	if code, body := post("/backends/drain", b1, token); code != 200 || !strings.Contains(body, "draining") {
		t.Fatalf("drain: %d %q", code, body)
	}
	if code, _ := post("/backends/drain", url.Values{"pool": {"default"}, "backend": {"b9"}}, token); code != http.StatusNotFound {
		t.Errorf("drain of an unknown backend: %d, want 404", code)
	}
	var got []string
	for range 3 {
		be, _ := request(sessions["b1"])
		got = append(got, be)
	}
	for range 4 {
		be, _ := request("")
		got = append(got, be)
	}
	if diff := cmp.Diff([]string{"b1", "b1", "b1", "b2", "b2", "b2", "b2"}, got); diff != "" {
		t.Errorf("while b1 drains: its session stays, new ones go to b2 (-want +got):\n%s", diff)
	}

	if code, body := post("/backends/undrain", b1, token); code != 200 || !strings.Contains(body, "up") {
		t.Fatalf("undrain: %d %q", code, body)
	}
	seen := map[string]bool{}
	for range 4 {
		be, _ := request("")
		seen[be] = true
	}
	if !seen["b1"] {
		t.Errorf("after undrain no new session went to b1: %v", seen)
	}

	if code, body := post("/backends/weight", url.Values{"pool": {"default"}, "backend": {"b2"}, "weight": {"5"}}, token); code != 200 || !strings.Contains(body, "weight 5") {
		t.Errorf("weight: %d %q", code, body)
	}
	req, _ := http.NewRequest("GET", "http://"+adm+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `carbonlb_backend_weight{backend="b2",pool="default"} 5`) {
		t.Errorf("/metrics lacks b2's weight:\n%s", metrics)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

func TestAdminAddress(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the admin address, or "error"
	}{
		{[]string{"-admin", ":9090"}, "127.0.0.1:9090"},
		{[]string{"-admin", "localhost:9090"}, "localhost:9090"},
		{[]string{"-admin", "[::1]:9090"}, "[::1]:9090"},
		{[]string{"-admin", "0.0.0.0:9090"}, "error"},
		{[]string{"-admin", "10.0.0.5:9090", "-admin-token-file", "t"}, "10.0.0.5:9090"},
		{[]string{"-admin-token-file", "t"}, "error"},
		{[]string{"-admin", "admin.example.com:9090", "-admin-token-file", "t"}, "error"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o, err := parseFlags(append([]string{"-backends", "http://a"}, tc.args...), io.Discard)
			got := o.admin
			if err != nil {
				got = "error"
			}
			if got != tc.want {
				t.Errorf("admin address %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}
