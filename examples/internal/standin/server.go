package standin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/carbonlb/carbonlb/examples/internal/listen"
	"github.com/carbonlb/carbonlb/membership"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Listener is where the node serves HTTP. Nil serves nothing: the
	// Server only announces a backend that runs elsewhere (a sidecar), whose
	// ports Member.Properties must then name.
	Listener net.Listener
	// Handler answers the requests. Nil means a NewNode named as the
	// joined member is (Member.Name, or the address and port it got).
	Handler http.Handler
	// Member is the node's membership configuration. Its Properties get
	// membership.PropHTTPPort from Listener when they lack it.
	Member membership.Config
	// FallbackPort joins from a free cluster port when Member.Port (and its
	// retries) are taken; Note then says so.
	FallbackPort bool
}

// Server is a running stand-in Carbon node: an HTTP server and a cluster
// member. Stop it with Stop (graceful) or Kill (a crash).
type Server struct {
	handler http.Handler
	member  *membership.Node
	srv     *http.Server
	ln      net.Listener
	served  chan error // Serve's result; nil without a listener
	url     string
	note    string
}

// Start serves cfg.Listener and joins the cluster. On error the listener is
// closed and nothing keeps running.
func Start(ctx context.Context, cfg ServerConfig) (*Server, error) {
	s := &Server{handler: cfg.Handler, ln: cfg.Listener}
	mc := cfg.Member
	mc.Properties = maps.Clone(mc.Properties)
	if s.ln != nil {
		s.url = "http://" + s.ln.Addr().String()
		if mc.Properties == nil {
			mc.Properties = make(map[string]string)
		}
		if _, ok := mc.Properties[membership.PropHTTPPort]; !ok {
			if ta, ok := s.ln.Addr().(*net.TCPAddr); ok {
				mc.Properties[membership.PropHTTPPort] = strconv.Itoa(ta.Port)
			}
		}
	}
	m, note, err := listen.Join(ctx, mc, cfg.FallbackPort)
	if err != nil {
		if s.ln != nil {
			s.ln.Close()
		}
		return nil, err
	}
	s.member, s.note = m, note
	if s.handler == nil {
		// Named after Join: a node without a configured name is named by
		// the cluster port it got.
		s.handler = NewNode(m.Name())
	}
	if s.ln != nil {
		// Connections made meanwhile wait in the listen backlog.
		logger := mc.Logger
		if logger == nil {
			logger = slog.Default()
		}
		s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
		s.served = make(chan error, 1)
		go func() { s.served <- s.srv.Serve(s.ln) }()
	}
	return s, nil
}

// Note says when the server's cluster port is not the one asked for, or "".
func (s *Server) Note() string { return s.note }

// Handler returns the handler the server runs, a *Node unless
// ServerConfig.Handler said otherwise.
func (s *Server) Handler() http.Handler { return s.handler }

// Member returns the server's cluster member.
func (s *Server) Member() *membership.Node { return s.member }

// URL returns "http://host:port" of the HTTP listener, or "" without one.
func (s *Server) URL() string { return s.url }

// Stop leaves the cluster, so that balancers stop sending new requests,
// then lets the requests in flight finish and closes the server. ctx bounds
// both steps; when it ends first the rest is closed at once. Stop and Kill
// may follow each other in any order, but not run concurrently.
func (s *Server) Stop(ctx context.Context) error {
	err := s.member.Leave(ctx)
	if errors.Is(err, membership.ErrClosed) {
		err = nil
	}
	if s.srv != nil {
		if serr := s.srv.Shutdown(ctx); serr != nil {
			s.srv.Close()
			err = errors.Join(err, fmt.Errorf("standin: shut down HTTP: %w", serr))
		}
		<-s.served
		s.srv, s.ln = nil, nil
	}
	return err
}

// Kill stops the server as a crash would: connections are closed at once and
// the cluster is not told, so the other members see the node fail.
func (s *Server) Kill() error {
	s.closeHTTP()
	return s.member.Close()
}

// closeHTTP closes the HTTP server and its connections and waits for Serve.
func (s *Server) closeHTTP() {
	if s.srv == nil {
		if s.ln != nil {
			s.ln.Close()
		}
	} else {
		s.srv.Close()
		<-s.served
	}
	s.srv, s.ln = nil, nil
}
