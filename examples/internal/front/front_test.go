package front

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/carbonlb/carbonlb/balancer"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestHealthAndStatus(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend") }))
	defer backend.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Start(t.Context(), Config{Balancer: balancer.DefaultConfig(), Listener: ln, StatusPath: "/lb-status",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + f.Addr().String()
	if code, body := get(t, url+"/healthz"); code != 503 || !strings.Contains(body, "no healthy backend") {
		t.Errorf("before backends: %d %q, want 503", code, body)
	}
	if err := f.Balancer().SetBackends("default", []balancer.Backend{{ID: "b", URL: backend.URL}}); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, url+"/healthz"); code != 200 || body != "ok" {
		t.Errorf("serving: %d %q, want 200 ok", code, body)
	}
	if code, body := get(t, url+"/"); code != 200 || body != "backend" {
		t.Errorf("proxied: %d %q", code, body)
	}
	if code, body := get(t, url+"/lb-status"); code != 200 || !strings.Contains(body, `"services"`) {
		t.Errorf("status: %d %q", code, body)
	}
	f.Drain()
	if code, body := get(t, url+"/healthz"); code != 503 || body != "draining" {
		t.Errorf("draining: %d %q, want 503 draining", code, body)
	}
	if code, _ := get(t, url+"/"); code != 200 {
		t.Errorf("a draining instance still serves: got %d", code)
	}
	if err := f.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close after Shutdown: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	tl, _ := net.Listen("tcp", "127.0.0.1:0")
	if _, err := Start(t.Context(), Config{Balancer: balancer.DefaultConfig(), Listener: ln, TLSListener: tl}); err == nil {
		t.Error("TLS listener without a TLS config: no error")
	}
	ln, _ = net.Listen("tcp", "127.0.0.1:0")
	if _, err := Start(t.Context(), Config{Balancer: balancer.Config{Services: []balancer.Service{{Name: "no-pool"}}}, Listener: ln, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Error("a service without a pool: no error")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener was left open after a failed Start")
	}
}
