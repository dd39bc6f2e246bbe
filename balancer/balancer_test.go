package balancer

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// carbonNode is a fake Carbon/Tomcat node: it issues a JSESSIONID to a
// request without one, remembers it, and names itself in X-Backend.
type carbonNode struct {
	name     string
	srv      *httptest.Server
	requests atomic.Int64
	foreign  atomic.Int64 // requests with a session this node never issued
	mu       sync.Mutex   // protects issued, lastHeader, lastBody
	issued   map[string]bool
	lastHdr  http.Header
	lastBody string
}

func newCarbonNode(t testing.TB, name string) *carbonNode {
	t.Helper()
	n := &carbonNode{name: name, issued: map[string]bool{}}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *carbonNode) serve(w http.ResponseWriter, r *http.Request) {
	n.requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Backend", n.name)
	n.mu.Lock()
	n.lastHdr = r.Header.Clone()
	n.lastHdr.Set("Host", r.Host)
	n.lastBody = string(body)
	sid := ""
	if c, err := r.Cookie("JSESSIONID"); err == nil {
		sid = c.Value
	}
	if sid == "" {
		if i := strings.Index(r.URL.Path, ";jsessionid="); i >= 0 {
			sid = r.URL.Path[i+len(";jsessionid="):]
		}
	}
	if sid != "" && !n.issued[sid] {
		n.foreign.Add(1)
	}
	if sid == "" {
		b := make([]byte, 16)
		rand.Read(b)
		sid = strings.ToUpper(hex.EncodeToString(b))
		n.issued[sid] = true
		w.Header().Add("Set-Cookie", "JSESSIONID="+sid+"; Path=/; HttpOnly")
	}
	n.mu.Unlock()
	io.WriteString(w, n.name+"\n")
}

func (n *carbonNode) header() http.Header {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastHdr
}

func (n *carbonNode) backend() Backend { return Backend{ID: n.name, URL: n.srv.URL} }

// quietLogger drops everything below Error.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

// testConfig is one default service on pool "p" with the given sticky mode.
func testConfig(mode StickyMode) Config {
	cfg := DefaultConfig()
	cfg.Services[0].Pool = "p"
	cfg.Services[0].Sticky.Mode = mode
	cfg.Logger = quietLogger()
	return cfg
}

// newFront starts lb behind a front server (startFront) and returns it
// and a keep-alive client that does not follow redirects or keep cookies.
func newFront(t testing.TB, lb http.Handler) (*httptest.Server, *http.Client) {
	t.Helper()
	front := startFront(t, lb)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 20 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return front, c
}

func mustNew(t testing.TB, cfg Config) *Balancer {
	t.Helper()
	lb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lb.Close() })
	return lb
}

// get sends a GET with optional cookies and returns status, X-Backend,
// the Set-Cookie lines and the body.
func get(t testing.TB, c *http.Client, url, host string, cookies ...string) (int, string, []string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if len(cookies) > 0 {
		req.Header.Set("Cookie", strings.Join(cookies, "; "))
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend"), resp.Header.Values("Set-Cookie"), string(b)
}

// cookiePair returns "NAME=value" of the Set-Cookie line for name.
func cookiePair(lines []string, name string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, name+"=") {
			if i := strings.IndexByte(l, ';'); i >= 0 {
				return l[:i]
			}
			return l
		}
	}
	return ""
}

// deadURL returns the URL of a loopback port nothing listens on.
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}
