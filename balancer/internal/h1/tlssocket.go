package h1

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// tlsSocket is the connection under a TLS client connection. While idle
// checks, its Read does not wait: a read through the TLS layer then returns
// the plaintext the layer holds, or what arrived on the socket, or
// errWouldBlock when there is neither. It follows the TLS record framing
// (RFC 8446 §5.1: a 5-byte header whose last two bytes are the length) of
// what it passes up, so that idle can tell when the TLS layer holds part of
// a record it read with the end of a response.
type tlsSocket struct {
	net.Conn
	raw     syscall.RawConn
	probing bool
	p       []byte // the buffer of the pending non-blocking receive
	n       int
	wb, ok  bool
	fn      func(uintptr) bool // ts.recv, bound once

	hdr  [5]byte // the header of the record being read, as far as read
	nhdr int     // bytes of hdr read; 0 between records
	rest int     // bytes of the record's body still to come
}

// track follows the record framing over p, the next bytes read.
func (ts *tlsSocket) track(p []byte) {
	for len(p) > 0 {
		if ts.rest > 0 {
			k := min(ts.rest, len(p))
			ts.rest -= k
			p = p[k:]
			continue
		}
		k := copy(ts.hdr[ts.nhdr:], p)
		ts.nhdr += k
		p = p[k:]
		if ts.nhdr == len(ts.hdr) {
			ts.rest, ts.nhdr = int(ts.hdr[3])<<8|int(ts.hdr[4]), 0
		}
	}
}

// newTLSSocket returns c, to be put under a TLS client connection.
func newTLSSocket(c net.Conn) *tlsSocket {
	ts := &tlsSocket{Conn: c, raw: rawConn(c)}
	ts.fn = ts.recv
	return ts
}

// recv, called by syscall.RawConn.Read, receives into ts.p without waiting.
func (ts *tlsSocket) recv(fd uintptr) bool {
	ts.n, ts.wb, ts.ok = recvNow(fd, ts.p, false)
	return true
}

// Read reads from the socket, without waiting while idle checks.
func (ts *tlsSocket) Read(p []byte) (int, error) {
	if !ts.probing {
		n, err := ts.Conn.Read(p)
		ts.track(p[:n])
		return n, err
	}
	ts.p, ts.ok = p, false
	err := ts.raw.Read(ts.fn)
	ts.p = nil
	switch {
	case err != nil:
		return 0, err
	case !ts.ok:
		return 0, io.ErrUnexpectedEOF
	case ts.wb:
		return 0, errWouldBlock
	case ts.n == 0:
		return 0, io.EOF
	}
	ts.track(p[:ts.n])
	return ts.n, nil
}

// idle reports whether the TLS connection c over ts has nothing to read:
// see persistConn.reusable.
func (ts *tlsSocket) idle(c net.Conn) bool {
	if ts.raw == nil || ts.nhdr > 0 || ts.rest > 0 {
		return false // the TLS layer holds part of a record: bytes past the response
	}
	var b [1]byte
	ts.probing = true
	n, err := c.Read(b[:])
	ts.probing = false
	return n == 0 && errors.Is(err, errWouldBlock)
}

// errWouldBlock is tlsSocket.Read's error when nothing is waiting. It is a
// temporary net.Error, so that the TLS layer does not keep it as the
// connection's error.
var errWouldBlock error = wouldBlockError{}

// wouldBlockError is the type of errWouldBlock.
type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "nothing to read" }
func (wouldBlockError) Timeout() bool   { return true }
func (wouldBlockError) Temporary() bool { return true }
