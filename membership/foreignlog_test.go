package membership

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestClassify runs memberlist's own lines, as v0.7 writes them, through
// classify and source.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		line   string // as memberlist writes it, without the level
		kind   unreadable
		from   string
		reason string
	}{
		{`discarding packet with unacceptable label "": from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", `discarding packet with unacceptable label ""`},
		{`discarding packet with unacceptable label "other.domain": from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", `discarding packet with unacceptable label "other.domain"`},
		{`unexpected double packet label header: from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "unexpected double packet label header"},
		{`cannot decode label; packet has been truncated from=[fd00::9]:4000`, unreadPacket, "fd00::9", "cannot decode label; packet has been truncated"},
		{`label header cannot be empty when present from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "label header cannot be empty when present"},
		{`Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.9:51000`, unreadPacket, "10.0.0.9", "Decrypt packet failed: no installed keys could decrypt the message"},
		{`Got invalid checksum for UDP packet: 1a2b, 3c4d`, unreadPacket, "unknown", "Got invalid checksum for UDP packet: 1a2b, 3c4d"},
		{`UDP packet too short (65536 bytes) from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "UDP packet too short (65536 bytes)"},
		{`missing message type byte from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "missing message type byte"},
		{`msg type (99) not supported from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "msg type (99) not supported"},
		{`Message type (99) not supported from=10.0.0.9:4000 (packet handler)`, unreadPacket, "10.0.0.9", "Message type (99) not supported (packet handler)"},
		{`missing message type byte from=<unknown address>`, unreadPacket, "unknown", "missing message type byte"},
		{`Failed to decode compound request: EOF from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "Failed to decode compound request: EOF"},
		{`Compound request had 3 truncated messages from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "Compound request had 3 truncated messages"},
		{`Failed to decode ping request: EOF from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "Failed to decode ping request: EOF"},
		{`Failed to decode indirect ping request: EOF from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "Failed to decode indirect ping request: EOF"},
		{`Failed to decode ack response: EOF from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "Failed to decode ack response: EOF"},
		{`Failed to decode nack response: EOF from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "Failed to decode nack response: EOF"},
		{`Failed to decode suspect message: EOF from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "Failed to decode suspect message: EOF"},
		{`Failed to decode alive message: EOF from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "Failed to decode alive message: EOF"},
		{`Failed to decode dead message: EOF from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "Failed to decode dead message: EOF"},
		{`Failed to decompress payload: bad format from=10.0.0.9:4000`, unreadPacket, "10.0.0.9", "Failed to decompress payload: bad format"},
		{`failed to receive and remove the stream label header: cannot decode label; stream has been truncated from=10.0.0.9:53000`, unreadStream, "10.0.0.9", "failed to receive and remove the stream label header: cannot decode label; stream has been truncated"},
		{`unexpected double stream label header: from=10.0.0.9:53000`, unreadStream, "10.0.0.9", "unexpected double stream label header"},
		{`discarding stream with unacceptable label "": from=10.0.0.9:53000`, unreadStream, "10.0.0.9", `discarding stream with unacceptable label ""`},
		{`failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.9:53000`, unreadStream, "10.0.0.9", "failed to receive: encryption is configured but remote state is not encrypted"},
		{`Received invalid msgType (71) from=10.0.0.9:53000`, unreadStream, "10.0.0.9", "Received invalid msgType (71)"},
		{`Failed to decode ping: EOF from=10.0.0.9:53000`, unreadStream, "10.0.0.9", "Failed to decode ping: EOF"},
		{`Failed to receive user message: EOF from=10.0.0.9:53000`, unreadStream, "10.0.0.9", "Failed to receive user message: EOF"},
		{`Failed to read remote state: number of nodes in header (9999999) exceeds limit from=10.0.0.9:53000`, unreadStream, "10.0.0.9", "Failed to read remote state: number of nodes in header (9999999) exceeds limit"},
		{`Failed to send error: write: broken pipe from=10.0.0.9:53000`, unreadFollowUp, "10.0.0.9", "Failed to send error: write: broken pipe"},
		{`Failed to encode error response: boom`, unreadFollowUp, "unknown", "Failed to encode error response: boom"},
		// Lines about the cluster itself pass through.
		{`Stream connection from=10.0.0.9:53000`, readable, "10.0.0.9", "Stream connection"},
		{`Conflicting address for n1. Mine: 10.0.0.1:4000 Theirs: 10.0.0.2:4000 Old state: 0`, readable, "unknown", "Conflicting address for n1. Mine: 10.0.0.1:4000 Theirs: 10.0.0.2:4000 Old state: 0"},
		{`Failed to send gossip to 10.0.0.2:4000: use of closed network connection`, readable, "unknown", "Failed to send gossip to 10.0.0.2:4000: use of closed network connection"},
		{`Got ping for unexpected node 'n9' from=10.0.0.9:4000`, readable, "10.0.0.9", "Got ping for unexpected node 'n9'"},
		{`handler queue full, dropping message (2) from=10.0.0.9:4000`, readable, "10.0.0.9", "handler queue full, dropping message (2)"},
		{`Failed to push local state: EOF from=10.0.0.9:53000`, readable, "10.0.0.9", "Failed to push local state: EOF"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			from, reason := source(tc.line)
			got := []string{fmt.Sprint(classify(tc.line)), from, reason}
			want := []string{fmt.Sprint(tc.kind), tc.from, tc.reason}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("classify, source mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// textLogger returns a logger that writes records to buf as text, without
// the time, from Debug up. The buffer is guarded: the flush timer logs from
// its own goroutine.
func textLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// take returns what was written since the last take.
func (b *syncBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// TestForeignLogIntervals feeds memberlist's lines to the bridge in a
// synctest bubble: unreadable packets and streams are counted per source
// address and logged once per interval, counted from the first line after
// a quiet spell; other lines pass through at once; stop logs what is
// pending and ends the counting.
func TestForeignLogIntervals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		l := textLogger(&buf)
		var closed atomic.Bool
		f := newForeignLog(l, 10*time.Second)
		b := &logBridge{l: l, closed: &closed, foreign: f}
		write := func(lines ...string) {
			for _, s := range lines {
				b.Write([]byte(s + "\n"))
			}
			synctest.Wait()
		}
		step := func(name string, d time.Duration, want string) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if diff := cmp.Diff(want, buf.take()); diff != "" {
				t.Errorf("%s: log mismatch (-want +got):\n%s", name, diff)
			}
		}

		// t=0: a flood from two sources, one of them on several ports and
		// over TCP too, mixed with lines that pass through.
		write(
			`[ERR] memberlist: discarding packet with unacceptable label "": from=10.0.0.9:4000`,
			`[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.9:4000`,
			`[ERR] memberlist: discarding packet with unacceptable label "": from=10.0.0.9:4001`,
			`[ERR] memberlist: discarding stream with unacceptable label "": from=10.0.0.9:53000`,
			`[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.9:53001`,
			`[ERR] memberlist: Failed to send error: write: broken pipe from=10.0.0.9:53001`,
			`[ERR] memberlist: msg type (99) not supported from=[fd00::7]:4000`,
			`[ERR] memberlist: Conflicting address for n1`,
			`[DEBUG] memberlist: Stream connection from=10.0.0.9:53000`,
		)
		step("at once", 0, `level=DEBUG msg="Failed to send error: write: broken pipe from=10.0.0.9:53001" component=memberlist
level=ERROR msg="Conflicting address for n1" component=memberlist
level=DEBUG msg="Stream connection from=10.0.0.9:53000" component=memberlist
`)
		step("just before the interval", 10*time.Second-time.Nanosecond, "")
		step("the interval", time.Nanosecond, `level=WARN msg="membership: dropped unreadable cluster messages" from=10.0.0.9 packets=3 streams=2 reason="discarding packet with unacceptable label \"\"" interval=10s component=memberlist
level=WARN msg="membership: dropped unreadable cluster messages" from=fd00::7 packets=1 streams=0 reason="msg type (99) not supported" interval=10s component=memberlist
`)
		step("quiet", time.Minute, "")

		// t=70s: the next flood starts the next interval.
		write(`[WARN] memberlist: Got invalid checksum for UDP packet: 1a2b, 3c4d`)
		step("5s into the second interval", 5*time.Second, "")
		write(`[ERR] memberlist: Received invalid msgType (71) from=10.0.0.9:53002`)
		step("end of the second interval", 5*time.Second, `level=WARN msg="membership: dropped unreadable cluster messages" from=10.0.0.9 packets=0 streams=1 reason="Received invalid msgType (71)" interval=10s component=memberlist
level=WARN msg="membership: dropped unreadable cluster messages" from=unknown packets=1 streams=0 reason="Got invalid checksum for UDP packet: 1a2b, 3c4d" interval=10s component=memberlist
`)

		// Close: the pending count is logged at once, and what memberlist
		// logs afterwards is the shutdown, at Debug.
		write(`[ERR] memberlist: discarding packet with unacceptable label "x": from=10.0.0.8:4000`)
		closed.Store(true)
		write(`[ERR] memberlist: discarding packet with unacceptable label "y": from=10.0.0.8:4000`)
		f.stop()
		step("stop", 0, `level=WARN msg="membership: dropped unreadable cluster messages" from=10.0.0.8 packets=2 streams=0 reason="discarding packet with unacceptable label \"x\"" interval=10s component=memberlist
`)
		write(`[ERR] memberlist: discarding packet with unacceptable label "z": from=10.0.0.8:4000`)
		step("after stop", time.Hour, `level=DEBUG msg="discarding packet with unacceptable label \"z\": from=10.0.0.8:4000" component=memberlist
`)
		f.stop() // idempotent
	})
}

// TestForeignLogSources: a flood from more addresses than
// maxForeignSources (UDP source addresses can be forged) keeps one count
// for the rest.
func TestForeignLogSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		l := textLogger(&buf)
		f := newForeignLog(l, time.Second)
		b := &logBridge{l: l, foreign: f}
		const sources = maxForeignSources + 10
		for i := range sources {
			for range 3 {
				fmt.Fprintf(b, "[ERR] memberlist: Decrypt packet failed: unsupported encryption version 7 from=10.1.%d.%d:4000\n", i/256, i%256)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		lines := strings.Split(strings.TrimSuffix(buf.take(), "\n"), "\n")
		if len(lines) != maxForeignSources+1 {
			t.Fatalf("%d lines, want %d:\n%s", len(lines), maxForeignSources+1, strings.Join(lines, "\n"))
		}
		want := `level=WARN msg="membership: dropped unreadable cluster messages from more sources" packets=30 streams=0 reason="Decrypt packet failed: unsupported encryption version 7" interval=1s component=memberlist`
		if diff := cmp.Diff(want, lines[len(lines)-1]); diff != "" {
			t.Errorf("shared count mismatch (-want +got):\n%s", diff)
		}
		for _, line := range lines[:len(lines)-1] {
			if !strings.Contains(line, " packets=3 streams=0 ") {
				t.Errorf("line %q, want 3 packets", line)
			}
		}
		f.stop()
	})
}

// TestForeignLogOff: without a foreignLog (Config.ForeignLogInterval
// negative), memberlist's lines pass through one by one, as before.
func TestForeignLogOff(t *testing.T) {
	var buf syncBuffer
	b := &logBridge{l: textLogger(&buf)}
	for range 2 {
		b.Write([]byte(`[ERR] memberlist: discarding packet with unacceptable label "": from=10.0.0.9:4000` + "\n"))
	}
	want := `level=ERROR msg="discarding packet with unacceptable label \"\": from=10.0.0.9:4000" component=memberlist
level=ERROR msg="discarding packet with unacceptable label \"\": from=10.0.0.9:4000" component=memberlist
`
	if diff := cmp.Diff(want, buf.take()); diff != "" {
		t.Errorf("log mismatch (-want +got):\n%s", diff)
	}
}

// TestForeignLogLevel: when Warn is not enabled, the counted lines are
// dropped and no timer is started.
func TestForeignLogLevel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
		f := newForeignLog(l, time.Second)
		b := &logBridge{l: l, foreign: f}
		b.Write([]byte(`[ERR] memberlist: discarding packet with unacceptable label "": from=10.0.0.9:4000` + "\n"))
		f.mu.Lock()
		armed := f.timer != nil
		f.mu.Unlock()
		if armed {
			t.Error("flush timer armed with Warn disabled")
		}
		f.stop()
		if got := buf.take(); got != "" {
			t.Errorf("logged %q, want nothing", got)
		}
	})
}
