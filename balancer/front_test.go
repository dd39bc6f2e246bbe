package balancer

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// The balancer's tests serve it from a front server that the build
// chooses: net/http's by default, the balancer's own engine (Server) with
// the balancer_engine tag. Either way the front is an httptest.Server,
// with its URL, Listener, Client and Close: under the tag, its net/http
// server gets no connection (its listener only tells the address and
// stops the engine when closed), and the engine serves them.

// startFront serves h on a loopback listener from the front server of the
// build, and closes it when the test ends.
func startFront(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	front := newFrontServer(t, h, nil, false)
	t.Cleanup(front.Close)
	return front
}

// newFrontServer serves h from the front server of the build: over TLS
// with cfg when it is not nil, offering HTTP/2 too when h2 is set. The
// caller closes it.
func newFrontServer(t testing.TB, h http.Handler, cfg *tls.Config, h2 bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS, srv.EnableHTTP2 = cfg, h2
	if !ownEngine {
		if cfg != nil {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		return srv
	}
	ef := &engineFront{t: t, ln: srv.Listener, stop: make(chan struct{}), served: make(chan error, 1)}
	srv.Listener = ef
	if cfg != nil {
		srv.StartTLS() // completes srv.TLS: the certificate its Client trusts
	} else {
		srv.Start()
	}
	s := &Server{Handler: h, Logger: quietLogger()}
	if lb, ok := h.(*Balancer); ok {
		s.Handler, s.Balancer, s.Logger = nil, lb, nil
	}
	ef.s = s
	if cfg != nil {
		s.TLSConfig = srv.TLS
		if h2 {
			s.HTTP2 = &http.Server{Handler: h}
		}
		go func() { ef.served <- s.ServeTLS(ef.ln) }()
	} else {
		go func() { ef.served <- s.Serve(ef.ln) }()
	}
	return srv
}

// engineFront is the listener an httptest.Server holds when the engine
// serves its connections: Accept waits for Close, which shuts the engine
// down as httptest.Server.Close would (the requests in flight finish).
type engineFront struct {
	t      testing.TB
	ln     net.Listener // the engine's
	s      *Server
	stop   chan struct{}
	served chan error
	once   sync.Once
}

func (f *engineFront) Accept() (net.Conn, error) {
	<-f.stop
	return nil, net.ErrClosed
}

func (f *engineFront) Addr() net.Addr { return f.ln.Addr() }

func (f *engineFront) Close() error {
	f.once.Do(func() {
		close(f.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.s.Shutdown(ctx); err != nil {
			f.t.Errorf("front: Shutdown: %v", err)
			f.s.Close()
		}
		if err := <-f.served; err != http.ErrServerClosed {
			f.t.Errorf("front: Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return nil
}
