package membership

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
)

// logBridge turns memberlist's log lines, "[LEVEL] memberlist: message",
// into slog records at the matching level. Lines about packets and streams
// memberlist could not read go to foreign, which counts them per source
// (memberlist writes one per packet, and anyone who reaches the port can
// send packets); a line that follows one of those about the same stream is
// logged at Debug. Once the node is closed, memberlist's goroutines that
// are still ending report the closed transport ("use of closed network
// connection") as errors; those are the shutdown itself, not a fault, so
// whatever memberlist logs after Close is logged at Debug.
type logBridge struct {
	l       *slog.Logger
	closed  *atomic.Bool // nil: never closed
	foreign *foreignLog  // nil: every line is logged
}

func (b logBridge) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			switch msg[1:i] {
			case "TRACE", "DEBUG":
				level = slog.LevelDebug
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			msg = strings.TrimSpace(msg[i+1:])
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	if b.foreign != nil && level > slog.LevelDebug {
		switch kind := classify(msg); kind {
		case unreadPacket, unreadStream:
			if !b.l.Enabled(context.Background(), slog.LevelWarn) || b.foreign.add(kind, msg) {
				return len(p), nil
			}
		case unreadFollowUp:
			level = slog.LevelDebug
		}
	}
	if level > slog.LevelDebug && b.closed != nil && b.closed.Load() {
		level = slog.LevelDebug
	}
	if !b.l.Enabled(context.Background(), level) {
		return len(p), nil
	}
	b.l.Log(context.Background(), level, msg, "component", "memberlist")
	return len(p), nil
}
