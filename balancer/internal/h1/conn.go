package h1

import (
	"bufio"
	"net"
	"syscall"
	"time"
)

// connKey identifies the backend of a pooled connection.
type connKey struct {
	tls  bool
	addr string // host:port
}

// persistConn is a keep-alive connection to a backend.
type persistConn struct {
	key     connKey
	conn    net.Conn
	br      *bufio.Reader // reads through the persistConn, which counts against limit
	bw      *bufio.Writer // writes through the persistConn, which counts written
	idleAt  time.Time
	limit   int64 // bytes left to read before the response header must have ended
	written int64 // bytes conn.Write accepted, over the connection's life

	raw    syscall.RawConn    // the socket of a plain connection; nil: TLS, or not a socket
	tlsIn  *tlsSocket         // the socket under a TLS connection; nil: plain
	peekFn func(uintptr) bool // pc.peek, bound once
	peekN  int                // the result of the last peek: bytes waiting,
	peekWB bool               // whether it would have blocked (nothing waiting),
	peekOK bool               // and whether it could be made at all
	buf    [1]byte
}

// noLimit is persistConn.limit while a body is read.
const noLimit = 1<<63 - 1

// newPersistConn returns a connection to pool under key; ts is the socket
// under a TLS connection c, or nil.
func newPersistConn(key connKey, c net.Conn, ts *tlsSocket) *persistConn {
	pc := &persistConn{key: key, conn: c, tlsIn: ts}
	if ts == nil {
		pc.raw = rawConn(c)
	}
	pc.peekFn = pc.peek
	pc.bw = bufio.NewWriterSize(pc, 4<<10)
	pc.br = bufio.NewReaderSize(pc, 16<<10)
	return pc
}

// Read reads from the connection, at most limit bytes while a response
// header is read.
func (pc *persistConn) Read(p []byte) (int, error) {
	if pc.limit <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > pc.limit {
		p = p[:pc.limit]
	}
	n, err := pc.conn.Read(p)
	pc.limit -= int64(n)
	return n, err
}

// Write writes to the connection and counts the bytes it accepted, so that
// a failed write can tell whether any byte of a request left.
func (pc *persistConn) Write(p []byte) (int, error) {
	n, err := pc.conn.Write(p)
	pc.written += int64(n)
	return n, err
}

// netConner is a connection that wraps another, as *tls.Conn does, and
// the balancer's connections with deadlines.
type netConner interface {
	NetConn() net.Conn
}

// rawConn returns the socket of c, through the wrappers that have a
// NetConn method, or nil.
func rawConn(c net.Conn) syscall.RawConn {
	for {
		switch x := c.(type) {
		case *tlsSocket:
			c = x.Conn
		case netConner:
			c = x.NetConn()
		case syscall.Conn:
			rc, err := x.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		default:
			return nil
		}
	}
}

// peek, called by syscall.RawConn.Read, looks without waiting for bytes
// that arrived on the socket, and leaves them there.
func (pc *persistConn) peek(fd uintptr) bool {
	pc.peekN, pc.peekWB, pc.peekOK = recvNow(fd, pc.buf[:], true)
	return true
}

// reusable reports whether the idle pc can carry a request: nothing is
// buffered, nothing arrived since its last response, and the backend has
// not closed it. For a TLS connection any byte that arrived counts (it may
// be a close_notify alert or a TLS record of a response nobody asked for),
// and so does plaintext the TLS layer holds. It costs one non-blocking
// receive.
func (pc *persistConn) reusable() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	if pc.tlsIn != nil {
		return pc.tlsIn.idle(pc.conn)
	}
	if pc.raw == nil {
		return false
	}
	pc.peekOK = false
	if err := pc.raw.Read(pc.peekFn); err != nil || !pc.peekOK {
		return false
	}
	return pc.peekWB // else a byte waits (pc.peekN > 0) or the backend closed (0)
}
