package front

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/carbonlb/carbonlb/balancer"
)

// Engine chooses what serves HTTP on an instance's listeners. The zero
// Engine is the build's default, DefaultEngine.
type Engine int

const (
	// EngineAuto serves HTTP/1.1 with the balancer's own engine
	// (balancer.Server) and HTTP/2 with net/http's server.
	EngineAuto Engine = iota + 1
	// EngineOwn serves with the balancer's own engine only: HTTP/1.1, and
	// no HTTP/2 offered over TLS.
	EngineOwn
	// EngineNetHTTP serves HTTP/1.1 and HTTP/2 with net/http's server.
	EngineNetHTTP
)

// String returns the engine's name as ParseEngine reads it.
func (e Engine) String() string {
	switch e.resolve() {
	case EngineAuto:
		return "auto"
	case EngineOwn:
		return "own"
	case EngineNetHTTP:
		return "net/http"
	}
	return fmt.Sprintf("Engine(%d)", int(e))
}

// ParseEngine reads "auto", "own" or "net/http".
func ParseEngine(s string) (Engine, error) {
	for _, e := range []Engine{EngineAuto, EngineOwn, EngineNetHTTP} {
		if s == e.String() {
			return e, nil
		}
	}
	return 0, fmt.Errorf("unknown engine %q: want auto, own or net/http", s)
}

// resolve turns the zero Engine into DefaultEngine.
func (e Engine) resolve() Engine {
	if e == 0 {
		return DefaultEngine
	}
	return e
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Engine  Engine       // zero: DefaultEngine
	Handler http.Handler // what answers the requests
	// TLSConfig, when not nil, makes Serve serve HTTPS; its NextProtos is
	// set by the engine.
	TLSConfig *tls.Config
	// ReadHeaderTimeout and IdleTimeout are the servers' (zero: theirs).
	ReadHeaderTimeout, IdleTimeout time.Duration
	// Logger receives the servers' errors, net/http's at ErrorLevel. Nil
	// means slog.Default().
	Logger     *slog.Logger
	ErrorLevel slog.Level
}

// Server serves one listener with an engine. Its methods are safe for
// concurrent use; Serve is called once.
type Server struct {
	tls bool
	own *balancer.Server // EngineAuto and EngineOwn
	std *http.Server     // EngineNetHTTP
}

// NewServer returns a Server for cfg.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	std := &http.Server{Handler: cfg.Handler, TLSConfig: cfg.TLSConfig, ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout: cfg.IdleTimeout, ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), cfg.ErrorLevel)}
	s := &Server{tls: cfg.TLSConfig != nil}
	switch cfg.Engine.resolve() {
	case EngineNetHTTP:
		s.std = std
		return s
	case EngineAuto:
		std.TLSConfig = nil // the handshake is the engine's
	default:
		std = nil
	}
	s.own = &balancer.Server{Handler: cfg.Handler, ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout,
		TLSConfig: cfg.TLSConfig, Logger: cfg.Logger}
	if s.tls {
		s.own.HTTP2 = std
	}
	return s
}

// Serve serves ln until Shutdown or Close, which make it return
// http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	switch {
	case s.own != nil && s.tls:
		return s.own.ServeTLS(ln)
	case s.own != nil:
		return s.own.Serve(ln)
	case s.tls:
		return s.std.ServeTLS(ln, "", "")
	}
	return s.std.Serve(ln)
}

// Shutdown stops accepting and waits for the requests in flight, or ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.own != nil {
		return s.own.Shutdown(ctx)
	}
	return s.std.Shutdown(ctx)
}

// Close stops at once.
func (s *Server) Close() error {
	if s.own != nil {
		return s.own.Close()
	}
	return s.std.Close()
}
