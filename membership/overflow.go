package membership

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// handlerQueueFullLine starts memberlist's line about a packet it dropped
// because its handler queue (memberlist.Config.HandoffQueueDepth, 1024
// packets) was full: "handler queue full, dropping message (type) from=…".
// It writes one per packet, so a burst of message datagrams or gossip
// faster than the node handles them would fill the log.
//
// The depth is left at memberlist's default even for message peers: a
// queued packet that was not encrypted holds the 64 KiB buffer memberlist
// read it into, so a deeper queue costs up to 64 KiB a packet, and a node
// whose handler falls that far behind is overloaded whatever the depth;
// Broadcast packs messages so that a thousand of them take a few dozen
// packets.
const handlerQueueFullLine = "handler queue full, dropping message"

// overflowLog counts the packets memberlist dropped because its handler
// queue was full, and logs the count at Warn once per interval in place
// of memberlist's line per packet. Its timer runs only while a count is
// pending; stop logs what is pending and waits for a flush in progress.
// Its methods are safe for concurrent use.
type overflowLog struct {
	l        *slog.Logger
	interval time.Duration // zero or negative: each line is logged as memberlist wrote it
	total    atomic.Int64  // packets dropped since Join, for Health

	mu      sync.Mutex // protects the fields below
	pending int64      // packets dropped since the last line
	first   string     // memberlist's first line of the interval
	timer   *time.Timer
	flushes sync.WaitGroup // the timer's flush, from arming until it has run or been stopped
	stopped bool
}

// add counts one dropped packet, msg being memberlist's line. It reports
// whether the line is taken care of; false means it is to be logged as it
// is (counting is off, or the node is closed).
func (o *overflowLog) add(msg string) bool {
	o.total.Add(1)
	if o.interval <= 0 {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return false
	}
	if o.pending == 0 {
		o.first = msg
	}
	o.pending++
	if o.timer == nil {
		o.flushes.Add(1)
		o.timer = time.AfterFunc(o.interval, o.tick)
	}
	return true
}

// tick is the timer's flush.
func (o *overflowLog) tick() {
	defer o.flushes.Done()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return // stop flushes
	}
	o.timer = nil
	o.flushLocked()
}

// flushLocked logs the pending count, if any. o.mu is held.
func (o *overflowLog) flushLocked() {
	if o.pending == 0 {
		return
	}
	o.l.Log(context.Background(), slog.LevelWarn, "membership: dropped cluster packets, handler queue full",
		"packets", o.pending, "first", o.first, "interval", o.interval, "component", "memberlist")
	o.pending, o.first = 0, ""
}

// stop logs the pending count and stops counting lines for the log (the
// total still grows). When stop returns, no flush of o is running or will
// run.
func (o *overflowLog) stop() {
	o.mu.Lock()
	if o.stopped {
		o.mu.Unlock()
		return
	}
	o.stopped = true
	if o.timer != nil && o.timer.Stop() {
		o.flushes.Done() // tick will not run
	}
	o.timer = nil
	o.flushLocked()
	o.mu.Unlock()
	o.flushes.Wait()
}
