package balancer

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

// resetServer answers nothing: after reading the request head (and, with
// readBody, the whole body) it resets the connection.
func resetServer(t *testing.T, readBody bool, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if readBody {
			io.Copy(io.Discard, r.Body)
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST instead of FIN
		}
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend")
}

func TestRetryRules(t *testing.T) {
	t.Run("refused POST is retried", func(t *testing.T) {
		good := newCarbonNode(t, "good")
		cfg := testConfig(StickyOff)
		cfg.Services[0].Health.MaxFails = -1 // keep trying the dead one
		lb := mustNew(t, cfg)
		lb.SetBackends("p", []Backend{{ID: "dead", URL: deadURL(t)}, good.backend()})
		front, c := newFront(t, lb)
		for i := range 6 {
			code, be := post(t, c, front.URL+"/submit", fmt.Sprintf("payload %d", i))
			if code != 200 || be != "good" {
				t.Fatalf("POST %d: status %d from %q, want 200 from good", i, code, be)
			}
			good.mu.Lock()
			body := good.lastBody
			good.mu.Unlock()
			if body != fmt.Sprintf("payload %d", i) {
				t.Fatalf("POST %d: backend got body %q", i, body)
			}
		}
		st := lb.Status()
		if st.Services[0].Retries < 3 {
			t.Errorf("retries = %d, want >= 3 (every other POST went to the dead backend first)", st.Services[0].Retries)
		}
	})
	t.Run("idempotent GET is retried after a reset", func(t *testing.T) {
		var hits atomic.Int64
		rst := resetServer(t, false, &hits)
		good := newCarbonNode(t, "good")
		cfg := testConfig(StickyOff)
		cfg.Services[0].Health.MaxFails = -1
		lb := mustNew(t, cfg)
		lb.SetBackends("p", []Backend{{ID: "reset", URL: rst.URL}, good.backend()})
		front, c := newFront(t, lb)
		for i := range 6 {
			code, be, _, _ := get(t, c, front.URL+"/", "")
			if code != 200 || be != "good" {
				t.Fatalf("GET %d: status %d from %q, want 200 from good", i, code, be)
			}
		}
		if hits.Load() == 0 {
			t.Errorf("the resetting backend was never tried")
		}
	})
	t.Run("POST with a consumed body is not replayed", func(t *testing.T) {
		var hits atomic.Int64
		eater := resetServer(t, true, &hits)
		good := newCarbonNode(t, "good")
		cfg := testConfig(StickyOff)
		cfg.Services[0].Health.MaxFails = -1
		lb := mustNew(t, cfg)
		// Smooth round robin with equal weights starts with the first.
		lb.SetBackends("p", []Backend{{ID: "eater", URL: eater.URL}, good.backend()})
		front, c := newFront(t, lb)
		code, _ := post(t, c, front.URL+"/order", strings.Repeat("x", 64<<10))
		if code != http.StatusBadGateway {
			t.Errorf("status %d, want 502", code)
		}
		if hits.Load() != 1 || good.requests.Load() != 0 {
			t.Errorf("eater saw %d, good saw %d requests; want 1 and 0 (no replay)", hits.Load(), good.requests.Load())
		}
	})
	t.Run("nothing can serve", func(t *testing.T) {
		cfg := testConfig(StickyOff)
		lb := mustNew(t, cfg)
		front, c := newFront(t, lb)
		if code, _, _, body := get(t, c, front.URL+"/", ""); code != 503 || body == "" {
			t.Errorf("empty pool: %d %q, want 503 with a body", code, body)
		}
		lb.SetBackends("p", []Backend{{ID: "d1", URL: deadURL(t)}, {ID: "d2", URL: deadURL(t)}})
		if code, _, _, _ := get(t, c, front.URL+"/", ""); code != 502 {
			t.Errorf("all refused: %d, want 502", code)
		}
		// Both are now down (passive): fail-closed answers 503.
		if code, _, _, _ := get(t, c, front.URL+"/", ""); code != 503 {
			t.Errorf("all down: %d, want 503", code)
		}
	})
}

// TestForwardedHeaders checks Host, X-Forwarded-*, Forwarded, hop-by-hop
// removal, and that a spoofed X-Forwarded-For or Forwarded from an
// untrusted client is replaced or removed, while a trusted proxy's is
// extended or passed on.
func TestForwardedHeaders(t *testing.T) {
	n := newCarbonNode(t, "n1")
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tc := range []struct {
		name      string
		trusted   []netip.Prefix
		forwarded bool // Config.Forwarded
		wantXFF   string
		wantFwd   string
	}{
		{"untrusted client", nil, true, "127.0.0.1", `for=127.0.0.1;host=app.example.com;proto=http`},
		{"trusted proxy", loopback, true, "6.6.6.6, 127.0.0.1",
			`for=6.6.6.6, for=127.0.0.1;host=app.example.com;proto=http`},
		{"untrusted client, no Forwarded added", nil, false, "127.0.0.1", ""},
		{"trusted proxy, no Forwarded added", loopback, false, "6.6.6.6, 127.0.0.1", "for=6.6.6.6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(StickyOff)
			cfg.TrustedProxies = tc.trusted
			cfg.Forwarded = tc.forwarded
			cfg.Name = "lb01"
			lb := mustNew(t, cfg)
			lb.SetBackends("p", []Backend{n.backend()})
			front, c := newFront(t, lb)
			req, _ := http.NewRequest("GET", front.URL+"/", nil)
			req.Host = "app.example.com"
			req.Header.Set("X-Forwarded-For", "6.6.6.6")
			req.Header.Set("Forwarded", "for=6.6.6.6")
			req.Header.Set("Connection", "X-Secret")
			req.Header.Set("X-Secret", "hop")
			req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := n.header()
			for k, want := range map[string]string{
				"Host":                "app.example.com",
				"X-Forwarded-For":     tc.wantXFF,
				"X-Forwarded-Host":    "app.example.com",
				"X-Forwarded-Server":  "lb01",
				"X-Forwarded-Proto":   "http",
				"Forwarded":           tc.wantFwd,
				"X-Secret":            "",
				"Proxy-Authorization": "",
				"User-Agent":          "Go-http-client/1.1",
			} {
				if got := strings.Join(h.Values(k), ", "); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestAllowList(t *testing.T) {
	n := newCarbonNode(t, "mgr")
	for _, tc := range []struct {
		name    string
		allow   string
		trusted bool
		xff     string
		fwd     string // RFC 7239 Forwarded
		want    int
	}{
		{"loopback allowed", "127.0.0.0/8", false, "", "", 200},
		{"outside the list", "10.0.0.0/8", false, "", "", 403},
		{"spoofed XFF from an untrusted client", "10.0.0.0/8", false, "10.1.2.3", "", 403},
		{"XFF from a trusted proxy", "10.0.0.0/8", true, "10.1.2.3", "", 200},
		{"trusted proxy, client outside", "10.0.0.0/8", true, "192.0.2.1", "", 403},
		{"Forwarded from a trusted proxy", "10.0.0.0/8", true, "", "for=10.1.2.3;proto=https", 200},
		{"Forwarded from a trusted proxy, client outside", "127.0.0.0/8", true, "", "for=192.0.2.1", 403},
		{"spoofed Forwarded from an untrusted client", "10.0.0.0/8", false, "", "for=10.1.2.3", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(StickyOff)
			cfg.Services[0].AllowCIDRs = []netip.Prefix{netip.MustParsePrefix(tc.allow)}
			if tc.trusted {
				cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			}
			lb := mustNew(t, cfg)
			lb.SetBackends("p", []Backend{n.backend()})
			front, c := newFront(t, lb)
			req, _ := http.NewRequest("GET", front.URL+"/carbon/admin/login.jsp", nil)
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			if tc.fwd != "" {
				req.Header.Set("Forwarded", tc.fwd)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// wsAccept is RFC 6455's Sec-WebSocket-Accept for key.
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsEcho is a minimal RFC 6455 server: it echoes one text frame.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "want websocket", 400)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(r.Header.Get("Sec-WebSocket-Key")))
	brw.Flush()
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(brw, hdr[:]); err != nil {
			return
		}
		n := int(hdr[1] & 0x7f)
		var mask [4]byte
		io.ReadFull(brw, mask[:])
		p := make([]byte, n)
		io.ReadFull(brw, p)
		for i := range p {
			p[i] ^= mask[i%4]
		}
		brw.Write([]byte{0x81, byte(n)})
		brw.Write(p)
		brw.Flush()
	}
}

func TestWebSocket(t *testing.T) {
	back := httptest.NewServer(http.HandlerFunc(wsEcho))
	t.Cleanup(back.Close)
	lb := mustNew(t, testConfig(StickyLearn))
	lb.SetBackends("p", []Backend{{ID: "ws", URL: back.URL}})
	front, _ := newFront(t, lb)
	conn, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: app.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("handshake: %d, accept %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	for _, msg := range []string{"hello", "carbon"} {
		frame := []byte{0x81, 0x80 | byte(len(msg)), 1, 2, 3, 4}
		for i := range len(msg) {
			frame = append(frame, msg[i]^frame[2+i%4])
		}
		if _, err := conn.Write(frame); err != nil {
			t.Fatal(err)
		}
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, hdr[1]&0x7f)
		io.ReadFull(br, p)
		if string(p) != msg {
			t.Errorf("echo %q, want %q", p, msg)
		}
	}
}

func TestMaxBodyBytes(t *testing.T) {
	n := newCarbonNode(t, "n1")
	cfg := testConfig(StickyOff)
	cfg.Services[0].MaxBodyBytes = 1024
	lb := mustNew(t, cfg)
	lb.SetBackends("p", []Backend{n.backend()})
	front, c := newFront(t, lb)
	if code, _ := post(t, c, front.URL+"/", strings.Repeat("x", 2048)); code != 413 {
		t.Errorf("declared large body: %d, want 413", code)
	}
	// Chunked: the length is unknown until the body is read.
	resp, err := c.Post(front.URL+"/", "text/plain", io.MultiReader(strings.NewReader(strings.Repeat("y", 4096))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked large body: %d, want 413", resp.StatusCode)
	}
	if code, _ := post(t, c, front.URL+"/", "small"); code != 200 {
		t.Errorf("small body: %d, want 200", code)
	}
}

// TestStreamingFlush: a response without a length reaches the client as
// the backend writes it, not when it ends.
func TestStreamingFlush(t *testing.T) {
	next := make(chan struct{})
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "data: two\n\n")
	}))
	defer back.Close()
	lb := mustNew(t, testConfig(StickyOff))
	lb.SetBackends("p", []Backend{{ID: "sse", URL: back.URL}})
	front, c := newFront(t, lb)
	resp, err := c.Get(front.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	close(next) // the backend finishes only after the first event arrived
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: two\n\n" {
		t.Errorf("rest %q", rest)
	}
}
