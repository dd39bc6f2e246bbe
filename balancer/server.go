package balancer

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves HTTP/1.1 with the balancer's own engine: plain TCP with
// Serve, TLS with ServeTLS, where a connection that negotiates HTTP/2 goes
// to an http.Server (HTTP2). It drives the same ServeHTTP as net/http's
// server does, with less around it: one goroutine per connection reads
// its requests one after the other into one reused request and answers
// each through one reused ResponseWriter with pooled buffers; the request
// context is watched for a client that goes away only once a request has
// taken longer than a few milliseconds. docs/balancer.md, "Serving
// engines", lists where it differs from net/http's server.
//
// The handler (Balancer, or Handler) must not keep the request, its
// header or the ResponseWriter after ServeHTTP returned: the connection
// reuses them for its next request. The Balancer never does.
//
// A Server is configured by its fields before its first Serve or ServeTLS,
// and must not be changed afterwards. It may serve several listeners at
// once; its methods are safe for concurrent use. A Server cannot be used
// again after Shutdown or Close.
type Server struct {
	// Balancer answers the requests, unless Handler is set, and its
	// logger is the default of Logger. One of Balancer and Handler must
	// be set.
	Balancer *Balancer

	// Handler, when not nil, answers the requests instead of Balancer: a
	// handler that wraps the Balancer (a mux with a health endpoint, a
	// middleware reading an Outcome). The ResponseWriter it gets offers
	// Flush, Hijack, SetReadDeadline, SetWriteDeadline and
	// EnableFullDuplex through http.ResponseController.
	Handler http.Handler

	// ReadHeaderTimeout bounds the time from the first byte of a request
	// to the end of its head; a client that takes longer gets 408 and its
	// connection closed. It also bounds a TLS handshake and the reading
	// of an unread request body before the next request. Zero means 30 s;
	// a negative value means no bound.
	ReadHeaderTimeout time.Duration

	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection, which is then closed silently. Zero means 2 minutes; a
	// negative value means no bound.
	IdleTimeout time.Duration

	// WriteTimeout bounds each write to the client, not a whole response
	// as net/http's WriteTimeout does (a proxied download or event stream
	// may last for hours): a client that takes none of a response's bytes
	// for this long is cut off, as by nginx's send_timeout. Zero means 60
	// s; a negative value means no bound. A handler's own
	// SetWriteDeadline replaces it for the rest of its response.
	WriteTimeout time.Duration

	// MaxHeaderBytes bounds a request's head (431, or 414 for the request
	// line alone). Zero means 64 KiB.
	MaxHeaderBytes int

	// TLSConfig configures ServeTLS's handshakes: certificates (a
	// CertStore's GetCertificate), versions. Its NextProtos is replaced by
	// "http/1.1", preceded by "h2" when HTTP2 is set. ServeTLS needs it.
	TLSConfig *tls.Config

	// HTTP2 serves the connections that negotiate HTTP/2; its Handler
	// should answer as Handler or Balancer does. The Server starts it on
	// a listener of its own with its first ServeTLS, and Shutdown and
	// Close stop it. Its TLSConfig should be nil: the handshake is the
	// Server's (ServeTLS refuses one whose NextProtos lacks "h2", with
	// which net/http's server would not set up HTTP/2). Nil means that
	// HTTP/2 is not offered.
	HTTP2 *http.Server

	// Logger receives what goes wrong on a connection: a handler's panic
	// (Error), refused requests and failed handshakes (Debug). Nil means
	// the Balancer's logger, or slog.Default() without a Balancer.
	Logger *slog.Logger

	mu        sync.Mutex // protects the fields below
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{} // connections not hijacked nor handed to HTTP2
	down      bool               // Shutdown or Close was called
	gone      chan struct{}      // closed when conns is empty after down
	h2ln      *h2Listener        // nil until the first ServeTLS with HTTP2
	h2done    chan struct{}      // closed when HTTP2.Serve returned
	done      chan struct{}      // closed by Shutdown and Close: stops accept back-offs
	downFlag  atomic.Bool        // down, for the connections to read without mu
}

// Defaults of the Server's zero fields.
const (
	defaultReadHeaderTimeout = 30 * time.Second
	defaultIdleTimeout       = 2 * time.Minute
	defaultWriteTimeout      = 60 * time.Second
)

// Serve accepts connections on ln and serves HTTP/1.1 on each, until ln
// fails or Shutdown or Close is called; it then returns
// http.ErrServerClosed, as http.Server.Serve does. ln is closed on return.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(ln, nil)
}

// ServeTLS is Serve with a TLS handshake on each connection, bounded by
// ReadHeaderTimeout: a connection that negotiates HTTP/2 goes to HTTP2,
// any other is served as HTTP/1.1 by the engine, its requests' TLS field
// set.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.TLSConfig == nil {
		ln.Close()
		return errors.New("balancer: Server.ServeTLS without a TLSConfig")
	}
	cfg := s.TLSConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	if s.HTTP2 != nil {
		cfg.NextProtos = []string{"h2", "http/1.1"}
		if err := s.startHTTP2(ln.Addr()); err != nil {
			ln.Close()
			return err
		}
	}
	return s.serve(ln, cfg)
}

// Serve serves b on ln with the balancer's own HTTP/1.1 engine until ln
// fails; it is shorthand for (&Server{Balancer: b}).Serve(ln), a Server
// that cannot be shut down but by closing ln.
func (b *Balancer) Serve(ln net.Listener) error {
	return (&Server{Balancer: b}).Serve(ln)
}

func (s *Server) serve(ln net.Listener, tlsCfg *tls.Config) error {
	defer ln.Close()
	h := s.handler()
	if h == nil {
		return errors.New("balancer: Server without a Balancer or Handler")
	}
	if !s.trackListener(&ln, true) {
		return http.ErrServerClosed
	}
	defer s.trackListener(&ln, false)
	var delay time.Duration // back-off after a failed accept, as net/http's
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isDown() {
				return http.ErrServerClosed
			}
			if !acceptRetryable(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log().Warn("balancer: accept failed; retrying", "err", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
			}
			continue
		}
		delay = 0
		c := s.newConn(nc, h, tlsCfg)
		if c == nil {
			nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// acceptRetryable reports whether a failed Accept may be tried again: a
// lack of descriptors or memory passes, and an aborted connection is the
// peer's business.
func acceptRetryable(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// handler is what answers the requests, nil if nothing does.
func (s *Server) handler() http.Handler {
	if s.Handler != nil {
		return s.Handler
	}
	if s.Balancer != nil {
		return s.Balancer
	}
	return nil
}

// log is Logger or its default.
func (s *Server) log() *slog.Logger {
	switch {
	case s.Logger != nil:
		return s.Logger
	case s.Balancer != nil:
		return s.Balancer.log()
	}
	return slog.Default()
}

// initLocked makes the maps and channels. s.mu must be held.
func (s *Server) initLocked() {
	if s.conns == nil {
		s.listeners = make(map[*net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.done = make(chan struct{})
	}
}

// isDownFast reports whether Shutdown or Close was called, without s.mu.
func (s *Server) isDownFast() bool { return s.downFlag.Load() }

func (s *Server) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// trackListener adds or removes ln; adding fails once the Server is down.
func (s *Server) trackListener(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	if !add {
		delete(s.listeners, ln)
		return true
	}
	if s.down {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

// newConn registers a new connection; nil once the Server is down.
func (s *Server) newConn(nc net.Conn, h http.Handler, tlsCfg *tls.Config) *conn {
	c := &conn{s: s, raw: nc, rwc: nc, h: h, tlsCfg: tlsCfg}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil
	}
	s.conns[c] = struct{}{}
	return c
}

// untrack forgets c: it ended, was hijacked or went to HTTP2.
func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if len(s.conns) == 0 && s.gone != nil {
		close(s.gone)
		s.gone = nil
	}
}

// shutdownLocked stops accepting and returns a channel closed once no
// connection is left. s.mu must be held.
func (s *Server) shutdownLocked() <-chan struct{} {
	s.initLocked()
	if !s.down {
		s.down = true
		s.downFlag.Store(true)
		close(s.done)
		for ln := range s.listeners {
			(*ln).Close()
		}
	}
	gone := make(chan struct{})
	if len(s.conns) == 0 {
		close(gone)
	} else if s.gone != nil {
		gone = s.gone
	} else {
		s.gone = gone
	}
	return gone
}

// Shutdown stops the Server gracefully: it closes the listeners and the
// idle connections, lets the requests in flight finish (their
// connections close after the response, which says Connection: close if
// its head is still to be written), and waits until every connection is
// gone, or ctx ends (it then returns ctx's error, and Close may follow).
// HTTP2 is shut down alike. Hijacked connections are the handler's: the
// Server neither closes nor waits for them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	gone := s.shutdownLocked()
	for c := range s.conns {
		c.closeIfIdle()
	}
	h2 := s.h2ln != nil
	s.mu.Unlock()
	var errs []error
	if h2 {
		if err := s.HTTP2.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	select {
	case <-gone:
	case <-ctx.Done():
		return errors.Join(append(errs, ctx.Err())...)
	}
	if h2 {
		<-s.h2done
	}
	return errors.Join(errs...)
}

// Close stops the Server at once: it closes the listeners and every
// connection, cancels the contexts of the requests in flight, and waits
// for their handlers to return. HTTP2 is closed alike. Hijacked
// connections are the handler's: the Server neither closes nor waits for
// them.
func (s *Server) Close() error {
	s.mu.Lock()
	gone := s.shutdownLocked()
	for c := range s.conns {
		c.abort()
	}
	h2 := s.h2ln != nil
	s.mu.Unlock()
	var err error
	if h2 {
		err = s.HTTP2.Close()
	}
	<-gone
	if h2 {
		<-s.h2done
	}
	return err
}

// startHTTP2 starts HTTP2 on a listener fed with the connections that
// negotiate h2, once.
func (s *Server) startHTTP2(addr net.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	if s.down {
		return http.ErrServerClosed
	}
	if s.h2ln != nil {
		return nil
	}
	if s.HTTP2.TLSConfig != nil && !slices.Contains(s.HTTP2.TLSConfig.NextProtos, "h2") {
		// http.Server.Serve would then not set up HTTP/2 at all.
		return errors.New("balancer: Server.HTTP2 has a TLSConfig without h2")
	}
	s.h2ln = &h2Listener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
	s.h2done = make(chan struct{})
	go func() {
		defer close(s.h2done)
		s.HTTP2.Serve(s.h2ln) // ErrServerClosed, or the listener's net.ErrClosed
	}()
	return nil
}

// toHTTP2 hands a connection that negotiated h2 to HTTP2.
func (s *Server) toHTTP2(tc *tls.Conn) {
	select {
	case s.h2ln.conns <- tc:
	case <-s.h2ln.done:
		tc.Close()
	}
}

// h2Listener is the listener HTTP2 serves: it yields the connections
// ServeTLS hands over, their handshakes done.
type h2Listener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *h2Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *h2Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *h2Listener) Addr() net.Addr { return l.addr }

// servedByEngine reports whether w is the engine's ResponseWriter, or
// wraps it (Unwrap, the http.ResponseController convention). The engine
// closes a connection after a request that had both Content-Length and
// Transfer-Encoding, and keeps it after any other chunked one.
func servedByEngine(w http.ResponseWriter) bool {
	for range 16 { // wrappers do not nest deeper
		switch x := w.(type) {
		case *response:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
	return false
}
