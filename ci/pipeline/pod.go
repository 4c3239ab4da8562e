package pipeline

import (
	"fmt"
	"time"

	"github.com/ringg/ringg-ci/ci/targets"
)

// Pod is the app's container as the chart configures it for a target, for
// a replay that runs the image as the kubelet would: its environment (the
// chart's values, never a Secret's), port, credentials path and probes. The
// runner renders it (pod-spec); the module's face runs the image with it.
type Pod struct {
	Target    targets.Name `json:"target"`
	Container string       `json:"container"`
	Env       []EnvVar     `json:"env,omitempty"`
	Port      int          `json:"port"`
	// CredsPath is where the GCP credentials Secret is mounted.
	CredsPath string `json:"credsPath,omitempty"`
	// User is the runAsUser the pod sets, 0 when it leaves the image's.
	User      int64  `json:"runAsUser,omitempty"`
	Readiness *Probe `json:"readinessProbe,omitempty"`
	Liveness  *Probe `json:"livenessProbe,omitempty"`
}

// EnvVar is one variable the chart sets.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Probe is an HTTP probe, in the kubelet's numbers.
type Probe struct {
	Path                string `json:"path"`
	Port                int    `json:"port"`
	InitialDelaySeconds int    `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int    `json:"periodSeconds,omitempty"`
	TimeoutSeconds      int    `json:"timeoutSeconds,omitempty"`
	FailureThreshold    int    `json:"failureThreshold,omitempty"`
}

// The kubelet's defaults for a probe's numbers left zero.
const (
	DefaultProbePeriod      = 10 * time.Second
	DefaultProbeTimeout     = time.Second
	DefaultFailureThreshold = 3
)

// Delay is when the first probe runs, scaled (see Scaled).
func (p Probe) Delay(scale time.Duration) time.Duration {
	return Scaled(time.Duration(p.InitialDelaySeconds)*time.Second, scale)
}

// Period is the time between probes, scaled.
func (p Probe) Period(scale time.Duration) time.Duration {
	d := time.Duration(p.PeriodSeconds) * time.Second
	if d <= 0 {
		d = DefaultProbePeriod
	}
	return Scaled(d, scale)
}

// Timeout is how long one probe waits for its answer: never scaled, an app
// answers as fast as it answers.
func (p Probe) Timeout() time.Duration {
	if p.TimeoutSeconds <= 0 {
		return DefaultProbeTimeout
	}
	return time.Duration(p.TimeoutSeconds) * time.Second
}

// Failures is how many failed probes in a row count as a failure.
func (p Probe) Failures() int {
	if p.FailureThreshold <= 0 {
		return DefaultFailureThreshold
	}
	return p.FailureThreshold
}

// String reads "GET :8765/pc/v1/healthcheck after 60s, every 30s".
func (p Probe) String() string {
	return fmt.Sprintf("GET :%d%s after %ds, every %s", p.Port, p.Path, p.InitialDelaySeconds, (time.Duration(p.PeriodSeconds) * time.Second).String())
}
