package balancer

import (
	"sync"
	"sync/atomic"
)

// waitQueue holds the requests waiting for a backend of one pool whose
// usable backends are all at their connection limit (Service.MaxConns,
// Backend.MaxConns), as HAProxy's backend queue does. A request that ends
// on one of the pool's backends wakes the longest waiting one, which then
// routes again; a change of the pool (SetBackends, Update) wakes them all.
// Waking is a hint, not a hand-off: a request arriving at that moment may
// take the freed slot first, and the woken one waits again at the head of
// the queue.
type waitQueue struct {
	n        atomic.Int64  // len(waiters), read without the lock on every release
	timeouts atomic.Uint64 // requests answered 503 after waiting Queue.Timeout
	rejected atomic.Uint64 // requests answered 503 at once: the queue was full

	mu      sync.Mutex      // protects waiters
	waiters []chan struct{} // oldest first; each has room for one wake-up
}

// add queues a waiter, at the head when it was woken before and lost the
// slot, and returns its channel. It returns nil, queuing nothing, when
// limit (Queue.Max) waiters are queued already or limit is negative.
func (q *waitQueue) add(head bool, limit int) chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if limit < 0 || (len(q.waiters) >= limit && !head) {
		return nil
	}
	ch := make(chan struct{}, 1)
	if head {
		q.waiters = append(q.waiters, nil)
		copy(q.waiters[1:], q.waiters)
		q.waiters[0] = ch
	} else {
		q.waiters = append(q.waiters, ch)
	}
	q.n.Store(int64(len(q.waiters)))
	return ch
}

// remove takes ch out of the queue. It reports false when ch was woken
// already (and so is no longer queued).
func (q *waitQueue) remove(ch chan struct{}) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, c := range q.waiters {
		if c == ch {
			copy(q.waiters[i:], q.waiters[i+1:])
			q.waiters[len(q.waiters)-1] = nil
			q.waiters = q.waiters[:len(q.waiters)-1]
			q.n.Store(int64(len(q.waiters)))
			return true
		}
	}
	return false
}

// wakeOne wakes the oldest waiter, if any.
func (q *waitQueue) wakeOne() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiters) == 0 {
		return
	}
	ch := q.waiters[0]
	q.waiters[0] = nil
	q.waiters = q.waiters[1:]
	q.n.Store(int64(len(q.waiters)))
	ch <- struct{}{}
}

// wakeAll wakes every waiter: the pool changed, each routes again.
func (q *waitQueue) wakeAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, ch := range q.waiters {
		ch <- struct{}{}
		q.waiters[i] = nil
	}
	q.waiters = q.waiters[:0]
	q.n.Store(0)
}
