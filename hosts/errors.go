package hosts

import (
	"context"
	"errors"
	"net"
)

// Errors a [*LookupError] wraps; test for them with [errors.Is].
var (
	// ErrNotFound means the name has no address: no static entry, no hosts
	// file line, and DNS answered NXDOMAIN or no address record for every
	// name tried.
	ErrNotFound = errors.New("no such host")
	// ErrTimeout means no server answered in time, or the context's deadline
	// passed. errors.Is(err, ErrTimeout) also holds for a [*LookupError]
	// whose Err is [context.DeadlineExceeded] or a network timeout.
	ErrTimeout = errors.New("timeout")
	// ErrServerFailure means every server answered with an error code such
	// as SERVFAIL or REFUSED, for every name of the search list that did
	// not get an answer (see [Resolver.LookupAddr]).
	ErrServerFailure = errors.New("server failure")
	// ErrUnreachable means the last server tried could not be reached: the
	// connection was refused (over UDP, an ICMP port unreachable reply; over
	// TCP, a reset), or the host or network was unreachable. The
	// [*LookupError] also wraps the network error.
	ErrUnreachable = errors.New("server unreachable")
	// ErrClosed means the Resolver was closed.
	ErrClosed = errors.New("closed")
)

// LookupError is the error of [Resolver.LookupAddr]. It is shaped like
// [strconv.NumError]: the name, and the reason in Err.
type LookupError struct {
	Name   string // the name looked up, as given
	Server string // the last DNS server asked, or "" when none was
	// Err is the reason: ErrNotFound, ErrTimeout, ErrServerFailure,
	// ErrUnreachable, ErrClosed, ErrInvalidName, a context error, or a
	// network error.
	Err error
}

// Error returns "hosts: lookup <name>[ on <server>]: <reason>".
func (e *LookupError) Error() string {
	s := "hosts: lookup " + e.Name
	if e.Server != "" {
		s += " on " + e.Server
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *LookupError) Unwrap() error { return e.Err }

// Timeout reports whether the lookup failed because time ran out. It makes
// a LookupError a [net.Error]-style timeout.
func (e *LookupError) Timeout() bool {
	if errors.Is(e.Err, ErrTimeout) || errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// NotFound reports whether the name has no address.
func (e *LookupError) NotFound() bool { return errors.Is(e.Err, ErrNotFound) }

// Is makes errors.Is(err, ErrTimeout) hold for every kind of timeout, see
// [LookupError.Timeout].
func (e *LookupError) Is(target error) bool {
	return target == ErrTimeout && e.Timeout()
}
