package membership

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []meta{
		{Domain: "wso2.esb.domain", SubDomain: "worker", Properties: map[string]string{}},
		{Domain: "wso2.esb.domain", SubDomain: "mgt", Leaving: true, Properties: map[string]string{
			PropBackendServerURL: "https://10.0.0.5:9443/services/",
			PropMgtConsoleURL:    "https://10.0.0.5:9443/",
			PropHTTPPort:         "9763",
			"ünïcode":            strings.Repeat("é", 100),
		}},
	} {
		b, err := m.encode()
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		got, err := decodeMeta(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Errorf("round trip mismatch (-want +got):\n%s", diff)
		}
	}
}

func TestMetaDomainIs(t *testing.T) {
	b, _ := meta{Domain: "wso2.esb.domain", SubDomain: "mgt", Leaving: true}.encode()
	for _, tc := range []struct {
		b      []byte
		domain string
		want   bool
	}{
		{b, "wso2.esb.domain", true},
		{b, "wso2.as.domain", false},
		{b, "wso2.esb.domai", false},
		{b[:5], "wso2.esb.domain", false},
		{nil, "", false},
		{[]byte{2, 0, 0}, "", false},
		{[]byte{1, 0, 0}, "", true},
	} {
		if got := metaDomainIs(tc.b, tc.domain); got != tc.want {
			t.Errorf("metaDomainIs(%x, %q) = %v, want %v", tc.b, tc.domain, got, tc.want)
		}
	}
}

// TestMetaUnknownFlags: flag bits a later build may add are ignored, by
// the decoder and by the domain check memberlist's alive messages go
// through, so that such a node is not refused in a rolling upgrade; the
// known bits still read.
func TestMetaUnknownFlags(t *testing.T) {
	m := meta{Domain: "wso2.esb.domain", SubDomain: "worker", Messages: true, Properties: map[string]string{PropHTTPPort: "9763"}}
	b, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, extra := range []byte{4, 0x80, 0xfc} {
		later := bytes.Clone(b)
		later[1] |= extra
		got, err := decodeMeta(later)
		if err != nil {
			t.Errorf("flags %#x: %v", later[1], err)
			continue
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Errorf("flags %#x (-want +got):\n%s", later[1], diff)
		}
		if !metaDomainIs(later, m.Domain) {
			t.Errorf("flags %#x: metaDomainIs false", later[1])
		}
	}
	if _, err := decodeMeta(append([]byte{metaVersion + 1}, b[1:]...)); err == nil {
		t.Error("a later metadata version was read")
	}
}

func TestMetaLimit(t *testing.T) {
	// 1 version + 1 flags + 2 domain + 1 sub-domain + 1 count + 2 key = 8
	// bytes of framing around the value, whose length takes 2 bytes.
	fits := meta{Domain: "d", Properties: map[string]string{"k": strings.Repeat("v", MaxMetaSize-10)}}
	if b, err := fits.encode(); err != nil || len(b) != MaxMetaSize {
		t.Errorf("encode at the limit = %d bytes, %v; want %d", len(b), err, MaxMetaSize)
	}
	over := meta{Domain: "d", Properties: map[string]string{"k": strings.Repeat("v", MaxMetaSize-9)}}
	if _, err := over.encode(); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("encode one byte over = %v, want ErrMetaTooLarge", err)
	}
}

// FuzzDecodeMeta checks that metadata from the network never panics the
// decoder and that what decodes encodes back to the same bytes.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []meta{
		{Domain: "wso2.esb.domain", SubDomain: "worker", Properties: map[string]string{PropHTTPPort: "9763", PropHTTPSPort: "9443"}},
		{Domain: "wso2.is.domain", Leaving: true},
	} {
		b, _ := m.encode()
		f.Add(b)
	}
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if !metaDomainIs(b, m.Domain) {
			t.Fatalf("metaDomainIs(%x, %q) = false for decoded metadata", b, m.Domain)
		}
		again, err := m.encode()
		if err != nil {
			if len(b) > MaxMetaSize {
				return
			}
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			// Maps lose duplicate keys and order: decode again and compare.
			m2, err := decodeMeta(again)
			if err != nil || !cmp.Equal(m, m2) {
				t.Fatalf("re-encoding %x gave %x", b, again)
			}
		}
	})
}

func TestLogBridge(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	b := &logBridge{l: l}
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:4000\n",
		"[INFO] memberlist: Marking n1 as failed\n",
		"[WARN] memberlist: Refuting a dead message\n",
		"[ERR] memberlist: Conflicting address\n",
		"no level\n",
	} {
		b.Write([]byte(line))
	}
	want := `level=DEBUG msg="Stream connection from=127.0.0.1:4000" component=memberlist
level=INFO msg="Marking n1 as failed" component=memberlist
level=WARN msg="Refuting a dead message" component=memberlist
level=ERROR msg="Conflicting address" component=memberlist
level=INFO msg="no level" component=memberlist
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("bridged log mismatch (-want +got):\n%s", diff)
	}

	// After Close, the errors of memberlist's goroutines that are still
	// ending are the shutdown itself: Debug, not Error.
	buf.Reset()
	var closed atomic.Bool
	b = &logBridge{l: l, closed: &closed}
	b.Write([]byte("[ERR] memberlist: Failed to send gossip: use of closed network connection\n"))
	closed.Store(true)
	b.Write([]byte("[ERR] memberlist: Failed to send gossip: use of closed network connection\n"))
	b.Write([]byte("[WARN] memberlist: Was able to connect to n1 over TCP\n"))
	want = `level=ERROR msg="Failed to send gossip: use of closed network connection" component=memberlist
level=DEBUG msg="Failed to send gossip: use of closed network connection" component=memberlist
level=DEBUG msg="Was able to connect to n1 over TCP" component=memberlist
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("bridged log after Close mismatch (-want +got):\n%s", diff)
	}
}

func TestStrings(t *testing.T) {
	got := []string{StateAlive.String(), StateLeft.String(), StateFailed.String(), State(9).String(),
		Joined.String(), Updated.String(), Left.String(), Failed.String(), Resync.String(), EventType(0).String()}
	want := []string{"alive", "left", "failed", "State(9)", "joined", "updated", "left", "failed", "resync", "EventType(0)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("String() mismatch (-want +got):\n%s", diff)
	}
}

// TestNotifyLeaveKinds: memberlist's NotifyLeave becomes Left on any of the
// three signs of a departure and Failed without one.
func TestNotifyLeaveKinds(t *testing.T) {
	const domain = "wso2.esb.domain"
	encode := func(leaving bool) []byte {
		b, err := meta{Domain: domain, SubDomain: "worker", Leaving: leaving}.encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		state   memberlist.NodeStateType
		leaving bool
		notice  bool
		want    EventType
	}{
		{"dead", memberlist.StateDead, false, false, Failed},
		{"memberlist state left", memberlist.StateLeft, false, false, Left},
		{"leaving flag", memberlist.StateDead, true, false, Left},
		{"leave notice", memberlist.StateDead, false, true, Left},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{cfg: Config{Domain: domain}, hub: newHub(8), wake: make(chan struct{}, 1), leaving: map[string]bool{}}
			if tc.notice {
				n.leaving["n1"] = true
			}
			s, err := n.hub.subscribe()
			if err != nil {
				t.Fatal(err)
			}
			(&delegate{n}).NotifyLeave(&memberlist.Node{Name: "n1", Addr: []byte{10, 0, 0, 1}, Port: 4000, Meta: encode(tc.leaving), State: tc.state})
			evs, _ := n.hub.take(s)
			if len(evs) != 1 || evs[0].Type != tc.want || evs[0].Member.Name != "n1" {
				t.Fatalf("events %v, want one %v of n1", evs, tc.want)
			}
		})
	}
}
