package standin

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/membership"
)

// TestServerNamedByMovedPort: a server whose configured cluster port is
// taken moves to the next one, and without a configured name its node
// answers under the name the member got, which names the port it has.
func TestServerNamedByMovedPort(t *testing.T) {
	held, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc := membership.DefaultConfig("wso2.test.domain")
	mc.BindAddr, mc.AdvertiseAddr = "127.0.0.1", "127.0.0.1"
	mc.Port, mc.PortRetries = port, 20
	mc.Timing = membership.LocalTiming()
	mc.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, ServerConfig{Member: mc, Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Kill()
	name := s.Member().Name()
	_, got, _ := net.SplitHostPort(name)
	if got == strconv.Itoa(port) {
		t.Fatalf("member %s kept the taken port %d", name, port)
	}
	resp, err := http.Get(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if node := resp.Header.Get(HeaderNode); node != name {
		t.Errorf("node answers as %q, want the member's name %q", node, name)
	}
}
