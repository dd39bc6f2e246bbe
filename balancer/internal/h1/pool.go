package h1

import "time"

// release returns pc to the pool when keep holds, nothing beyond the
// response is buffered, and the cancellation watch could be stopped before
// it fired; otherwise it closes pc.
func (t *Transport) release(pc *persistConn, stop func() bool, keep bool) {
	if !stop() || !keep || pc.br.Buffered() > 0 {
		pc.conn.Close()
		return
	}
	t.put(pc)
}

// get returns an idle connection for key that has not expired and passes
// the check before reuse, or nil. It closes the connections that fail.
func (t *Transport) get(key connKey) *persistConn {
	for {
		pc := t.pop(key)
		if pc == nil || pc.reusable() {
			return pc
		}
		pc.conn.Close()
	}
}

// pop takes the most recently used idle connection for key that has not
// expired, or returns nil.
func (t *Transport) pop(key connKey) *persistConn {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.idle[key]
	for len(l) > 0 {
		pc := l[len(l)-1]
		l[len(l)-1] = nil
		l = l[:len(l)-1]
		if now.Sub(pc.idleAt) < t.IdleTimeout {
			t.idle[key] = l
			return pc
		}
		pc.conn.Close()
	}
	delete(t.idle, key)
	return nil
}

// put keeps pc for reuse, or closes it when MaxIdlePerHost are kept
// already or its socket cannot be checked before reuse.
func (t *Transport) put(pc *persistConn) {
	if pc.raw == nil && (pc.tlsIn == nil || pc.tlsIn.raw == nil) {
		pc.conn.Close()
		return
	}
	pc.idleAt = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idle == nil {
		t.idle = make(map[connKey][]*persistConn)
	}
	if len(t.idle[pc.key]) >= t.MaxIdlePerHost {
		pc.conn.Close()
		return
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.IdleTimeout, t.sweepIdle)
	}
}

// sweepIdle closes the idle connections that expired, and comes back while
// any remain.
func (t *Transport) sweepIdle() {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep = nil
	oldest := now
	for key, l := range t.idle {
		kept := l[:0]
		for _, pc := range l {
			if now.Sub(pc.idleAt) >= t.IdleTimeout {
				pc.conn.Close()
				continue
			}
			kept = append(kept, pc)
			if pc.idleAt.Before(oldest) {
				oldest = pc.idleAt
			}
		}
		clear(l[len(kept):])
		if len(kept) == 0 {
			delete(t.idle, key)
		} else {
			t.idle[key] = kept
		}
	}
	if len(t.idle) > 0 {
		t.sweep = time.AfterFunc(oldest.Add(t.IdleTimeout).Sub(now), t.sweepIdle)
	}
}

// CloseIdleConnections closes every idle connection, the Fallback's too.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	for _, l := range t.idle {
		for _, pc := range l {
			pc.conn.Close()
		}
	}
	t.idle = nil
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	t.mu.Unlock()
	t.Fallback.CloseIdleConnections()
}
