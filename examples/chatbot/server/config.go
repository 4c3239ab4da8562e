package server

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of the container contract.
const (
	DefaultPort            = "8765"
	DefaultDrainDeadline   = 240 * time.Second
	DefaultDrainMarkerPath = "/tmp/DRaining"
	DefaultCredsPath       = "/app/creds.json"
	DefaultLoggerName      = "pipecat"

	// MaxDrainDeadline keeps the drain, plus the close handshakes after it, inside the chart's
	// terminationGracePeriodSeconds of 270.
	MaxDrainDeadline = 255 * time.Second
)

// DefaultExpectedEnv names the variables the real chatbot reads from the app Secret. /info reports whether
// each is set, never its value.
func DefaultExpectedEnv() []string {
	return []string{"OPENAI_API_KEY", "REDIS_URL", "ENVIRONMENT", "CALLING_BACKEND_URL", "ADMIN_API_KEY"}
}

// Config is the server's configuration, read from the environment by ConfigFromEnv.
type Config struct {
	// Addr is the TCP address to listen on: HOST (default all interfaces) and PORT (default 8765).
	Addr string
	// DrainDeadline is how long live calls may run after a drain starts (DRAIN_DEADLINE_SECONDS).
	DrainDeadline time.Duration
	// DrainMarkerPath is the file touched when a drain starts (DRAIN_MARKER_PATH); empty disables it.
	DrainMarkerPath string
	// CredsPath is the GCP credentials file (CREDS_PATH, else GOOGLE_APPLICATION_CREDENTIALS).
	CredsPath string
	// LoggerName names the logger (LOGGER_NAME), "pipecat-canary" on the canary track.
	LoggerName string
	// ExpectedEnv lists the variable names /info reports on: DefaultExpectedEnv plus the comma-separated
	// names in EXPECTED_ENV.
	ExpectedEnv []string

	// The failure switches, so tests can prove the pipeline sees an app fail the ways a real one does.
	//
	// RequiredEnv (REQUIRED_ENV, comma-separated) names variables the app refuses to start without, as the real
	// app refuses to start without REDIS_URL: ConfigFromEnv fails when one is unset or empty.
	RequiredEnv []string
	// HealthStatus (HEALTH_STATUS), when set, is what /healthcheck and /ready answer instead of 200, e.g. 503.
	HealthStatus int
	// CrashAtStart (CRASH_AT_START), when set, is the exit code the app exits with right after it starts.
	CrashAtStart int
	// CloseCallsAfter is a fault switch (CLOSE_CALLS_AFTER_SECONDS): when set, every call is closed with 1011
	// that long after it started, while health still answers 200: the failure a synthetic call must catch
	// and a health check cannot. Zero, the default, leaves calls alone.
	CloseCallsAfter time.Duration
}

// ConfigFromEnv reads the configuration through getenv and reports every invalid setting at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{
		DrainDeadline:   DefaultDrainDeadline,
		DrainMarkerPath: DefaultDrainMarkerPath,
		CredsPath:       DefaultCredsPath,
		LoggerName:      DefaultLoggerName,
		ExpectedEnv:     DefaultExpectedEnv(),
	}
	var errs []error
	port := DefaultPort
	if v := strings.TrimSpace(getenv("PORT")); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("read PORT %q: not a port number; set PORT to a number from 0 to 65535", v))
		} else {
			port = v
		}
	}
	cfg.Addr = net.JoinHostPort(strings.TrimSpace(getenv("HOST")), port)
	if v := strings.TrimSpace(getenv("DRAIN_DEADLINE_SECONDS")); v != "" {
		n, err := strconv.Atoi(v)
		d := time.Duration(n) * time.Second
		switch {
		case err != nil || n <= 0:
			errs = append(errs, fmt.Errorf("read DRAIN_DEADLINE_SECONDS %q: not a positive whole number of seconds; set it to e.g. 240", v))
		case d > MaxDrainDeadline:
			errs = append(errs, fmt.Errorf("read DRAIN_DEADLINE_SECONDS %q: longer than %v, so calls would outlive the 270 s termination grace period; lower it", v, MaxDrainDeadline))
		default:
			cfg.DrainDeadline = d
		}
	}
	if v := strings.TrimSpace(getenv("CLOSE_CALLS_AFTER_SECONDS")); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("read CLOSE_CALLS_AFTER_SECONDS %q: not a positive number of seconds; set it to e.g. 2, or unset it to leave calls alone", v))
		} else {
			cfg.CloseCallsAfter = time.Duration(n * float64(time.Second))
		}
	}
	if v, ok := lookup(getenv, "DRAIN_MARKER_PATH"); ok {
		cfg.DrainMarkerPath = v
	}
	if v, ok := lookup(getenv, "CREDS_PATH"); ok {
		cfg.CredsPath = v
	} else if v, ok := lookup(getenv, "GOOGLE_APPLICATION_CREDENTIALS"); ok {
		cfg.CredsPath = v
	}
	if v, ok := lookup(getenv, "LOGGER_NAME"); ok {
		cfg.LoggerName = v
	}
	for _, name := range strings.Split(getenv("EXPECTED_ENV"), ",") {
		name = strings.TrimSpace(name)
		if name != "" && !slices.Contains(cfg.ExpectedEnv, name) {
			cfg.ExpectedEnv = append(cfg.ExpectedEnv, name)
		}
	}
	var missing []string
	for _, name := range strings.Split(getenv("REQUIRED_ENV"), ",") {
		name = strings.TrimSpace(name)
		if name == "" || slices.Contains(cfg.RequiredEnv, name) {
			continue
		}
		cfg.RequiredEnv = append(cfg.RequiredEnv, name)
		if strings.TrimSpace(getenv(name)) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("required setting %s is not set (REQUIRED_ENV); add it to the app's secrets", strings.Join(missing, ", ")))
	}
	if v := strings.TrimSpace(getenv("HEALTH_STATUS")); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 200 || n > 599 {
			errs = append(errs, fmt.Errorf("read HEALTH_STATUS %q: not an HTTP status; set it to e.g. 503", v))
		} else {
			cfg.HealthStatus = n
		}
	}
	if v := strings.TrimSpace(getenv("CRASH_AT_START")); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 255 {
			errs = append(errs, fmt.Errorf("read CRASH_AT_START %q: not an exit code; set it to 1 to 255", v))
		} else {
			cfg.CrashAtStart = n
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("read chatbot configuration: %w", err)
	}
	return cfg, nil
}

// lookup returns a trimmed, non-empty value.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := strings.TrimSpace(getenv(name))
	return v, v != ""
}
