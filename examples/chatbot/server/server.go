// Package server is the stand-in chatbot: the HTTP and WebSocket server that honours the container contract
// of the real Python app (health, readiness, drain, echo calls, secret-free /info) so the pipeline can build,
// smoke-test and deploy it.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Drain sources, logged when a drain starts.
const (
	DrainFromPreStop = "prestop"
	DrainFromSignal  = "signal"
)

const (
	defaultCloseGrace = 10 * time.Second
	shutdownTimeout   = 5 * time.Second
	readHeaderTimeout = 10 * time.Second
	goingAwayReason   = "server draining"
	normalCloseReason = "call ended"
	hangupMessage     = "hangup"
	closeEarlyReason  = "closing calls early (CLOSE_CALLS_AFTER_SECONDS)"
	callWriteTimeout  = 10 * time.Second
)

// Options configures a Server.
type Options struct {
	// Config is the configuration, usually from ConfigFromEnv. A zero DrainDeadline means 240 s.
	Config Config
	// Logger receives the server's structured logs; nil discards them.
	Logger *slog.Logger
	// Now reports the current time; the drain deadline is measured with it. Nil means time.Now.
	Now func() time.Time
	// Getenv reads the environment for /info. Nil means os.Getenv.
	Getenv func(string) string
	// CloseGrace bounds how long the server waits for calls closed at the deadline to finish their close
	// handshake. Zero means 10 s.
	CloseGrace time.Duration
}

// Server serves health, drain, /info and WebSocket calls. Build it with New.
type Server struct {
	cfg        Config
	log        *slog.Logger
	now        func() time.Time
	getenv     func(string) string
	closeGrace time.Duration

	mu           sync.Mutex
	calls        map[uint64]*call
	nextID       uint64
	changed      chan struct{} // closed and replaced whenever a call ends
	drainStarted time.Time     // zero until a drain starts
	forceClosed  bool          // the drain deadline has passed
	deadline     *time.Timer
}

// call is one live WebSocket call.
type call struct {
	conn   *websocket.Conn // nil until the upgrade completes
	forced bool            // closed by the server at the drain deadline
	fault  bool            // closed by the CLOSE_CALLS_AFTER_SECONDS fault
}

// New returns a Server for opts.
func New(opts Options) *Server {
	s := &Server{
		cfg:        opts.Config,
		log:        opts.Logger,
		now:        opts.Now,
		getenv:     opts.Getenv,
		closeGrace: opts.CloseGrace,
		calls:      map[uint64]*call{},
		changed:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.getenv == nil {
		s.getenv = os.Getenv
	}
	if s.cfg.DrainDeadline <= 0 {
		s.cfg.DrainDeadline = DefaultDrainDeadline
	}
	if s.closeGrace <= 0 {
		s.closeGrace = defaultCloseGrace
	}
	return s
}

// Handler returns the HTTP routes, mounted bare and under /pc/v1.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// The real app mounts its routers both bare and under /pc/v1.
	for _, p := range []string{"", "/pc/v1"} {
		mux.HandleFunc("GET "+p+"/healthcheck", s.handleHealthcheck)
		mux.HandleFunc("GET "+p+"/live", s.handleLive)
		mux.HandleFunc("GET "+p+"/ready", s.handleReady)
		mux.HandleFunc("GET "+p+"/drain/start", s.handleDrainStart)
		mux.HandleFunc("POST "+p+"/drain/start", s.handleDrainStart)
		mux.HandleFunc("GET "+p+"/info", s.handleInfo)
		mux.HandleFunc("GET "+p+"/ws", s.handleCall)
	}
	return mux
}

// Run serves on ln until ctx is done (the process got SIGTERM), then drains: it refuses new calls, lets live
// calls finish until the drain deadline — measured from when the drain first started, so a preStop drain is
// not restarted — closes the rest with 1001 going away, shuts the HTTP server down and returns nil.
// Run may be called once.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "drain_deadline_seconds", int(s.cfg.DrainDeadline.Seconds()))

	select {
	case err := <-served:
		s.stopDeadline()
		return fmt.Errorf("serve http on %s: %w; check that the port is free", ln.Addr(), err)
	case <-ctx.Done():
	}

	s.StartDrain(DrainFromSignal)
	remaining := s.remaining()
	s.log.Info("waiting for live calls", "active_calls", s.ActiveCalls(), "remaining_seconds", remaining.Seconds())
	if !s.waitIdle(remaining) {
		s.closeRemaining()
		if !s.waitIdle(s.closeGrace) {
			s.log.Warn("calls still open after close grace", "active_calls", s.ActiveCalls())
		}
	}
	s.stopDeadline()

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	}
	s.log.Info("shutdown complete")
	return nil
}

// StartDrain starts draining: readiness and health go 503, new calls are refused, the drain marker file is
// touched and live calls are closed with 1001 at the deadline. It reports whether this call started the drain;
// later calls change nothing.
func (s *Server) StartDrain(source string) bool {
	s.mu.Lock()
	if !s.drainStarted.IsZero() {
		s.mu.Unlock()
		return false
	}
	s.drainStarted = s.now()
	s.deadline = time.AfterFunc(s.cfg.DrainDeadline, s.closeRemaining)
	active := len(s.calls)
	s.mu.Unlock()

	s.log.Info("drain started", "source", source, "active_calls", active,
		"deadline_seconds", int(s.cfg.DrainDeadline.Seconds()))
	s.touchMarker()
	return true
}

// Draining reports whether a drain has started.
func (s *Server) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.drainStarted.IsZero()
}

// ActiveCalls reports how many calls are live.
func (s *Server) ActiveCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// touchMarker creates the drain marker file the real app's tooling looks for.
func (s *Server) touchMarker() {
	if s.cfg.DrainMarkerPath == "" {
		return
	}
	f, err := os.OpenFile(s.cfg.DrainMarkerPath, os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		s.log.Warn("touch drain marker failed; draining anyway", "path", s.cfg.DrainMarkerPath, "error", err.Error())
	}
}

// remaining is the time left until the drain deadline.
func (s *Server) remaining() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drainStarted.IsZero() {
		return s.cfg.DrainDeadline
	}
	return max(0, s.cfg.DrainDeadline-s.now().Sub(s.drainStarted))
}

// waitIdle waits until no call is live or d has passed, and reports whether the server is idle.
func (s *Server) waitIdle(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		s.mu.Lock()
		n, changed := len(s.calls), s.changed
		s.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

// closeRemaining closes every live call with 1001 going away, once.
func (s *Server) closeRemaining() {
	s.mu.Lock()
	if s.forceClosed {
		s.mu.Unlock()
		return
	}
	s.forceClosed = true
	var conns []*websocket.Conn
	for _, c := range s.calls {
		c.forced = true
		if c.conn != nil {
			conns = append(conns, c.conn)
		}
	}
	s.mu.Unlock()

	s.log.Info("drain deadline reached; closing remaining calls", "active_calls", len(conns))
	for _, c := range conns {
		go c.Close(websocket.StatusGoingAway, goingAwayReason)
	}
}

func (s *Server) stopDeadline() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deadline != nil {
		s.deadline.Stop()
	}
}

// healthBody is the body of /healthcheck, /ready and /drain/start.
type healthBody struct {
	Status      string `json:"status,omitempty"`
	Draining    bool   `json:"draining"`
	ActiveCalls int    `json:"active_calls"`
}

func (s *Server) health() (int, healthBody) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := healthBody{Status: "ok", Draining: !s.drainStarted.IsZero(), ActiveCalls: len(s.calls)}
	if b.Draining {
		b.Status = "draining"
		return http.StatusServiceUnavailable, b
	}
	if s.cfg.HealthStatus != 0 {
		// The HEALTH_STATUS switch: an app whose dependencies are down.
		b.Status = "unhealthy"
		return s.cfg.HealthStatus, b
	}
	return http.StatusOK, b
}

func (s *Server) handleHealthcheck(w http.ResponseWriter, _ *http.Request) {
	code, b := s.health()
	writeJSON(w, code, b)
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	code, b := s.health()
	if code == http.StatusOK && s.cfg.HealthStatus == 0 {
		b.Status = "ready"
	}
	writeJSON(w, code, b)
}

func (s *Server) handleLive(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

func (s *Server) handleDrainStart(w http.ResponseWriter, _ *http.Request) {
	s.StartDrain(DrainFromPreStop)
	_, b := s.health()
	b.Status = ""
	writeJSON(w, http.StatusOK, b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
