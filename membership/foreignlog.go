package membership

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// unreadable is what memberlist's log line says about the traffic it names.
type unreadable int

const (
	readable       unreadable = iota // not about an unreadable packet or stream
	unreadPacket                     // a packet dropped unread
	unreadStream                     // a stream dropped unread
	unreadFollowUp                   // a second line about a stream already counted
)

// classify tells memberlist's messages about packets and streams it could
// not read — another cluster label, no label, a failed decryption, an
// unknown message type, a message that does not decode — from the rest.
// msg is the line without its level and "memberlist: " prefix. Anyone who
// can reach the port causes one of these per packet or connection, so they
// say nothing about the cluster itself. The texts are those of memberlist
// v0.7 (net.go, net_transport.go, label.go); a message memberlist renames
// is logged one line at a time again, which is noisy but loses nothing.
func classify(msg string) unreadable {
	has := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	switch {
	case has(
		"discarding packet with unacceptable label",
		"unexpected double packet label header",
		"cannot decode label; packet has been truncated",
		"label header cannot be empty when present", // the packet form; streams wrap it
		"Decrypt packet failed",
		"Got invalid checksum for UDP packet",
		"UDP packet too short",
		"missing message type byte",
		"msg type (",     // (%d) not supported
		"Message type (", // (%d) not supported … (packet handler)
		"Failed to decode compound request",
		"Compound request had", // %d truncated messages
		"Failed to decode ping request",
		"Failed to decode indirect ping request",
		"Failed to decode ack response",
		"Failed to decode nack response",
		"Failed to decode suspect message",
		"Failed to decode alive message",
		"Failed to decode dead message",
		"Failed to decompress payload",
	):
		return unreadPacket
	case has(
		"failed to receive and remove the stream label header",
		"unexpected double stream label header",
		"discarding stream with unacceptable label",
		"failed to receive: ", // a failed decryption or decoding of the stream's header
		"Received invalid msgType",
		"Failed to decode ping: ",
		"Failed to receive user message",
		"Failed to read remote state",
	):
		return unreadStream
	case has(
		// memberlist answers a stream it could not read with an error
		// message; these say that the answer failed too.
		"Failed to encode error response",
		"Failed to send error: ",
	):
		return unreadFollowUp
	}
	return readable
}

// source returns the address after "from=" in msg, without its port, and
// msg without it (and without a colon before it): "Decrypt packet failed:
// … from=10.0.0.9:4000" is from 10.0.0.9. It returns "unknown" when msg
// names none.
func source(msg string) (from, reason string) {
	i := strings.LastIndex(msg, "from=")
	if i < 0 {
		return "unknown", msg
	}
	rest, tail := msg[i+len("from="):], ""
	if strings.HasPrefix(rest, "<unknown address>") {
		rest, tail = "unknown", rest[len("<unknown address>"):]
	} else if j := strings.IndexByte(rest, ' '); j >= 0 {
		rest, tail = rest[:j], rest[j:]
	}
	reason = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(msg[:i]), ":") + tail)
	if ap, err := netip.ParseAddrPort(rest); err == nil {
		return ap.Addr().Unmap().String(), reason
	}
	return rest, reason
}

// maxForeignSources bounds the sources foreignLog counts apart in one
// interval. UDP source addresses can be forged, so a flood may come from
// any number of them; beyond this many, they share one count.
const maxForeignSources = 64

// otherSources is the key of the shared count.
const otherSources = "other sources"

// foreignLog counts memberlist's lines about unreadable packets and streams
// per source address and logs each source's count at Warn once per
// interval, in place of memberlist's line per packet at Error. Its timer
// runs only while some count is pending; stop flushes the counts and waits
// for a flush in progress, so nothing of it outlives stop. Its methods are
// safe for concurrent use.
type foreignLog struct {
	l        *slog.Logger
	interval time.Duration

	mu      sync.Mutex // protects the fields below
	counts  map[string]*foreignCount
	timer   *time.Timer    // pending flush, nil when nothing is pending
	flushes sync.WaitGroup // the timer's flush, from arming until it has run or been stopped
	stopped bool
}

// foreignCount is what one source sent in the current interval.
type foreignCount struct {
	packets, streams int
	reason           string // memberlist's first message, without the address
}

// newForeignLog returns a foreignLog that logs to l every interval.
func newForeignLog(l *slog.Logger, interval time.Duration) *foreignLog {
	return &foreignLog{l: l, interval: interval, counts: make(map[string]*foreignCount)}
}

// add counts one unreadable packet or stream named by msg, memberlist's
// message. It reports false, counting nothing, once f is stopped.
func (f *foreignLog) add(kind unreadable, msg string) bool {
	from, reason := source(msg)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	c := f.counts[from]
	if c == nil {
		if len(f.counts) >= maxForeignSources {
			from = otherSources
			c = f.counts[from]
		}
		if c == nil {
			c = &foreignCount{reason: reason}
			f.counts[from] = c
		}
	}
	switch kind {
	case unreadPacket:
		c.packets++
	case unreadStream:
		c.streams++
	}
	if f.timer == nil {
		f.flushes.Add(1)
		f.timer = time.AfterFunc(f.interval, f.tick)
	}
	return true
}

// tick is the timer's flush.
func (f *foreignLog) tick() {
	defer f.flushes.Done()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return // stop flushes
	}
	f.timer = nil
	f.flushLocked()
}

// flushLocked logs one line per source, in address order, and forgets the
// counts. f.mu is held, so that lines of two intervals never interleave.
func (f *foreignLog) flushLocked() {
	ctx := context.Background()
	froms := make([]string, 0, len(f.counts))
	for from := range f.counts {
		if from != otherSources {
			froms = append(froms, from)
		}
	}
	slices.SortFunc(froms, cmp.Compare)
	for _, from := range froms {
		c := f.counts[from]
		f.l.Log(ctx, slog.LevelWarn, "membership: dropped unreadable cluster messages",
			"from", from, "packets", c.packets, "streams", c.streams, "reason", c.reason,
			"interval", f.interval, "component", "memberlist")
	}
	if c := f.counts[otherSources]; c != nil {
		f.l.Log(ctx, slog.LevelWarn, "membership: dropped unreadable cluster messages from more sources",
			"packets", c.packets, "streams", c.streams, "reason", c.reason,
			"interval", f.interval, "component", "memberlist")
	}
	clear(f.counts)
}

// stop logs the pending counts and stops counting: add then reports false.
// When stop returns, no flush of f is running or will run.
func (f *foreignLog) stop() {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.stopped = true
	if f.timer != nil && f.timer.Stop() {
		f.flushes.Done() // tick will not run
	}
	f.timer = nil
	f.flushLocked()
	f.mu.Unlock()
	f.flushes.Wait() // a tick that fired before stop returns at once
}
