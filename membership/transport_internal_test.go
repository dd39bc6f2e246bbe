package membership

import (
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonlb/carbonlb/membership/membertest"
)

// TestTransportDown: once shut down, the node's transport dials nothing —
// a stream it opened and closed at once would reach the member as an empty
// stream, which memberlist logs as one without a cluster label — and the
// streams it had open, dialled and accepted, are closed.
func TestTransportDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var nw membertest.Network
		a, b := netip.MustParseAddrPort("10.0.0.1:4000"), netip.MustParseAddrPort("10.0.0.2:4000")
		ma, err := nw.NewTransport(a)
		if err != nil {
			t.Fatal(err)
		}
		peer, err := nw.NewTransport(b)
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Shutdown()
		tr := newCountingTransport(ma)

		dialled, err := tr.DialTimeout(b.String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		atPeer := <-peer.StreamCh()
		fromPeer, err := peer.DialTimeout(a.String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		accepted := <-tr.StreamCh()

		if err := tr.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.DialTimeout(b.String(), time.Second); !errors.Is(err, errTransportDown) {
			t.Errorf("dial after Shutdown = %v, want errTransportDown", err)
		}
		select {
		case c := <-peer.StreamCh():
			t.Errorf("the peer received a stream from %v after Shutdown", c.RemoteAddr())
		default:
		}
		buf := make([]byte, 1)
		for name, c := range map[string]interface{ Read([]byte) (int, error) }{
			"dialled, at the peer":  atPeer,
			"accepted, at the peer": fromPeer,
			"dialled":               dialled,
			"accepted":              accepted,
		} {
			if _, err := c.Read(buf); err == nil {
				t.Errorf("%s stream: read after Shutdown succeeded", name)
			}
		}
	})
}
