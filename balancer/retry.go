package balancer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/carbonlb/carbonlb/balancer/internal/h1"
)

// retryBudget says whether another try may start.
type retryBudget struct {
	attempts int
	deadline int64
}

func (r *retryBudget) next(now int64) bool {
	r.attempts--
	return r.attempts > 0 && now < r.deadline
}

// retryable says whether a failed try may be repeated on another backend;
// replayable says that the request has no body, or one that can be sent
// again whole (buffered, or streamed but not read yet). The rules, in
// docs/balancer.md: a request none of which reached a backend is sent
// again whatever its method; an idempotent one (RFC 9110, section 9.2.2)
// also when no byte of a response arrived, or when the response was a
// FailStatuses status; a POST or PATCH whose bytes may have reached a
// backend, never.
func retryable(err error, method string, replayable bool) bool {
	if !replayable {
		return false
	}
	if h1.RequestNotSent(err) {
		return true
	}
	if !idempotent(method) {
		return false
	}
	if _, ok := err.(statusError); ok {
		return true
	}
	return !h1.ResponseStarted(err)
}

// idempotent reports whether a method is idempotent (RFC 9110, section
// 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// statusError is a response status counted as a failure
// (HealthCheck.FailStatuses).
type statusError int

func (e statusError) Error() string {
	return "status " + strconv.Itoa(int(e)) + " " + http.StatusText(int(e))
}

func errStatus(err error) int {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}
