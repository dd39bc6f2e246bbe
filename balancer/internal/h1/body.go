package h1

import "io"

// respBody is a response body that returns its connection to the pool once
// read to the end, and closes it when closed earlier.
type respBody struct {
	t    *Transport
	pc   *persistConn
	body io.ReadCloser
	stop func() bool
	keep bool
	done bool // the connection was released or closed
}

// Read reads the body; at its end the connection goes back to the pool if
// it may (release), on an error it is closed.
func (b *respBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.done = true
		if err == io.EOF {
			b.t.release(b.pc, b.stop, b.keep)
		} else {
			b.stop()
			b.pc.conn.Close()
		}
	}
	return n, err
}

// Close closes the connection unless the body was read to its end.
func (b *respBody) Close() error {
	if !b.done {
		b.done = true
		b.stop()
		b.pc.conn.Close()
	}
	return nil
}
