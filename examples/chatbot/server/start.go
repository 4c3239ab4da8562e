package server

import (
	"io"
	"log/slog"
	"time"
)

// Start is what the stand-in does from its start until it listens: it reads
// the configuration through getenv and logs, as JSON lines to out, why it
// cannot start (and returns exit code 1), the crash CRASH_AT_START asks for
// (and returns that code), or its start line (and returns the server it goes
// on to run, with exit code 0). The command runs it; the fake nodes of
// ringg-ci's tests run it too, to play the stand-in in a pod, so what they
// report is what the app itself says.
func Start(getenv func(string) string, out io.Writer, now func() time.Time) (*Server, *slog.Logger, int) {
	cfg, cfgErr := ConfigFromEnv(getenv)
	name := cfg.LoggerName
	if name == "" {
		name = getenv("LOGGER_NAME")
	}
	if name == "" {
		name = DefaultLoggerName
	}
	log := slog.New(slog.NewJSONHandler(out, nil)).With("logger", name)
	if cfgErr != nil {
		log.Error("invalid configuration", "error", cfgErr.Error())
		return nil, log, 1
	}
	s := New(Options{Config: cfg, Logger: log, Now: now, Getenv: getenv})
	info := s.Info()
	attrs := []any{"env", info.Env, "creds_path", info.Creds.Path, "creds_status", info.Creds.Status}
	if info.Creds.Type != "" {
		attrs = append(attrs, "creds_type", info.Creds.Type)
	}
	log.Info("starting chatbot stand-in", attrs...)
	if cfg.CrashAtStart != 0 {
		log.Error("crashing at start, as CRASH_AT_START asks", "exit_code", cfg.CrashAtStart)
		return nil, log, cfg.CrashAtStart
	}
	return s, log, 0
}

// Config is the configuration the server runs with.
func (s *Server) Config() Config { return s.cfg }
