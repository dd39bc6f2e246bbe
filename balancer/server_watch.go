package balancer

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// watchDelay is how long a request runs before the engine watches its
// connection for the client going away (net/http's server watches from
// the start): a request served sooner costs no background read, and a
// client that leaves is noticed within this time.
const watchDelay = 20 * time.Millisecond

// watcher cancels the context of a request whose client goes away while
// the request is in flight. Once the request has run for watchDelay and
// its body was read to the end, a background read waits on the
// connection: end of input or an error cancels the request; a byte (a
// pipelined request) is kept for the connection's reader, and the watch
// ends there.
//
// The timer is not stopped when a request ends, nor set again for the
// next while it runs: on a busy connection it fires once per watchDelay,
// finds the request then in flight younger than watchDelay and is set
// for the rest of its time. A request thus costs two uncontended locks
// and a clock read, not two updates of the runtime's timers.
type watcher struct {
	c     *conn
	timer *time.Timer   // runs fire
	done  chan struct{} // the background read ended, for a waiting disarm

	mu       sync.Mutex // protects the fields below
	pending  bool       // the timer is set and has not fired
	armed    bool       // a request is in its handler
	start    time.Time  // when it began
	due      bool       // watchDelay passed for it
	body     bool       // its body was read to the end, or it has none
	reading  bool       // the background read runs
	waiting  bool       // disarm waits for it to end
	gone     bool       // the client went away
	stopped  bool       // the connection ended: the timer is not set again
	cancelFn context.CancelFunc
}

// arm starts watching for a request whose handler is about to run.
func (w *watcher) arm(cancel context.CancelFunc, bodyDone bool) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed, w.start, w.due, w.body, w.gone, w.cancelFn = true, now, false, bodyDone, false, cancel
	switch {
	case w.timer == nil:
		w.timer = time.AfterFunc(watchDelay, w.fire)
		w.done = make(chan struct{}, 1)
		w.pending = true
	case !w.pending:
		w.timer.Reset(watchDelay)
		w.pending = true
	}
}

// fire runs when the timer fires, on its own goroutine, which does the
// background read if it may start.
func (w *watcher) fire() {
	w.mu.Lock()
	w.pending = false
	if !w.armed || w.reading || w.due || w.stopped {
		w.mu.Unlock()
		return
	}
	if left := watchDelay - time.Since(w.start); left > 0 {
		w.timer.Reset(left) // a request younger than watchDelay
		w.pending = true
		w.mu.Unlock()
		return
	}
	w.due = true
	start := w.body
	w.reading = start
	w.mu.Unlock()
	if start {
		w.read()
	}
}

// bodyDone notes that the request's body was read to its end.
func (w *watcher) bodyDone() {
	w.mu.Lock()
	w.body = true
	start := w.armed && w.due && !w.reading
	w.reading = w.reading || start
	w.mu.Unlock()
	if start {
		go w.read()
	}
}

// read is the background read.
func (w *watcher) read() {
	cr := &w.c.cr
	n, err := w.c.rwc.Read(cr.byteBuf[:])
	w.mu.Lock()
	if n == 1 {
		cr.hasByte = true
	} else if w.armed && !errors.Is(err, os.ErrDeadlineExceeded) {
		// The end of input, or a reset: the client is gone.
		w.gone = true
		w.cancelFn()
	}
	w.reading = false
	wake := w.waiting
	w.waiting = false
	w.mu.Unlock()
	if wake {
		w.done <- struct{}{}
	}
}

// disarm ends the watch when the handler returned or hijacks the
// connection, waiting for a background read to end.
func (w *watcher) disarm() {
	if w.timer == nil {
		return
	}
	w.mu.Lock()
	w.armed = false
	wait := w.reading
	w.waiting = wait
	w.mu.Unlock()
	if wait {
		w.c.rwc.SetReadDeadline(aLongTimeAgo)
		<-w.done
		w.c.rwc.SetReadDeadline(time.Time{})
	}
}

// stop stops the timer when the connection ends.
func (w *watcher) stop() {
	if w.timer == nil {
		return
	}
	w.mu.Lock()
	w.stopped = true
	w.timer.Stop()
	w.mu.Unlock()
}
