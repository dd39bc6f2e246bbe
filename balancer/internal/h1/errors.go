package h1

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// The causes of Transport's own errors; they reach callers wrapped in a
// *roundTripError, which carries the prefix.
var (
	errHeaderTooLarge = fmt.Errorf("backend response header larger than %d bytes", MaxResponseHeader)
	errTooMany1xx     = fmt.Errorf("backend sent more than %d informational responses", max1xxResponses)
	errSwitched       = errors.New("backend switched protocols on a request that asked for no upgrade")
)

// roundTripError is an error of a RoundTrip, with what it proves about the
// request: RequestNotSent and ResponseStarted read it with errors.As. Its
// chain holds the cause (a *net.OpError whose Timeout tells a timeout,
// context.Canceled when the request's context ended), so errors.Is and
// errors.As see through it. It does not implement net.Error itself, so
// that errors.As finds the cause's.
type roundTripError struct {
	op          string // what failed: "dial", "write request", "read response", …
	notSent     bool   // no byte of the request reached the backend
	respStarted bool   // some byte of a response had arrived
	err         error  // the cause
}

// Error says what failed, and why. The prefix is the balancer's: the
// package's errors reach users through it.
func (e *roundTripError) Error() string { return "balancer: " + e.op + ": " + e.err.Error() }

// Unwrap returns the cause.
func (e *roundTripError) Unwrap() error { return e.err }

// RequestNotSent reports whether err, returned by a RoundTrip of a
// Transport (its own or its fallback's), proves that no byte of the
// request reached the backend: the dial or the TLS handshake failed, or no
// byte of the request could be written to a plain connection. The request
// may then be sent to another backend whatever its method, provided its
// body can be produced again.
func RequestNotSent(err error) bool {
	if he, ok := errors.AsType[*roundTripError](err); ok {
		return he.notSent
	}
	// The fallback's errors: a dial error, or a certificate that failed
	// verification during the handshake. Anything else may have come after
	// bytes were written.
	if isDialError(err) {
		return true
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn)
}

// ResponseStarted reports whether err, returned by a RoundTrip of a
// Transport, came after some byte of a response had arrived: the request
// is then never sent again.
func ResponseStarted(err error) bool {
	he, ok := errors.AsType[*roundTripError](err)
	return ok && he.respStarted
}

// ConnGone reports whether err says the peer closed the connection (EOF,
// a reset, a broken pipe).
func ConnGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// isTimeout reports whether err is a timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isDialError reports whether err is a failed dial.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
