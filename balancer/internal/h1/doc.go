// Package h1 is the balancer's HTTP/1.1 client for its backends: a
// [Transport] that sends a request without a body, or with a small
// replayable one of known length, on the calling goroutine over a pooled
// keep-alive connection (TLS for https backends), and hands every other
// request to a net/http Transport.
//
// The package balancer builds one Transport per set of service timeouts:
//
//	rt := &h1.Transport{
//		Dial:           dial, // the balancer's dialer, with its deadlines
//		Fallback:       &http.Transport{DialContext: dial},
//		MaxIdlePerHost: 64,
//		IdleTimeout:    90 * time.Second,
//	}
//	resp, err := rt.RoundTrip(req)
//	if err != nil && h1.RequestNotSent(err) {
//		// no byte reached the backend: another one may take the request
//	}
//
// Before a pooled connection carries a request, one non-blocking receive
// (recv with MSG_PEEK and MSG_DONTWAIT) checks that nothing arrived on it
// and that the backend has not closed it. The check sees through
// connection wrappers that have a NetConn() net.Conn method, as
// *tls.Conn does. Where sockets cannot be inspected so, and when built
// with the balancer_stdclient tag, every request goes to the fallback
// ([Enabled] is false).
//
// It reads a response as strictly as ReadRequest reads a request (see
// readResponse), and writes a request with the bytes net/http's
// Request.Write would write, and refuses first what net/http's Transport refuses: a method or
// field name that is not a token, a field value with a control character
// other than a tab.
//
// A Transport is safe for concurrent use. Its errors reach users through
// the package balancer, and carry its prefix.
//
// The package also reads requests for the balancer's own HTTP/1.1 server.
// [ReadRequest] parses one request head from a bufio.Reader into a reused
// http.Request, strictly (RFC 9112, as HAProxy reads it): a framing that
// two readers could take differently — Content-Length and
// Transfer-Encoding disagreeing or malformed, obs-fold, whitespace before
// a colon, a bare CR, a missing or doubled Host — is refused with a
// [RequestError] that carries the status to answer, never passed on.
// [NewBody] reads the body as the head framed it, never past its end, so
// that a pipelined request stays in the reader; its chunked decoder is as
// strict. [RequestLimits] bounds what a client may make either keep in
// memory.
package h1
