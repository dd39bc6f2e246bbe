package front

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/carbonlb/carbonlb"
	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/examples/internal/listen"
	"github.com/carbonlb/carbonlb/membership"
)

// Config configures a Front.
type Config struct {
	// Balancer is the balancer's configuration.
	Balancer balancer.Config
	// Listener is where the instance serves HTTP. Required; Front closes it.
	Listener net.Listener
	// TLSListener, when not nil, is where the instance serves HTTPS (HTTP/2
	// and HTTP/1.1) with TLSConfig, which is then required; Front closes it.
	TLSListener net.Listener
	TLSConfig   *tls.Config
	// Engine serves the listeners (HTTP/2 is offered over TLS but with
	// EngineOwn). Zero means DefaultEngine.
	Engine Engine
	// Member, when not nil, joins the instance to the cluster, and its
	// pools follow the members' events (see carbonlb.Feed).
	Member *membership.Config
	// FallbackPort joins from a free cluster port when Member.Port is taken.
	FallbackPort bool
	// ShareSessions, with Member, shares the sessions the balancer learns
	// (StickyLearn) with the cluster's other instances that share theirs
	// (carbonlb.SessionSync): a client may then reach any instance, and an
	// instance may restart, without losing its session. Balancer.Sessions
	// must be nil.
	ShareSessions bool
	// SharedAwait, with ShareSessions, is the Sticky.Await of the
	// learn-mode services that set none: how long a request waits for a
	// session another instance learned to arrive. Zero means 50 ms; a
	// negative value, no wait.
	SharedAwait time.Duration
	// HealthPath answers 200 while the instance can serve: 503 once it
	// drains, while a service has no healthy backend (as before the
	// pools are learned), and with ShareSessions until the other
	// instances' sessions are fetched. Whatever sends the instance traffic checks it.
	// Empty means "/healthz".
	HealthPath string
	// DrainDelay is how long Shutdown goes on accepting connections after
	// the health endpoint turned 503, so that whatever fronts the instance
	// notices and clients that resolved it before stop coming: a listener
	// closed under them would reset the connections it had not accepted
	// yet. Zero means none.
	DrainDelay time.Duration
	// StatusPath, when not empty, serves the balancer's status page.
	StatusPath string
	// Logger receives the instance's log. Nil means slog.Default().
	Logger *slog.Logger
}

// Front is a running balancer instance.
type Front struct {
	lb       *balancer.Balancer
	pools    *Pools
	feed     *carbonlb.Feed
	sessions *carbonlb.SessionSync // nil unless ShareSessions
	await    time.Duration         // Config.SharedAwait, defaulted
	member   *membership.Node
	note     string
	srv      *Server
	tlsSrv   *Server
	ln       net.Listener
	tlsLn    net.Listener
	served   chan error // one result per server started
	watched  chan error // one result per Run started on the member
	runs     int        // the number of those
	cancel   context.CancelFunc
	delay    time.Duration
	health   http.Handler // the balancer's own health check
	draining atomic.Bool
}

// Start starts an instance. On error nothing keeps running and the listener
// is closed.
func Start(ctx context.Context, cfg Config) (_ *Front, err error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	f := &Front{ln: cfg.Listener, tlsLn: cfg.TLSListener, delay: cfg.DrainDelay}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if f.tlsLn != nil && cfg.TLSConfig == nil {
		return nil, errors.New("front: TLSListener without TLSConfig")
	}
	cfg.Balancer.Logger = logger
	if cfg.ShareSessions && cfg.Member != nil {
		if cfg.Balancer.Sessions != nil {
			return nil, errors.New("front: ShareSessions with a Balancer.Sessions of its own")
		}
		f.sessions = carbonlb.NewSessionSync(carbonlb.SessionSyncConfig{MaxSessions: cfg.Balancer.MaxSessions, Logger: logger})
		f.await = cfg.SharedAwait
		if f.await == 0 {
			f.await = sharedAwait
		}
		cfg.Balancer.Sessions = f.sessions.Table()
	}
	f.awaitShared(&cfg.Balancer)
	if f.lb, err = balancer.New(cfg.Balancer); err != nil {
		return nil, err
	}
	f.pools = NewPools(f.lb)
	if cfg.Member != nil {
		mc := *cfg.Member
		if mc.Logger == nil {
			mc.Logger = logger
		}
		if f.sessions != nil {
			mc.Messages = f.sessions
		}
		if f.member, f.note, err = listen.Join(ctx, mc, cfg.FallbackPort); err != nil {
			return nil, err
		}
		if f.feed, err = carbonlb.NewFeed(f.pools, carbonlb.FeedConfig{Logger: logger}); err != nil {
			return nil, err
		}
		wctx, cancel := context.WithCancel(context.Background())
		f.cancel = cancel
		f.watched = make(chan error, 2)
		f.runs++
		go func() { f.watched <- f.feed.Run(wctx, f.member) }()
		if f.sessions != nil {
			f.runs++
			go func() { f.watched <- f.sessions.Run(wctx, f.member) }()
		}
	}
	health := cfg.HealthPath
	if health == "" {
		health = "/healthz"
	}
	status := f.lb.StatusHandlerWith(balancer.StatusConfig{Members: f.StatusMembers})
	f.health = f.lb.HealthHandler()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == health:
			f.serveHealth(w, r)
		case cfg.StatusPath != "" && r.URL.Path == cfg.StatusPath:
			status.ServeHTTP(w, r)
		default:
			f.lb.ServeHTTP(w, r)
		}
	})
	newServer := func(tc *tls.Config) *Server {
		return NewServer(ServerConfig{Engine: cfg.Engine, Handler: h, TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout: 2 * time.Minute, Logger: logger, ErrorLevel: slog.LevelDebug})
	}
	f.served = make(chan error, 2)
	f.srv = newServer(nil)
	go func() { f.served <- f.srv.Serve(f.ln) }()
	if f.tlsLn != nil {
		f.tlsSrv = newServer(cfg.TLSConfig)
		go func() { f.served <- f.tlsSrv.Serve(f.tlsLn) }()
	}
	return f, nil
}

func (f *Front) serveHealth(w http.ResponseWriter, r *http.Request) {
	if f.draining.Load() {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "draining")
		return
	}
	if f.sessions != nil {
		select {
		case <-f.sessions.Ready():
		default:
			// Until the other instances' sessions are here, this one
			// would send their clients to the wrong app server.
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "fetching sessions")
			return
		}
	}
	f.health.ServeHTTP(w, r)
}

// HealthHandler answers as the instance's health endpoint does: 503 once
// it drains, the balancer's HealthHandler before.
func (f *Front) HealthHandler() http.Handler { return http.HandlerFunc(f.serveHealth) }

// Balancer returns the instance's balancer.
func (f *Front) Balancer() *balancer.Balancer { return f.lb }

// Pools returns what sets the instance's pools, with an operator's
// drains and weights applied; the Feed sets pools through it, and so must
// whatever else sets them.
func (f *Front) Pools() *Pools { return f.pools }

// StatusMembers returns the cluster's members as the status page shows
// them, nil without a member.
func (f *Front) StatusMembers() []balancer.StatusMember {
	if f.member == nil {
		return nil
	}
	var out []balancer.StatusMember
	for _, m := range f.member.Members() {
		out = append(out, balancer.StatusMember{Name: m.Name, Addr: m.Addr.String(), Pool: m.Pool(),
			State: m.State.String(), Properties: m.Properties})
	}
	return out
}

// Feed returns the Feed of the instance's pools, nil without Member.
func (f *Front) Feed() *carbonlb.Feed { return f.feed }

// sharedAwait is the default of Config.SharedAwait, how long a request
// waits for a session id its instance does not know to come from another
// (balancer.Sticky.Await): longer than the replication lag on a LAN (well
// under a millisecond; a few on a busy host), short enough for an id that
// never comes.
const sharedAwait = 50 * time.Millisecond

// awaitShared sets Sticky.Await on the learn-mode services that have none,
// when the instance shares its sessions.
func (f *Front) awaitShared(c *balancer.Config) {
	if f.sessions == nil || f.await < 0 {
		return
	}
	c.Services = slices.Clone(c.Services)
	for i := range c.Services {
		if st := &c.Services[i].Sticky; st.Mode == balancer.StickyLearn && st.Await == 0 {
			st.Await = f.await
		}
	}
}

// Update applies a new balancer configuration (balancer.Balancer.Update),
// with the Sticky.Await of Config.ShareSessions.
func (f *Front) Update(c balancer.Config) error {
	f.awaitShared(&c)
	return f.lb.Update(c)
}

// Sessions returns what shares the instance's learned sessions, nil
// without Config.ShareSessions and Member.
func (f *Front) Sessions() *carbonlb.SessionSync { return f.sessions }

// Member returns the instance's cluster member, nil without one.
func (f *Front) Member() *membership.Node { return f.member }

// Note says when the cluster port is not the one asked for, or "".
func (f *Front) Note() string { return f.note }

// Addr returns the address the instance serves HTTP on.
func (f *Front) Addr() net.Addr { return f.ln.Addr() }

// TLSAddr returns the address the instance serves HTTPS on, nil without one.
func (f *Front) TLSAddr() net.Addr {
	if f.tlsLn == nil {
		return nil
	}
	return f.tlsLn.Addr()
}

// Drain makes the health endpoint answer 503, so that whatever fronts the
// instance sends it no new clients; requests are still served.
func (f *Front) Drain() { f.draining.Store(true) }

// Shutdown drains the instance for Config.DrainDelay, leaves the cluster,
// waits for the requests in flight (or ctx) and closes everything.
func (f *Front) Shutdown(ctx context.Context) error {
	f.Drain()
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	var errs []error
	if f.member != nil {
		if err := f.member.Leave(ctx); err != nil && !errors.Is(err, membership.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for _, srv := range []*Server{f.srv, f.tlsSrv} {
		if srv != nil {
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(append(errs, f.Close())...)
}

// Close stops everything at once. It is idempotent, but not safe to call
// concurrently with itself or Shutdown.
func (f *Front) Close() error {
	if f.srv != nil {
		f.srv.Close()
		<-f.served
		f.srv = nil
	} else if f.ln != nil {
		f.ln.Close()
	}
	if f.tlsSrv != nil {
		f.tlsSrv.Close()
		<-f.served
		f.tlsSrv = nil
	} else if f.tlsLn != nil {
		f.tlsLn.Close()
	}
	if f.cancel != nil {
		f.cancel()
		for ; f.runs > 0; f.runs-- {
			<-f.watched
		}
		f.cancel = nil
	}
	var errs []error
	if f.member != nil {
		if err := f.member.Close(); err != nil && !errors.Is(err, membership.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if f.lb != nil {
		errs = append(errs, f.lb.Close())
	}
	return errors.Join(errs...)
}
