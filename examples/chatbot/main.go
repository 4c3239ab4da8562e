// Command chatbot is the stand-in for the real pipecat chatbot: it serves health, drain, /info and echo
// WebSocket calls on :8765 the way the production container does, so the pipeline can build, smoke-test and
// deploy it. `chatbot healthcheck` probes a running instance for the image's HEALTHCHECK.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
)

const healthcheckTimeout = 3 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	os.Exit(code)
}

// run executes the subcommand in args ("serve", the default, or "healthcheck") and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve":
		s, log, code := server.Start(getenv, stdout, time.Now)
		if code != 0 {
			return code
		}
		return serve(ctx, s, log)
	case "healthcheck":
		cfg, err := server.ConfigFromEnv(getenv)
		if err != nil {
			slog.New(slog.NewJSONHandler(stdout, nil)).Error("invalid configuration", "error", err.Error())
			return 1
		}
		return healthcheck(ctx, cfg, stdout)
	default:
		slog.New(slog.NewJSONHandler(stdout, nil)).Error("unknown subcommand; use serve or healthcheck", "subcommand", cmd)
		return 2
	}
}

func serve(ctx context.Context, s *server.Server, log *slog.Logger) int {
	addr := s.Config().Addr
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("listen failed; check that the port is free or set PORT", "addr", addr, "error", err.Error())
		return 1
	}
	if err := s.Run(ctx, ln); err != nil {
		log.Error("server failed", "error", err.Error())
		return 1
	}
	return 0
}

func healthcheck(ctx context.Context, cfg server.Config, stdout io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	_, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		fmt.Fprintln(stdout, "unhealthy: read listen address:", err)
		return 1
	}
	base := "http://" + net.JoinHostPort("127.0.0.1", port)
	if err := server.CheckHealth(ctx, &http.Client{Timeout: healthcheckTimeout}, base); err != nil {
		fmt.Fprintln(stdout, "unhealthy:", err)
		return 1
	}
	fmt.Fprintln(stdout, "healthy")
	return 0
}
